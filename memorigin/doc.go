// Package memorigin is an in-memory [moqstats.Origin] for tests, demos and
// users' own tests: it announces broadcasts in a map instead of a relay and
// lets a test read back what was published.
//
// # Groups and track-latest semantics
//
// Like a MoQ relay, a track is a sequence of groups of frames, and keeps its
// latest group, so a subscriber that joins late still reads a baseline.
// WriteFrame starts a new group holding its frame; AppendFrame (the
// [moqstats.Appender] that compressed tracks need) appends to the current
// group. Plain stats tracks only use WriteFrame, so their groups are single
// frames and the latest group is the latest frame. A [Subscription] first
// yields the track's current group as of the moment it subscribed (if the
// track had one), from its first frame, then every frame written after
// that, in write order, none skipped ([Subscription.NextFrame] tells each
// frame's group and index), and finally [io.EOF] once the broadcast is
// closed and the queue is drained. [Broadcast.Group] reads a track's
// current group.
//
// # Invariant
//
// A subscriber sees a contiguous suffix of the track's frame sequence,
// starting at the first frame of the current group at subscribe time. This
// holds because one mutex per [Broadcast] guards the current group of each
// track together with the queues of its subscriptions: a write changes the
// group and appends to every queue in one critical section, and Subscribe
// seeds a new queue with the group and registers it in another, so no write
// can fall between "read the group" and "start receiving".
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
