// Node 20 lacks Promise.withResolvers (new in Node 22), which @moq/qmux
// and @moq/lite call; imported first, this adds it where it is missing.
if (typeof Promise.withResolvers !== "function") {
	Promise.withResolvers = function withResolvers() {
		let resolve;
		let reject;
		const promise = new this((res, rej) => {
			resolve = res;
			reject = rej;
		});
		return { promise, resolve, reject };
	};
}
