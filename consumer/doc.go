// Package consumer is the other end of the wire: it decodes the frames a
// moqstats Stats (or any producer of the same format, upstream's newer
// ones included) publishes, follows one or more nodes, and computes what
// dashboards and billing need from them: lifetime totals that survive
// counter resets, per-second rates, live viewers and live sessions.
//
// # Pieces
//
//   - Decoder turns a frame into a TrafficFrame or PresenceFrame, and
//     rejects anything a producer cannot have written with a *FrameError.
//     Frames come off the network: no input makes it panic, and the memory
//     it uses is bounded by its limits. Its PatchTraffic and PatchPresence
//     apply a compressed track's merge patch to a decoded frame.
//   - CompressedTrack rebuilds the values of a compressed track
//     (".json.z") frame by frame, from its groups of a DEFLATE-compressed
//     snapshot and merge patches.
//   - Aggregator is fed (node, track, time, frame) by Observe, EndTrack
//     and Gap and answers with a View: one row per node, track and key,
//     one per node and track for its health and expired keys, with
//     helpers that sum over nodes. It is safe for concurrent use.
//   - Follow feeds an Aggregator from a Source (anything with
//     Next(ctx) ([]byte, error), such as a *memorigin.Subscription), or
//     a FrameSource, which also tells each frame's group and index, as a
//     compressed track needs; Origin is a moqstats.Origin that feeds one
//     in-process from a Stats' writes; FollowHTTP follows a node's
//     HTTP/SSE stats endpoint, plain or compressed tracks, with
//     reconnects, backoff and Last-Event-ID.
//
// Node names come from the advertised path: NodeName(".stats",
// ".stats/node/sjc/1") is "sjc/1", and ".stats/node" is the node "".
//
// # Compressed tracks
//
// A producer may publish beside each track a compressed sibling
// ("publisher.json.z": moqstats with Config.Compressed, moq-net always)
// that carries the same values. Each of its groups is one raw DEFLATE
// stream (package zframe): frame 0 a full snapshot, the plain frame's
// JSON, and every later frame an RFC 7396 merge patch against the frame
// before it. CompressedTrack rebuilds the values frame by frame: a
// snapshot replaces the value; a patch merges into it, a null entry
// removing its key and an object entry setting the counters it names on
// the key's entry (a new key starts from zero), unknown members ignored
// as in frames. Snapshots and patches are checked as frames are, the
// inflated size of a frame is capped by the Decoder's MaxFrameSize, and
// a frame it rejects changes nothing already built.
//
// A patch needs every frame of its group before it. A follower that
// joins mid-group, loses a frame or rejects one cannot apply the rest of
// that group: each of its deltas is ErrMissingSnapshot, and the track
// resumes with the next group's snapshot, which a producer writes once
// the group reaches its delta budget or 256 frames (moqstats starts a
// new group at once after a failed write). Meanwhile the Aggregator gets
// nothing from the track, never a wrong value; counters are cumulative,
// so only rate resolution is lost, and the followers record a Gap. A MoQ
// subscription starts at the beginning of the current group and
// httpstats streams a ".z" track from frame 0 of its group, so with them
// only lost or rejected frames break a group.
//
// The value after each frame is what the plain track's frame of the same
// tick holds, and reaches the Aggregator as that frame would, with the
// same totals and rates: the Aggregator keeps one state per plain track,
// whichever flavor feeds it (View rows name the plain track). Follow one
// flavor of each track, not both, or every value applies twice. Follow
// needs a FrameSource for a compressed track; FollowHTTP follows
// compressed tracks with HTTPOptions.Compressed; Origin feeds the plain
// frames only (the compressed ones pass through to the next Origin).
//
// # Segments and lifetime totals
//
// Counters are cumulative and only grow while the producer keeps their
// entry. A segment is the life of one entry: it starts with the first
// frame that shows the key on a node's track (or the first after the
// segment before it ended) and ends when the key starts another one. A
// key's segment ends, and the next frame carrying the key starts a new
// one, when:
//
//   - a counter in the frame is below the one before (the producer
//     collected the entry and made a new one, counting from zero);
//   - its track ended (EndTrack, EndNode: the broadcast closed, so a later
//     frame is from a new producer counting from zero);
//   - the key was absent for longer than the retention window plus slack
//     (Config.Retention + Config.RetentionSlack), measured as below.
//
// A key's lifetime total is the sum of the last values of all its
// segments; totals never go down (they saturate at 2^64-1 rather than
// wrap). Keys that leave the frames still count: an entry's final values
// are always in a frame before the producer drops it, and the Aggregator
// keeps every key it saw (unless Config.ExpireAfter folds it into its
// track's expired total). Totals over nodes are sums of the nodes' totals.
// Totals start with the first frame seen: an entry's counts from before
// that are included (they are in its counters), entries collected before
// it are not.
//
// # Absence and retention
//
// A moqstats producer collects an entry once no guard pins it; with a
// retention window W (moqstats' Config.Retention, default 5 minutes) it
// keeps the entry's final counts for W, and a path that comes back within
// it continues from them, so it never looks reset. After W it counts from
// zero. Every frame a producer writes carries every key live at its pass
// and every key that changed, and an entry is collected only after a
// frame showed it idle. So the Aggregator knows when a key went quiet:
//
//   - a key is idle on a track from the first frame that showed it idle,
//     or that left it out after it was live;
//   - a broadcast path's entry spans all four per-broadcast tracks of its
//     node (both tiers, both roles), so a path live on any of them keeps
//     its entry and its counts on the others, however long it is absent
//     there. The path is quiet only while idle on every per-broadcast
//     track of the node, since the latest of those times. A session root
//     is quiet on its own track;
//   - frames lost or delivered late (Gap: a follower reconnected, or saw
//     frames skipped) count as activity: a key may have been live and
//     gone idle again unseen, so its quiet time starts again at the gap.
//
// A key quiet for longer than W + RetentionSlack when it comes back is a
// new segment, whatever its counters say. The producer collected the
// entry within a pass of the frame that showed it idle, dropped its
// counts at the first pass at least W later, and shows it back at the
// first pass after it returns: RetentionSlack must cover two producer
// intervals, the longest delay before a frame is delivered (a write that
// fails is retried at the next pass, a delay too), and the longest stall
// of a producer's pass. The Aggregator must see every per-broadcast track
// of a node (Origin and FollowHTTP do; with Follow, follow all six).
//
// # The ambiguity band
//
// A producer that re-creates an entry counts from zero, and the consumer
// sees only frames. If the new entry grows past its predecessor's final
// values in every counter before a frame shows it, nothing went down and
// nothing says a new entry began. With D the longest delivery delay:
//
//   - a key quiet for less than W - D when it comes back certainly
//     continued (unless the producer evicted its retained counts early,
//     at its MaxEntries: then it came back from zero);
//   - a key quiet for more than W + RetentionSlack certainly did not, and
//     is a new segment;
//   - between the two either may have happened, and only a decrease
//     tells. A re-created entry that, before a frame shows it, matches
//     everything its predecessor did in its whole life, closes included,
//     is then counted as a continuation, and its predecessor's totals are
//     missing from the lifetime total.
//
// moqstats shows a new entry in the first frame after its first bump, so
// the band takes a path coming back around W after it went quiet with a
// burst of guards that open and close within one interval: rare for a
// path that carried real traffic, and harmless for one that carried
// almost none. Without retention (W = 0: moqstats.NoRetention, upstream
// producers) the band is [0, RetentionSlack], where most returns fall, and
// decreases are the main signal: a re-created entry whose first frame
// shows a guard still open is below its predecessor's closed counters.
//
// Retention must be at least the window of every producer followed: a
// shorter one splits keys that continued, and counts their totals twice.
// A longer one only widens the band. 0 means DefaultRetention, moqstats'
// default; NoRetention declares producers without retention.
//
// # Expiry
//
// With Config.ExpireAfter set, a key idle for longer than ExpireAfter
// (quiet as above, or in an ended segment, since its end) is dropped: its
// row leaves the View and its lifetime total is added to its track's
// expired total (TrackRow.Expired, or ExpiredSessions, and ExpiredKeys),
// which View.Total and View.SessionsTotal include, so sums over keys and
// nodes stay exact. ExpireAfter must exceed Retention + RetentionSlack
// (New rejects a shorter one): a key that comes back after it was
// dropped would be a new segment anyway, and a new key is one. Observe
// looks for keys to drop every ExpireAfter/8 of frame time, so a key
// goes within ExpireAfter + ExpireAfter/8 of quiet if its node still
// sends frames; Expire does it on demand, for nodes that went silent. A
// frame that would take the Aggregator past MaxKeys first drops every
// key quiet for longer than Retention + RetentionSlack (it can be dropped
// exactly) before the frame is refused; such sweeps cost every key held,
// so they run at most once a second of frame time.
//
// # Rates
//
// A rate is the increase of a counter over an interval, per second. The
// interval is the time between the last two frames of the key's track:
// keys absent from a frame were neither live nor changed, so they are
// known not to have grown. Rows report Delta and Interval, and Rate
// divides them:
//
//   - a key's first frame (or the first after its track ended) has no
//     rate (RateKnown is false): its counts may be years old;
//   - a new segment's increase is its values, grown from zero since the
//     previous frame (where the key, if shown, belonged to the old entry);
//   - a key absent from the latest frame of its track has rate 0;
//   - a track with no frame for longer than Config.StaleAfter (default
//     3s) has rates 0 over the time since its last frame: producers write
//     a track whenever its bytes change, so silence means no change;
//   - an ended track has rates 0.
//
// Frame times are the times passed to Observe (arrival times, for the
// followers), so rates carry the jitter of delivery; averaged over a few
// frames it cancels out.
//
// # Live gauges
//
// Live viewers of a broadcast on a node are broadcasts - broadcasts_closed
// of its current segment on the node's publisher track; live sessions of
// a root are sessions - sessions_closed. A key absent from the frames is
// idle, so its last values give 0. When a node goes away (its tracks end),
// its gauges and rates drop to zero and its totals stay. A node that is
// merely unreachable keeps its last values: a View's Tracks tell how old
// they are.
//
// # Bounds
//
// Nodes may be buggy or compromised: what a follower holds is bounded by
// its limits, whatever they send. The Decoder caps frame size, entries,
// nesting and the length of a key (MaxKeyLen: a frame with a longer key
// is refused whole, like any frame it rejects). No frame is kept past the
// call that decoded it: the Aggregator, and a CompressedTrack's value,
// hold keys copied out of it. The Aggregator caps the keys it holds, per
// node (Config.MaxKeysPerNode, so that one node sending ever new keys
// cannot starve the others) and in total (Config.MaxKeys), and drops a
// frame that would exceed either whole, which loses nothing but rate
// resolution since counters are cumulative. Without ExpireAfter it never
// forgets a key, so MaxKeys is eventually reached by a producer with ever
// new paths; with it, the keys held are those seen within about
// ExpireAfter. A key held costs its length plus a few hundred bytes (the
// README gives the bound, which a test holds). A CompressedTrack holds
// one value of at most MaxEntries keys, the last 32 KiB of its group's
// inflated output and one inflated frame of at most MaxFrameSize bytes,
// per compressed track followed, and refuses a group past MaxGroupFrames
// frames. The HTTP follower caps the index, the tracks per node and every
// event at the Decoder's frame size, without buffering what it skips:
// a line or an event past the limit is read and dropped as it arrives,
// and a stream keeps at most 1 MiB of event buffer between events. Its
// default client refuses redirects.
//
// # Followers and lost frames
//
// A stats track keeps its latest frame only. A follower that connects,
// or reconnects, after frames were written receives the latest of them:
// a key that changed in an earlier one and went idle before the latest
// is not in it, and its change is counted only when the key changes
// again. FollowHTTP reconnects with backoff (keep HTTPOptions.MaxBackoff
// short where that matters) and calls Gap, so no absence is measured
// across the time it was away. The end event of an HTTP stream ends the
// track; a node that restarts while its follower is disconnected cannot
// be told from frames that were skipped (httpstats numbers a new
// broadcast's frames on from the old one's), and its new segments are
// told by decreases alone.
package consumer
