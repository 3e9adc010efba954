// Inflates groups of compressed frames with @moq/flate alone, one fresh
// Decoder per group, and reports each frame's bytes.
//
// Request: {"groups": [{"maxFrameSize": n (absent: the default),
// "frames": [base64, ...]}, ...]}.
//
// Response: {"defaultMaxFrameSize", "defaultLevel", "groups": [[{"data":
// base64} | {"error"}, ...], ...]}; a group stops at its first error.
import * as Flate from "@moq/flate";
import { fromBase64, message, readRequest, respond, toBase64 } from "./lib.mjs";

const request = await readRequest();
const groups = request.groups.map((group) => {
	const decoder = new Flate.Decoder(group.maxFrameSize === undefined ? {} : { maxFrameSize: group.maxFrameSize });
	const out = [];
	for (const f of group.frames) {
		try {
			out.push({ data: toBase64(decoder.frame(fromBase64(f))) });
		} catch (err) {
			out.push({ error: message(err) });
			break;
		}
	}
	return out;
});
respond({ defaultMaxFrameSize: Flate.DEFAULT_MAX_FRAME_SIZE, defaultLevel: Flate.DEFAULT_LEVEL, groups });
