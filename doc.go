// Package moqstats counts per-broadcast usage for MoQ (Media over QUIC)
// relays and media gateways, and publishes it as JSON frames once per tick.
// It is a Go implementation of moq-net's stats module and writes the same
// bytes.
//
// A Stats aggregates counter bumps for the traffic a relay node handles and
// publishes them on one broadcast, <prefix>/node/<node> (or <prefix>/node
// when no node is configured), through an Origin. The broadcast carries
// four per-broadcast tracks, one per (tier, role):
//
//	publisher.json            external (customer) egress
//	subscriber.json           external ingress
//	internal/publisher.json   internal (cluster peer) egress
//	internal/subscriber.json  internal ingress
//
// and two session tracks, one per tier, keyed by auth root:
//
//	sessions.json             external sessions by root
//	internal/sessions.json    internal sessions by root
//
// Each per-broadcast frame maps broadcast path to a cumulative snapshot;
// each session frame maps auth root to {sessions, sessions_closed}. Tier,
// role and node are implied by the track and broadcast paths. Downstream
// consumers compute rates from successive cumulative snapshots (package
// consumer does).
//
// # Using it
//
// Build one Stats with New and Close it on shutdown. Per session, take a
// Handle for its tier (Stats.Tier) and open a SessionGuard
// (Handle.Session); per broadcast the session announces, a BroadcastGuard
// (Handle.Broadcast, then BroadcastStats.Publisher or .Subscriber); per
// subscription a session makes, a SubscriptionGuard (a SessionBroadcasts
// from Handle.PublisherBroadcasts or .SubscriberBroadcasts, then
// SessionBroadcasts.Subscribe); per track served, a TrackGuard
// (BroadcastGuard.Track, or BroadcastStats.PublisherTrack and
// .SubscriberTrack), whose Bytes, Frame and Group are the hot path. Close
// every guard when what it stands for ends. The README's "Wiring into a
// relay" maps a relay's events to these calls.
//
// # Counters
//
// Per (broadcast, role, tier):
//
//   - announced / announced_closed: broadcast guards opened and closed
//     (BroadcastStats.Publisher, BroadcastStats.Subscriber).
//   - broadcasts / broadcasts_closed: the per-(broadcast, session)
//     subscription sentinel driven by SessionBroadcasts: a session's first
//     live subscription to the broadcast bumps broadcasts, its last one
//     closing bumps broadcasts_closed. Summed over sessions, broadcasts -
//     broadcasts_closed is the number of distinct sessions subscribed now:
//     viewers, on the egress side. Use announced for all broadcasts seen.
//   - subscriptions / subscriptions_closed: track guards opened and closed.
//   - bytes / frames / groups: payload, bumped by track guards.
//
// Per (root, tier), on the session tracks: sessions / sessions_closed,
// sessions connected and disconnected under the auth root (Handle.Session),
// whether or not any data flows, which is what presence billing wants.
//
// Counters only go up. A broadcast or root whose guards have all closed is
// collected, and its final counts are kept for Config.Retention (5 minutes
// by default): if it comes back within that window it continues from them,
// so while retained a counter a frame shows never goes back. After the
// window (or with NoRetention, or when MaxEntries evicts it) it starts
// from zero: a counter going backwards between two frames means a new
// segment, and lifetime totals sum across segments.
//
// # Frames
//
// A key is in a frame on every tick where it is live (an open counter
// exceeds its closed counterpart: a guard is open) or its snapshot changed
// since the last frame written; once every pair is equal no traffic can
// flow and the key drops out after one last frame with its final counts. A
// slot that never saw a bump never appears (the first-tick None-as-default
// rule). A frame is written only when its bytes differ from the last one
// written; track-latest semantics give late subscribers the last frame.
// The wire format is byte-for-byte serde_json's: see package encode.
//
// # Lifecycle
//
// New publishes the stats broadcast before it returns and writes the
// baseline frame {} on all six tracks. A goroutine then runs one pass per
// Config.Interval; Flush runs one now. Passes never overlap. Close stops
// the goroutine, runs a final pass, so nothing bumped before Close is lost,
// and closes the broadcast; a concurrent Close waits for it. While the
// final pass's writes fail, Close retries it with a backoff for up to
// Config.CloseTimeout (5 seconds by default; negative: one attempt), so a
// transient origin failure at shutdown does not lose the final counts.
// Shutdown(ctx) is Close bounded by a context instead, as
// http.Server.Shutdown is: it returns the last write error once ctx is
// done, and nothing is written after it returns. The broadcast stays
// announced, with {} frames when idle, until Close. A panic in the Origin
// is recovered and returned as an error (ErrOriginPanicked).
//
// Go has no destructors, so every guard has a Close method. Close is
// idempotent. A guard's bumps after its Close are dropped. Every method
// on a nil guard, a nil *Stats or a zero Handle or BroadcastStats is a
// no-op. Guards that outlive their Stats stay harmless. A guard may be
// used from several goroutines, but Close must not race its own bumps: a
// bump that happens before Close is counted, one that races Close may not
// be.
//
// Handle and BroadcastStats are plain values and pin nothing; guards pin
// the entry their counters live in. An entry is collected on the first pass
// after its last guard closed, and only once its final state was written:
// a pass first collects, then reads what it collected, and keeps a
// collected entry until a frame carrying its final counts was written. A
// new entry for the same key that appears meanwhile (a write failed)
// continues from it, so a failed write delays counts by one pass and never
// loses them, and Close's one final pass publishes everything.
//
// # Guards dropped without Close
//
// A guard that becomes unreachable while open is closed by the garbage
// collector, exactly as Close would have, once: counted in Stats.Leaked and
// logged, at most once a second. Config.DisableLeakCheck turns it off. It
// never costs on a bump, and costs little on guard open and close: a guard
// starts on a per-P list of young guards and gets its runtime.AddCleanup
// only if it is still open at the next pass or after the next collection,
// so guards that open and close within moments never take the runtime's
// global lock. The reclaim happens when a collection finds the guard, not
// at once: for a guard dropped young, one collection after its
// registration, so at most one collection or pass later than a guard
// registered at open would be.
//
// # Untrusted paths
//
// Paths and roots come from clients. A key longer than Config.MaxPathLen
// (1,024 bytes by default) and a new key past Config.MaxEntries (65,536
// broadcasts held, live or retained, and as many roots per tier) are
// folded into OverflowKey, so totals stay exact while memory and frames
// stay bounded: a frame holds at most MaxEntries keys plus OverflowKey.
// Retained keys are evicted, oldest first, before anything is folded, but
// never one whose key is live again. Folds are counted in Stats.Overflowed and logged. The README
// lists every kind of bad input and what it gets.
//
// # Disabled stats
//
// A Config with no Origin builds a disabled Stats: no goroutine, nothing
// published, every guard constructor returns nil, and every bump is a
// no-op that allocates nothing. Call sites can hold a Handle
// unconditionally instead of threading a nil check.
//
// # Snapshot atomicity
//
// Counters are sharded per CPU and summed at snapshot time, closed counters
// before their open counterparts, so a frame never shows closed > open,
// on weakly ordered CPUs too. Package counters states the argument.
//
// # Cycles
//
// Broadcast paths under the configured prefix get an empty BroadcastStats
// whose guards are nil: serving the stats broadcast must not generate more
// stats. The prefix matches whole segments: ".stats" covers ".stats/node/x"
// but not ".statsfoo".
//
// # Paths
//
// Broadcast paths, auth roots, the prefix and the node are normalized as
// moq-net's Path is: leading and trailing '/' trimmed, runs of '/'
// collapsed. Invalid UTF-8 is replaced with U+FFFD, one per maximal
// subpart as Rust's from_utf8_lossy does, before a path becomes a key, so
// keys in a frame are unique and valid. A path that normalizes to "" is a
// path like any other, with key "".
package moqstats
