// What the interop scripts share: one JSON request on stdin, one JSON
// response on stdout, frames as base64, and a check that every number a
// value holds is an integer JavaScript represents exactly, so that the Go
// side can compare values digit for digit.

/** Reads stdin to the end and parses it as JSON. */
export async function readRequest() {
	const chunks = [];
	for await (const chunk of process.stdin) chunks.push(chunk);
	return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

/** Writes the response as one JSON document. */
export function respond(response) {
	process.stdout.write(JSON.stringify(response));
}

/** Decodes a base64 frame into a plain Uint8Array. */
export function fromBase64(s) {
	const b = Buffer.from(s, "base64");
	return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/** Encodes bytes as base64. */
export function toBase64(bytes) {
	return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64");
}

/**
 * Returns where in value a number is not a safe integer (a JSON pointer)
 * and what it was read as, or undefined when every number is one. A
 * counter past 2^53 - 1 has already been rounded by JSON.parse: its
 * digits would not survive.
 */
export function unsafeNumber(value, at = "") {
	if (typeof value === "number") return Number.isSafeInteger(value) ? undefined : `${at || "/"} (read as ${value})`;
	if (typeof value !== "object" || value === null) return undefined;
	for (const [k, v] of Object.entries(value)) {
		const found = unsafeNumber(v, `${at}/${k.replaceAll("~", "~0").replaceAll("/", "~1")}`);
		if (found !== undefined) return found;
	}
	return undefined;
}

/**
 * Reports whether two JSON values are the same: the same own members,
 * whatever their order, and the same numbers and strings. (Not
 * @moq/json's deepEqual, which looks up members with the in operator.)
 */
export function sameJSON(a, b) {
	if (a === b) return true;
	if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
	if (Array.isArray(a) !== Array.isArray(b)) return false;
	const ak = Object.keys(a);
	if (ak.length !== Object.keys(b).length) return false;
	return ak.every((k) => Object.hasOwn(b, k) && sameJSON(a[k], b[k]));
}

/** The message of a thrown value. */
export function message(err) {
	return err instanceof Error ? err.message : String(err);
}
