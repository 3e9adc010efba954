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
//     it uses is bounded by its limits.
//   - Aggregator is fed (node, track, time, frame) by Observe and EndTrack
//     and answers with a View: one row per node, track and key, with
//     helpers that sum over nodes. It is safe for concurrent use.
//   - Follow feeds an Aggregator from a Source (anything with
//     Next(ctx) ([]byte, error), such as a *memorigin.Subscription);
//     Origin is a moqstats.Origin that feeds one in-process from a Stats'
//     writes; FollowHTTP follows a node's HTTP/SSE stats endpoint, with
//     reconnects, backoff and Last-Event-ID.
//
// Node names come from the advertised path: NodeName(".stats",
// ".stats/node/sjc/1") is "sjc/1", and ".stats/node" is the node "".
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
//   - with Config.Retention set, the last frame carrying the key showed
//     it idle (no open counter above its closed one) and it comes back
//     more than Retention + RetentionSlack later.
//
// A key's lifetime total is the sum of the last values of all its
// segments; totals never go down (they saturate at 2^64-1 rather than
// wrap). Keys that leave the frames still count: an entry's final values
// are always in a frame before the producer drops it, and the Aggregator
// keeps every key it saw. Totals over nodes are sums of the nodes' totals.
// Totals start with the first frame seen: an entry's counts from before
// that are included (they are in its counters), entries collected before
// it are not.
//
// # The ambiguity band
//
// A producer that re-creates an entry counts from zero, and the consumer
// sees only frames. If the new entry grows past its predecessor's final
// values in every counter before a frame shows it, nothing went down and
// nothing says a new entry began: the Aggregator continues the old
// segment and under-counts by the predecessor's totals. moqstats writes
// the final state of an entry before collecting it and shows a new entry
// in the first frame after its first bump, so this takes a re-created
// entry that, within one interval, matches everything its predecessor did
// in its whole life, closes included: rare for a path that carried real
// traffic, common for one that carried almost none.
//
// Retention removes most of it: a producer with a retention window W
// keeps an idle entry for W, so a path that comes back within W continues
// its counts and can never look reset. With Config.Retention = W, a key
// idle for more than W + RetentionSlack is a new segment when it returns,
// whatever its counters say. Between about W - interval and W + 2·interval
// (plus delivery jitter) either may have happened; there the Aggregator
// relies on decreases alone. RetentionSlack (default 5s) should cover two
// producer intervals and the worst delivery delay; keys that return in
// the band are rare, since most paths return within seconds or not for
// hours. Leave Retention at 0 for producers without retention.
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
// The Decoder caps frame size, entries and nesting; the Aggregator caps
// the keys it holds (Config.MaxKeys) and drops a frame that would exceed
// it whole, which loses nothing but rate resolution since counters are
// cumulative. The HTTP follower caps the index, the tracks per node and
// every event at the Decoder's frame size, without buffering what it
// skips.
package consumer
