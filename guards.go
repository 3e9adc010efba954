package moqstats

import (
	"sync/atomic"

	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/internal/registry"
	"github.com/moqstats/moqstats/shard"
)

// BroadcastGuard is an open broadcast (announce) on one role and tier. It
// pins the broadcast's counters until Close. Methods on a nil guard are
// no-ops.
type BroadcastGuard struct {
	sl     *slot // pinned until Close
	closed atomic.Bool
}

// Track opens a track guard on the same broadcast, role and tier: it bumps
// subscriptions now and subscriptions_closed on Close. name is not
// recorded. It returns nil once the broadcast guard is closed.
func (g *BroadcastGuard) Track(name string) *TrackGuard {
	if g == nil || g.closed.Load() || !g.sl.pins.TryAcquire() {
		return nil
	}
	return newTrackGuard(g.sl)
}

// Close bumps announced_closed and unpins the broadcast. Only the first
// call has an effect.
func (g *BroadcastGuard) Close() {
	if g == nil || !g.closed.CompareAndSwap(false, true) {
		return
	}
	g.sl.Add(counters.AnnouncedClosed, 1)
	g.sl.pins.Release()
}

// TrackGuard is an open track subscription on one broadcast, role and
// tier. Its bumps are the hot path: Bytes and Frame compile to a nil check,
// a pointer load and one atomic add, inlined into the caller, and never
// allocate, lock or call. Methods on a nil guard are no-ops.
type TrackGuard struct {
	// lane is where bumps land; detached (nil cell) once closed, which
	// is what drops later bumps and makes Close idempotent.
	lane shard.Lane
	sl   *slot // its entry pinned until Close
}

// newTrackGuard opens a track guard on sl, whose entry the caller pinned
// for it. The open and close bumps go through the guard's lane, like its
// payload bumps, so a busy broadcast's guards share no counter line with
// each other.
func newTrackGuard(sl *slot) *TrackGuard {
	t := &TrackGuard{sl: sl}
	sl.Attach(&t.lane)
	t.lane.Add(counters.Subscriptions, 1)
	return t
}

// Bytes bumps bytes by n.
func (t *TrackGuard) Bytes(n uint64) {
	if t != nil {
		t.lane.Add(counters.Bytes, n)
	}
}

// Frame bumps frames once.
func (t *TrackGuard) Frame() {
	if t != nil {
		t.lane.Add(counters.Frames, 1)
	}
}

// Group bumps groups once. Groups are rare next to frames, so Group also
// moves the guard's counter shard to the CPU its goroutine runs on now
// (see package shard), which keeps Bytes and Frame on core-local memory
// for goroutines that migrate.
func (t *TrackGuard) Group() {
	if t != nil {
		t.sl.Repin(&t.lane)
		t.lane.Add(counters.Groups, 1)
	}
}

// Close bumps subscriptions_closed and unpins the broadcast. Only the
// first call has an effect; bumps after it are dropped.
func (t *TrackGuard) Close() {
	if t == nil {
		return
	}
	if cell := t.sl.Detach(&t.lane); cell != nil {
		cell[counters.SubscriptionsClosed].Add(1)
		t.sl.pins.Release()
	}
}

// SessionGuard is a connected session under an auth root on one tier.
// Methods on a nil guard are no-ops.
type SessionGuard struct {
	e      *registry.Entry[sessionEntry]
	closed atomic.Bool
}

// Close bumps sessions_closed and unpins the root. Only the first call has
// an effect.
func (g *SessionGuard) Close() {
	if g == nil || !g.closed.CompareAndSwap(false, true) {
		return
	}
	g.e.Value.gauge.Add(counters.SessionsClosed, 1)
	g.e.Release()
}
