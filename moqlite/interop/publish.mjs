// Publishes a broadcast with @moq/lite over WebSocket, as a Node
// application would, into a server that subscribes to what it announces,
// and writes on it exactly what the test tells it to.
//
// stdin, one JSON object a line. First the setup:
//   {"url", "framing": "qmux" | "webtransport", "protocol", "broadcast",
//    "tracks": [name...]}
// as in subscribe.mjs. Then commands, each answered by {"ev": "done"}:
//   {"op": "group", "track", "sequence", "frames": [base64], "open"?}
//       a group with that sequence and those frames, on every subscription
//       to the track; it stays open for "append" when "open" is set
//   {"op": "append", "track", "frames": [base64], "close"?}
//       frames added to the track's open group, closed if "close" is set
//   {"op": "closeTrack", "track"}    every subscription to it ends
//   {"op": "closeBroadcast"}         the broadcast ends (unannounced)
//   {"op": "exit"}                   the session closes, node exits
//
// stdout, one JSON object a line:
//   {"ev": "connected", "version"}   the session is up, the broadcast published
//   {"ev": "requested", "track"}     the peer subscribed to one of the tracks
//                                    (a subscription to another is reset)
//   {"ev": "done"}                   a command was carried out
//   {"ev": "error", "message"}       anything thrown
import { connect, nextLine, send } from "./peer.mjs";
import * as Moq from "@moq/lite";

const setup = await nextLine();
const conn = await connect(setup);
const broadcast = new Moq.Broadcast();
conn.publish(Moq.Path.from(setup.broadcast), broadcast);
await send({ ev: "connected", version: conn.version });

// A Track is what one subscription reads, and a Group is read once: the
// application keeps every subscription's track and writes each group on
// each, with the sequence the test gave.
const subscribers = new Map(setup.tracks.map((name) => [name, []])); // name: [Track]
const open = new Map(); // name: [Group] of the group left open
(async () => {
	for (;;) {
		const req = await broadcast.requested();
		if (!req) return;
		const subs = subscribers.get(req.track.name);
		if (!subs) {
			// SUBSCRIBE_OK is already sent: an error resets the subscription.
			req.track.close(new Error(`no track ${req.track.name}`));
			continue;
		}
		subs.push(req.track);
		// A subscription that ended is written no more.
		req.track.closed.finally(() => subs.splice(subs.indexOf(req.track), 1));
		send({ ev: "requested", track: req.track.name });
	}
})();

const decode = (frames) => frames.map((f) => new Uint8Array(Buffer.from(f, "base64")));

for (;;) {
	const cmd = await nextLine();
	switch (cmd.op) {
		case "group": {
			const groups = subscribers.get(cmd.track).map((track) => {
				const g = new Moq.Group(cmd.sequence);
				track.writeGroup(g);
				return g;
			});
			for (const g of groups) {
				for (const f of decode(cmd.frames)) g.writeFrame(f);
				if (!cmd.open) g.close();
			}
			if (cmd.open) open.set(cmd.track, groups);
			break;
		}
		case "append": {
			const groups = open.get(cmd.track);
			if (!groups) throw new Error(`no open group on ${cmd.track}`);
			for (const g of groups) {
				for (const f of decode(cmd.frames)) g.writeFrame(f);
				if (cmd.close) g.close();
			}
			if (cmd.close) open.delete(cmd.track);
			break;
		}
		case "closeTrack":
			for (const track of [...subscribers.get(cmd.track)]) track.close();
			break;
		case "closeBroadcast":
			broadcast.close();
			break;
		case "exit":
			conn.close();
			await send({ ev: "done" });
			process.exit(0);
			break;
		default:
			throw new Error(`unknown command ${JSON.stringify(cmd)}`);
	}
	await send({ ev: "done" });
}
