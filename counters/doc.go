// Package counters defines what moqstats counts: the counters of one
// (broadcast, role, tier) slot (the nine frames carry by default, and the
// three newer ones moq-net writes today), the two of a per-root session gauge, the
// pin count that decides when either may be collected, and the snapshot
// read that turns the counters into the values a frame carries.
//
// # Counters
//
// Every open counter has a closed counterpart bumped when the guard that
// bumped the open one closes:
//
//   - Announced / AnnouncedClosed: broadcast guards (announce, unannounce).
//   - Broadcasts / BroadcastsClosed: the per-(broadcast, session)
//     subscription sentinel: a session's first live subscription to the
//     broadcast, and its last one closing. Summed over sessions,
//     Broadcasts - BroadcastsClosed is the number of distinct sessions
//     subscribed now (viewers, on the egress side).
//   - Subscriptions / SubscriptionsClosed: track guards.
//   - Bytes, Frames, Groups: payload, cumulative.
//   - AnnouncedBytes: the broadcast name's length in bytes, added when a
//     broadcast guard opens and again when it closes; Fetches: one-shot
//     fetches requested; Datagrams: groups sent as datagrams (each also
//     counted in Groups, Frames and Bytes). Read leaves them out and
//     ReadAll includes them, for frames with all twelve fields.
//   - Sessions / SessionsClosed (session gauges): sessions connected and
//     disconnected under an auth root.
//
// All of them only go up. A snapshot is live while any open counter
// exceeds its closed counterpart: a guard is open, and traffic may flow.
//
// Pins (SessionPins for a gauge) counts the guards open on the counters,
// +1 when one opens and 2^64-1 (that is, -1) when it closes, in whatever
// cell is at hand, so only the total over all cells means anything. It is
// not what the frames carry: a guard counts its pin before it knows its
// entry is still live (see package registry), and a pin counted on a
// collected entry is withdrawn, invisibly.
//
// # Snapshot atomicity
//
// A snapshot must never show a closed counter above its open counterpart,
// even while guards open and close on other goroutines: downstream, that
// would be a negative number of viewers. Read guarantees it by summing all
// closed counters first (Sum with closedMask) and their open counterparts
// second (Sum with openMask), over every shard.
//
// Why that is enough, on any CPU, in Go's memory model: every bump is a
// sync/atomic add, and all sync/atomic operations behave as if executed in
// one sequentially consistent order, an operation that observes another's
// effect being synchronized after it. (moq-net's Rust module gets the same
// effect from Release adds on close and Acquire loads of closed counters;
// Go's atomics are at least that strong, on arm64 as on amd64.) Take a
// close bump C that the first Sum observes. Its guard's open bump O happened
// before C: the same guard did both, O at open and C at Close, in that
// order, or the caller's own synchronization ordered them. So O happened
// before every load the second Sum makes, and the second Sum sees O,
// whichever shard O landed in (package shard: a later Sum reaches every
// cell an earlier one did, and every cell a bump it must see went to).
// Every close the snapshot counts thus has its open counted too: closed
// <= open. The cost is a slight upward bias on open counters, from opens
// that land between the two Sums, which is never an impossible state.
//
// The order is pinned by TestSnapshotReadsClosedBeforeOpen, which reads
// this package's source, and exercised by concurrent tests.
//
// # What the tests show, and what they do not
//
// The concurrent tests run under the race detector on amd64 and arm64,
// natively and in an emulated arm64 guest (make test-arm64-race), once on a
// CPU with LSE atomics and once on one without, where every atomic add is a
// load-exclusive/store-exclusive loop. The race detector judges the
// executions it sees by the Go memory model, not by what the hardware did:
// a plain access that no happens-before edge orders against a conflicting
// one is reported even when the CPU happened to perform the two harmlessly.
// It cannot catch atomics read in the wrong order, such as open counters
// summed before closed ones: that program is race-free, and wrong.
//
// Nor does emulation reproduce arm64's reorderings. qemu's TCG performs the
// guest's loads and stores as the host's, so on an amd64 host the guest
// sees at most x86-TSO's one reordering (a load passing an earlier store).
// The reordering that would break Read, a load of an open counter taking
// effect before an earlier load of a closed one, is one x86 never makes:
// no emulated run can show it, and on arm64 hardware a run shows only the
// interleavings that happened to occur. A passing run shows that both
// atomic code paths work and that the runs seen kept closed <= open. That
// is why the argument above rests on the Go memory model, which binds every
// CPU Go supports, and not on what a test happened to see.
package counters
