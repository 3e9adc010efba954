// Node 20 lacks Promise.withResolvers and Set.prototype.difference (new
// in Node 22), which @moq/qmux and @moq/lite call (the latter when a
// published broadcast ends); imported first, this adds them where they
// are missing.
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

if (typeof Set.prototype.difference !== "function") {
	// Set.prototype.difference is not enumerable where Node has it.
	Object.defineProperty(Set.prototype, "difference", {
		configurable: true,
		writable: true,
		value: function difference(other) {
			const out = new Set();
			for (const v of this) if (!other.has(v)) out.add(v);
			return out;
		},
	});
}
