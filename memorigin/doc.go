// Package memorigin is an in-memory [moqstats.Origin] for tests, demos and
// users' own tests: it announces broadcasts in a map instead of a relay and
// lets a test read back what was published.
//
// # Track-latest semantics
//
// Like a MoQ relay, every track keeps its latest frame, so a subscriber that
// joins late still reads a baseline. A [Subscription] first yields the track's
// latest frame as of the moment it subscribed (if the track had one), then
// every frame written after that, in write order, none skipped, and finally
// [io.EOF] once the broadcast is closed and the queue is drained.
//
// # Invariant
//
// A subscriber sees a contiguous suffix of the track's frame sequence, starting
// at the latest frame at subscribe time. This holds because one mutex per
// [Broadcast] guards the latest frame of each track together with the queues
// of its subscriptions: WriteFrame replaces the latest frame and appends to
// every queue in one critical section, and Subscribe seeds a new queue with
// the latest frame and registers it in another, so no write can fall between
// "read latest" and "start receiving".
//
// Per-subscription queues are unbounded: a subscriber that never reads keeps
// every frame written since it subscribed in memory. That is fine for a test
// double; do not use this package where a slow reader must not grow memory.
//
// Frames are copied on write and again on every read, so callers may reuse
// their buffers and may modify the slices they get back.
//
// Everything is safe for concurrent use.
package memorigin
