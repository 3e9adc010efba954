// Package procid names a small set of per-P resources a caller may use
// without a lock held across a preemption: Pin returns an index and keeps
// the calling goroutine on its P until Unpin, so a spinlock taken between
// the two is never held by a descheduled goroutine.
//
// Which index Pin returns depends on the build, as in package shard:
//
//   - default: the id of the caller's P, through runtime.procPin and
//     runtime.procUnpin (linknamed; the runtime keeps them for this use,
//     go.dev/issue/67401). Preemption is off until Unpin.
//   - tag moqstats_purego: a random number, and no pinning; Pinned is
//     false so callers know a lock holder may be descheduled.
//
// Callers reduce the index modulo their number of resources: GOMAXPROCS
// may grow after they sized them.
package procid
