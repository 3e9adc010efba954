// Subscribes to a stats broadcast with @moq/lite over WebSocket, as a
// Node application would, and reports everything it received.
//
// stdin, one JSON object a line. First the setup:
//   {"url", "framing": "qmux" | "webtransport", "protocol", "broadcast",
//    "prefix", "tracks": [name...]}
// protocol is the application protocol to offer ("moq-lite-04",
// "moq-lite-03", "moql"), or "" for none, which under qmux is what
// Moq.Connection.connect(url) does by default. Then, once: {"op": "late"}.
//
// stdout, one JSON object a line:
//   {"ev": "connected", "version"}             the session is up
//   {"ev": "subscribed"}                       every early subscription took a frame
//   {"ev": "late"}                             every late one took a frame
//   {"ev": "result", "version", "unannounced",
//    "subs": {"early" | "late": {track: [{"sequence", "frames": [base64],
//             "error"?, "decoded"?: [json text], "decodeError"?}]}}}
//   {"ev": "error", "message"}                 anything thrown
// A ".z" track's groups carry "decoded": the value @moq/json's
// Snapshot.Decoder (compression on) holds after each frame, as JSON text.
// The result is sent once every track has ended and the unannounce of the
// broadcast arrived (or did not, within 10 seconds).
import { connect, nextLine, send } from "./peer.mjs";
import { Snapshot } from "@moq/json";
import * as Moq from "@moq/lite";

// read takes every group of track, in arrival order, and every frame of
// each, until the track ends; onFrame runs after each frame. A group cut
// off by an error keeps the frames taken before it, and the error.
async function read(track, onFrame) {
	const groups = [];
	for (;;) {
		const group = await track.recvGroup();
		if (!group) return groups;
		const g = { sequence: group.sequence, frames: [] };
		groups.push(g);
		try {
			for (;;) {
				const frame = await group.readFrame();
				if (frame === undefined) break;
				g.frames.push(Buffer.from(frame).toString("base64"));
				onFrame();
			}
		} catch (err) {
			g.error = err instanceof Error ? err.message : String(err);
		}
	}
}

// decode adds to each group of a ".z" track the values @moq/json decodes
// after each of its frames: a snapshot, then merge patches.
function decode(groups) {
	const decoder = new Snapshot.Decoder({ compression: true });
	for (const g of groups) {
		g.decoded = [];
		try {
			g.frames.forEach((f, i) => {
				const payload = Buffer.from(f, "base64");
				if (i === 0) decoder.snapshot(payload);
				else decoder.delta(payload);
				g.decoded.push(JSON.stringify(decoder.decode()));
			});
		} catch (err) {
			g.decodeError = err instanceof Error ? err.message : String(err);
		}
	}
}

// subscribeAll subscribes to every track and resolves, with the readers,
// once each took a frame.
async function subscribeAll(conn, setup) {
	const broadcast = conn.consume(Moq.Path.from(setup.broadcast));
	const readers = {};
	const started = setup.tracks.map((name) => {
		const { promise, resolve } = Promise.withResolvers();
		readers[name] = read(broadcast.subscribe(name, 0), resolve);
		return promise;
	});
	await Promise.all(started);
	return readers;
}

const setup = await nextLine();
const conn = await connect(setup);
send({ ev: "connected", version: conn.version });

const announced = conn.announced(Moq.Path.from(setup.prefix));
for (;;) {
	const a = await announced.next();
	if (!a) throw new Error("announce interest ended before the broadcast was announced");
	if (a.path === setup.broadcast && a.active) break;
}
const unannounced = (async () => {
	for (;;) {
		const a = await announced.next();
		if (!a) return false;
		if (a.path === setup.broadcast && !a.active) return true;
	}
})();

const early = await subscribeAll(conn, setup);
send({ ev: "subscribed" });

const cmd = await nextLine();
if (cmd.op !== "late") throw new Error(`unknown command ${JSON.stringify(cmd)}`);
const late = await subscribeAll(conn, setup);
send({ ev: "late" });

const subs = {};
for (const [who, readers] of Object.entries({ early, late })) {
	subs[who] = {};
	for (const name of setup.tracks) {
		const groups = await readers[name];
		if (name.endsWith(".z")) decode(groups);
		subs[who][name] = groups;
	}
}
const timeout = new Promise((resolve) => setTimeout(() => resolve(false), 10_000));
await send({ ev: "result", version: conn.version, unannounced: await Promise.race([unannounced, timeout]), subs });
conn.close();
process.exit(0);
