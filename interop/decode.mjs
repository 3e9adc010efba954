// Decodes compressed stats tracks with @moq/json's Snapshot codec, with
// compression on, two ways, and reports the value after every step.
//
// Request: {"streams": [{"id": string, "frames": [{"pass": n, "group": n,
// "index": n, "data": base64}]}]}, each stream one track's frames in the
// order they were written, index 0 starting a group.
//
// Response: {"streams": [{"id", "frames": [{"value"} | {"error"}],
// "passes": [{"pass"} | {"pass", "differs"} | {"pass", "error"}]}]}.
//
//   - frames: Snapshot.Decoder fed frame by frame (snapshot at index 0,
//     delta after), and the value it decodes after each.
//   - passes: Snapshot.Consumer reading the track as a live subscriber
//     does, through a minimal track of groups: after each pass's frames
//     arrive, whether the value its next() yields is the Decoder's after
//     the pass's last frame, and if not, the value ("differs").
//
// A value holding a number that is not a safe integer is reported as an
// error: JSON.parse rounded it.
import { Snapshot } from "@moq/json";
import { fromBase64, message, readRequest, respond, sameJSON, unsafeNumber } from "./lib.mjs";

const config = { compression: true };

function checked(value) {
	const at = unsafeNumber(value);
	if (at !== undefined) return { error: `a number that is not a safe integer at ${at}` };
	return { value };
}

function decodeFrames(frames) {
	const decoder = new Snapshot.Decoder(config);
	const out = [];
	for (const f of frames) {
		try {
			const payload = fromBase64(f.data);
			if (f.index === 0) decoder.snapshot(payload);
			else decoder.delta(payload);
			out.push(checked(decoder.decode()));
		} catch (err) {
			out.push({ error: message(err) });
			break; // the group's window and value are gone
		}
	}
	return out;
}

// A group as Snapshot.Consumer reads one: frames buffered so far, and
// closed once a newer group starts.
class Group {
	constructor(track, sequence) {
		this.track = track;
		this.sequence = sequence;
		this.frames = [];
		this.read = 0;
		this.closed = false;
	}
	tryReadFrame() {
		return this.read < this.frames.length ? { payload: this.frames[this.read++] } : undefined;
	}
	async readFrame() {
		const frame = this.tryReadFrame();
		if (frame !== undefined || this.closed) return frame;
		// Only reached when next() is called with nothing new: a bug here.
		this.track.misuse = `readFrame on open group ${this.sequence} with nothing buffered`;
		throw new Error(this.track.misuse);
	}
}

// A track as Snapshot.Consumer reads one: groups in sequence order.
class Track {
	constructor() {
		this.groups = [];
		this.next = 0;
		this.misuse = undefined;
	}
	push(f) {
		if (f.index === 0) {
			const last = this.groups.at(-1);
			if (last) last.closed = true;
			this.groups.push(new Group(this, f.group));
		}
		const group = this.groups.at(-1);
		if (!group || group.sequence !== f.group) throw new Error(`frame ${f.group}.${f.index} outside its group`);
		group.frames.push(fromBase64(f.data));
	}
	async nextGroup() {
		if (this.next < this.groups.length) return this.groups[this.next++];
		this.misuse = "nextGroup with no newer group";
		return undefined;
	}
}

async function consumePasses(frames, decoded) {
	const track = new Track();
	const consumer = new Snapshot.Consumer(track, config);
	const out = [];
	for (let i = 0; i < frames.length; ) {
		const pass = frames[i].pass;
		try {
			for (; i < frames.length && frames[i].pass === pass; i++) track.push(frames[i]);
			const value = await consumer.next();
			if (track.misuse !== undefined) throw new Error(`track adapter: ${track.misuse}`);
			const c = checked(value);
			if (c.error !== undefined) out.push({ pass, error: c.error });
			else if (sameJSON(value, decoded[i - 1]?.value)) out.push({ pass });
			else out.push({ pass, differs: value });
		} catch (err) {
			out.push({ pass, error: message(err) });
			break;
		}
	}
	return out;
}

const request = await readRequest();
const streams = [];
for (const s of request.streams) {
	const frames = decodeFrames(s.frames);
	streams.push({ id: s.id, frames, passes: await consumePasses(s.frames, frames) });
}
respond({ streams });
