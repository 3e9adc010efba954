// Encodes sequences of values with @moq/json's Snapshot.Encoder, with
// compression on, as a producer publishing them would, and reports every
// frame.
//
// Request: {"runs": [{"id": string, "deltaRatio": n (absent: the
// default), "values": [json...], "failed": [bool...]}]}; failed[i] marks
// the write of value i's frame as failed: the frame is not committed, as
// Snapshot.Producer leaves it when a write throws, so the encoder
// resynchronizes on the next update.
//
// Response: {"runs": [{"id", "steps": [{"frame": false} | {"frame": true,
// "keyframe": bool, "data": base64}]} | {"id", "error"}]}: one step per
// value, frame false when the value was unchanged and nothing is written.
import { Snapshot } from "@moq/json";
import { message, readRequest, respond, toBase64, unsafeNumber } from "./lib.mjs";

function encode(run) {
	const config = { compression: true };
	if (run.deltaRatio !== undefined) config.deltaRatio = run.deltaRatio;
	const encoder = new Snapshot.Encoder(config);
	const steps = [];
	run.values.forEach((value, i) => {
		const at = unsafeNumber(value);
		if (at !== undefined) throw new Error(`value ${i}: a number that is not a safe integer at ${at}`);
		const pending = encoder.update(value);
		if (pending === undefined) {
			steps.push({ frame: false });
			return;
		}
		steps.push({ frame: true, keyframe: pending.keyframe, data: toBase64(pending.payload) });
		if (!run.failed[i]) pending.commit();
	});
	return steps;
}

const request = await readRequest();
respond({
	runs: request.runs.map((run) => {
		try {
			return { id: run.id, steps: encode(run) };
		} catch (err) {
			return { id: run.id, error: message(err) };
		}
	}),
});
