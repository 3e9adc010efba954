// Package moqlite serves moqstats' stats broadcast (and any other) over
// moq-lite, the MoQ session protocol of moq-dev's relays and of the
// @moq/lite 0.2.2 JavaScript client, and subscribes to it as a client.
//
// # Versions
//
// moq-lite-04 and -03 are chosen by the application protocol (QUIC ALPN,
// WebTransport protocol, WebSocket subprotocol); under "moql" or none, the
// client's SETUP on a bidi stream chooses moq-lite-02. Protocols lists
// them best first. What differs by version is decided by one table
// (internal/wire.Versions).
//
// # Publishing
//
// Server implements moqstats.Origin; its Broadcast implements
// moqstats.Appender. Each WriteFrame starts a group (one uni stream per
// subscriber), AppendFrame extends it. ANNOUNCE_INTEREST gets every
// broadcast under its prefix, then each publish and close. A subscriber
// starts at the latest group's first frame.
//
// # Invariants
//
//   - A write never waits on the network. WriteFrame copies the frame into
//     the track's group and moves each subscriber's position under the
//     track's lock; a goroutine of its own then nudges each subscriber's
//     writer (a non-blocking send), so the writer's cost grows with
//     subscribers only by that bookkeeping. Writers take frames under the
//     lock and write outside it.
//   - A subscriber that falls MaxQueuedBytes behind skips to the latest
//     group. The producer moves its position (under the same lock), so a
//     stalled subscriber holds at most that much of older groups alive
//     and never slows the producer or another subscriber; a group stream it
//     leaves unfinished is reset (CodeSkipped), never ended as if whole.
//   - Frames of a group go out in order on one stream, groups in order:
//     a subscriber's writer opens group n+1's stream only after ending
//     group n's.
//   - Closing a broadcast loses nothing a connected subscriber can take:
//     each writer sends every frame, ends each group stream, then ends the
//     subscribe stream, and Broadcast.Close (so Stats.Close) returns once
//     the peer has ended its half too, or after CloseTimeout. Shutdown
//     closes sessions only after that. The group streams travel apart
//     from the subscribe stream, so the client keeps taking groups for
//     ClientConfig.EndLinger after the end arrives.
//   - Peer input never panics: every length is checked against a cap
//     before it is used, every read of a peer's first message has a
//     deadline, and any violation closes that session with CodeProtocol.
//     Caps on sessions, subscriptions, announce interests, pending streams
//     and queued bytes, the Authorize hook and the handshake and idle
//     timeouts each count their refusals (Server.Stats).
package moqlite
