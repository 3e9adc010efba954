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
//   - A write never waits on the network, and costs the same however many
//     subscribe. WriteFrame copies the frame into the track's latest
//     group and adds its length to the track's byte offset under the
//     track's lock; it neither visits nor moves a subscription. A
//     goroutine of its own then nudges each subscriber's writer (a
//     non-blocking send), off the producer. Writers take frames under the
//     lock and write outside it.
//   - A subscriber that falls MaxQueuedBytes behind skips to the latest
//     group: its writer, whenever it takes a frame, compares its own
//     offset with the track's, and past the cap moves to the latest
//     group's first frame. A group stream it leaves unfinished is reset
//     (CodeSkipped), never ended as if whole.
//   - A stalled subscriber holds at most about MaxQueuedBytes of older
//     groups alive (plus the latest), never an unbounded chain. The track
//     keeps a window of groups, from the oldest one a subscription is in
//     to the latest, linked forward; each group counts the subscriptions
//     in it. On each write the window's start moves past groups no
//     subscription is in and past groups with more than MaxQueuedBytes
//     written after them (whose subscriptions are past the cap and skip
//     when they next take a frame), cutting each one's link forward, so a
//     writer stalled in one holds that group alone. Each group leaves the
//     window once: the write's share is O(1).
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
//   - A Client holds bounded memory whatever the server sends: frames past
//     ClientConfig.MaxFrame close the session, at most MaxBufferedGroups
//     untaken groups are kept (the oldest stopped), and a group holding
//     MaxGroupBytes unread is not read further until its reader takes a
//     frame, so the transport's flow control holds the server back.
//
// # Writers and the producer
//
// The producer (track.write) and a subscription's writer meet only under
// the track's lock, and only the writer moves its position; the races
// that leaves, and why each is harmless:
//
//   - Joining: a subscription is added at the latest group's first frame
//     (before any write, at an empty placeholder group that the first
//     group follows), and counted in that group, under the lock, so the
//     group cannot leave the window before the writer starts. Its writer
//     looks at its group before it first waits, so frames written before
//     it started are not waited for.
//   - Wake-ups are never lost: a writer waits only after finding, under
//     the lock, nothing to send; a write after that is followed by a
//     nudge into the writer's one-slot channel (from a list taken under
//     the lock after the write, which holds every subscription added
//     before it), which the writer's wait then takes. A nudge to a writer
//     that found the frame already is one spare loop.
//   - Skipping: a writer past the cap is at least as far behind as the
//     bytes after its group, so a group that left the window for being
//     too far behind is never followed by its (cut) link: the writer
//     skips first. A group evicted because no one was in it has no
//     writer in it.
//   - Removal: the writer removes its subscription as it returns (or the
//     server before starting it), so the count of the group it was in
//     drops and the next write may move the window past it.
//   - Ending: the track's end closes the latest group, which has no next;
//     each writer drains to it, ends its stream and finishes, and the
//     window plays no part.
//
// # Ending a subscription
//
// @moq/lite (0.2.2, lite/subscriber.js) closes a track as soon as it sees
// the subscribe stream end: it stops reading the group streams of that
// subscription and ignores any that arrive later, so a frame the server
// sent but the client had not yet taken is lost without an error, though
// the bytes had arrived (over WebSocket every stream shares one ordered
// connection; the client's event loop just had not reached them). Ending
// the subscribe stream right after the final group would lose the final
// frames, which on a stats track are the final counts. So, once a
// broadcast is closed, each subscription's writer waits
// ServerConfig.EndLinger (default 1s) after its last group stream was
// fully written before it ends the subscribe stream. The wait ends early
// if the peer ends the subscription, and within the CloseTimeout that
// Broadcast.Close keeps, which so takes about EndLinger when anyone is
// subscribed (Shutdown closes its broadcasts at once, so their waits
// overlap). A subscription that never got a group does not wait. The
// linger is a bound, not an acknowledgement (moq-lite has none for
// groups): a peer that falls further behind than EndLinger at the close
// still loses what it had not reached, so a server whose subscribers run
// on loaded hosts may raise it. The
// tests of package interop run @moq/lite itself in Node against a live
// Stats with the default, over both WebSocket framings and every version.
//
// # Symmetric sessions
//
// Either side of a moq-lite session may announce and subscribe. With
// ServerConfig.Ingest, a Server asks each peer for the broadcasts it
// announces (ANNOUNCE_INTEREST on IngestConfig.Prefix), subscribes to
// their tracks and publishes each as its own: an aggregator endpoint
// that nodes dial and publish into, whose subscribers (package follow,
// other relays) read them as they read the server's. ClientConfig.Publish
// offers a Server's broadcasts over a session the client dialed, and
// Uplink is a moqstats.Origin built on it that redials. Caps
// (MaxBroadcasts, and the per-session ones) and Authorize (ActionPublish,
// per path) apply to what a peer announces, counted in
// Refusals.Broadcasts.
//
// A relay must not make up what it did not receive:
//
//   - A relayed group keeps its publisher's sequence, and a group that
//     reached the server cut short is followed by a sequence skipped, so
//     a subscriber sees every loss upstream as a skip (a consumer's Gap).
//   - A session lost is not a broadcast closed: the relayed broadcast
//     stays published for IngestConfig.Linger, and a peer that redials
//     goes on in the group it was relaying, with the frames it had
//     skipped, so no frame is written twice (an older cumulative frame
//     after a newer one would read as counters going back). Only
//     subscriptions that end while their session is up end the relayed
//     broadcast, after its final frames.
//   - Uplink's Close waits for the server to be subscribed to every track
//     before it ends them, and keeps the session up for UplinkConfig.Drain
//     after, so the final frames land before the session ends.
package moqlite
