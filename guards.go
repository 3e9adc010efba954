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
	if g == nil || g.closed.Load() {
		return nil
	}
	if t := new(TrackGuard); t.open(g.sl) {
		return t
	}
	return nil // g closed meanwhile and the broadcast was collected
}

// Close bumps announced_closed and unpins the broadcast. Only the first
// call has an effect.
func (g *BroadcastGuard) Close() {
	if g == nil || !g.closed.CompareAndSwap(false, true) {
		return
	}
	g.sl.Add(counters.AnnouncedClosed, 1)
	g.sl.Add(counters.Pins, counters.Unpin) // after the close: see TrackGuard.Close
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

// open opens t, a new guard, on sl: it attaches the lane, counts the pin
// in the lane's cell and bumps subscriptions there, so a busy broadcast's
// guards open and close without sharing a cache line. It reports false,
// leaving t detached, when sl's entry was collected (package registry:
// pin first, then check).
func (t *TrackGuard) open(sl *slot) bool {
	t.sl = sl
	sl.Attach(&t.lane)
	if !pinOn(&t.lane, counters.Pins, sl.state) {
		sl.Detach(&t.lane)
		return false
	}
	t.lane.Add(counters.Subscriptions, 1)
	return true
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
		// Unpin last: a pass that sees the pin gone then sees the close.
		cell[counters.Pins].Add(counters.Unpin)
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
	g.e.Value.gauge.Add(counters.SessionPins, counters.Unpin)
}
