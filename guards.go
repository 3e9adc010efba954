package moqstats

import (
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/shard"
)

// Guards, and the reclaim of guards dropped without Close.
//
// # Leak check
//
// Go has no destructors, and a relay that forgets a guard's Close would pin
// its entry forever and leave it live in every frame. So, unless
// Config.DisableLeakCheck is set, every guard that stays open gets a
// cleanup registered with runtime.AddCleanup: if the guard becomes
// unreachable while open, the garbage collector runs the cleanup, which
// makes the guard's closing bumps and unpins exactly as Close would, counts
// the reclaim in Stats.Leaked and logs it. The cleanup's argument holds
// what it needs to close (the counters, never the guard), so it does not
// keep the guard reachable. A guard registers late, only if it is still
// open when it leaves its young ring (young.go), so that guards
// which open and close within moments never touch the runtime's global
// lock; young.go states how Close and the registration agree, so that a
// guard is closed once, by Close or by its cleanup, never both. Bumps do
// not change.

// guardKind names a guard type in leak logs.
type guardKind uint8

const (
	trackGuard guardKind = iota
	broadcastGuard
	subscriptionGuard
	sessionGuard
)

func (k guardKind) String() string {
	return [...]string{"TrackGuard", "BroadcastGuard", "SubscriptionGuard", "SessionGuard"}[k]
}

// reclaimed records a guard closed by its cleanup.
func (s *Stats) reclaimed(kind guardKind, key string) {
	n := s.leaks.Add(1)
	if ok, suppressed := s.leakLog.allow(); ok {
		s.log.Warn("moqstats: guard dropped without Close; closed by the garbage collector",
			"guard", kind.String(), "key", logKey(key), "leaked", n, "suppressed", suppressed)
	}
}

// BroadcastGuard is an open broadcast (announce) on one role and tier. It
// pins the broadcast's counters until Close. Methods on a nil guard are
// no-ops.
type BroadcastGuard struct {
	s       *Stats
	sl      *slot  // pinned until Close
	nameLen uint64 // announced_bytes at open and at close
	st      guardState
}

// broadcastLeak is what a dropped BroadcastGuard's cleanup closes. The
// Stats is not in it but in the cleanup's function, one closure per Stats
// (reclaimers), so that the argument AddCleanup copies to the heap for
// every registered guard stays one size class smaller.
type broadcastLeak struct {
	sl      *slot
	nameLen uint64
}

// reclaimers are a Stats' cleanup functions, made once in New.
type reclaimers struct {
	broadcast    func(broadcastLeak)
	track        func(trackLeak)
	subscription func(subscriptionLeak)
	session      func(*sEntry)
}

func (s *Stats) makeReclaimers() {
	s.reclaim = reclaimers{
		broadcast:    func(l broadcastLeak) { reclaimBroadcast(s, l) },
		track:        func(l trackLeak) { reclaimTrack(s, l) },
		subscription: func(l subscriptionLeak) { reclaimSubscription(s, l) },
		session:      func(e *sEntry) { reclaimSession(s, e) },
	}
}

func newBroadcastGuard(s *Stats, sl *slot, nameLen uint64) *BroadcastGuard {
	g := &BroadcastGuard{s: s, sl: sl, nameLen: nameLen}
	if s.leakCheck {
		s.pushYoung(broadcastGuard, unsafe.Pointer(g))
	}
	return g
}

func (g *BroadcastGuard) register(s *Stats) {
	g.st.publish(&registration{runtime.AddCleanup(g, s.reclaim.broadcast, broadcastLeak{g.sl, g.nameLen})})
}

func reclaimBroadcast(s *Stats, l broadcastLeak) {
	closeBroadcastSlot(l.sl, l.nameLen)
	s.reclaimed(broadcastGuard, l.sl.entry.Key())
}

func closeBroadcastSlot(sl *slot, nameLen uint64) {
	sl.Add(counters.AnnouncedClosed, 1)
	sl.Add(counters.AnnouncedBytes, nameLen)
	sl.Add(counters.Pins, counters.Unpin) // after the close: see TrackGuard.Close
}

// Track opens a track guard on the same broadcast, role and tier: it bumps
// subscriptions now and subscriptions_closed on Close. name is not
// recorded. It returns nil once the broadcast guard or the Stats is
// closed.
func (g *BroadcastGuard) Track(name string) *TrackGuard { return g.open(false) }

// Fetch opens a guard for one fetch of the broadcast on the same role and
// tier: it bumps fetches now, and its Bytes, Frame, Group and Datagram
// count the fetched payload; its Close bumps nothing (a fetch is not a
// subscription) but ends the pin. fetches is written with
// Config.NewerCounters; the payload always counts. name is not recorded.
// It returns nil once the broadcast guard or the Stats is closed.
func (g *BroadcastGuard) Fetch(name string) *TrackGuard { return g.open(true) }

func (g *BroadcastGuard) open(fetch bool) *TrackGuard {
	if g == nil || g.st.closed() || g.s.closed.Load() {
		return nil
	}
	return openTrack(g.s, g.sl, fetch)
}

// Close bumps announced_closed and unpins the broadcast. Only the first
// call has an effect.
func (g *BroadcastGuard) Close() {
	if g == nil {
		return
	}
	if g.st.close() {
		closeBroadcastSlot(g.sl, g.nameLen)
	}
}

// TrackGuard is an open track subscription on one broadcast, role and
// tier. Its bumps are the hot path: Bytes and Frame compile to a nil check,
// a pointer load and one atomic add, inlined into the caller, and never
// allocate, lock or call. Methods on a nil guard are no-ops.
type TrackGuard struct {
	// lane is where bumps land; detached (nil cell) once closed, which
	// is what drops later bumps and makes Close idempotent.
	lane shard.Lane
	// tagged is the guard's *slot (its entry pinned until Close) with
	// the guard's flags in its low bits; once the leak check registered
	// the guard, its *trackRegistration, which holds the slot, and
	// trackRegistered set. So a guard is 16 bytes whether the check is on
	// or off: churn is mostly allocation and the collections it causes.
	// Written before the guard is shared and once by its registrar
	// (young.go, invariant 2), so loads after the open are atomic.
	tagged unsafe.Pointer
}

// TrackGuard flags, in the low bits of its tagged pointer.
const (
	trackFetch      = 1 // a fetch: no subscription to close
	trackRegistered = 2 // tagged points at a trackRegistration
	trackFlags      = trackFetch | trackRegistered
)

// The flags must fit under the alignment of what tagged points at.
var (
	_ [unsafe.Alignof(slot{}) - trackFlags - 1]struct{}
	_ [unsafe.Alignof(trackRegistration{}) - trackFlags - 1]struct{}
)

// trackRegistration is a registered track guard's cleanup handle, and the
// slot its tagged pointer held before.
type trackRegistration struct {
	sl      *slot
	cleanup runtime.Cleanup
}

// slot returns the guard's slot. Masking the flags off a tagged pointer
// stays within the allocation it points into.
func (t *TrackGuard) slot() *slot {
	p := atomic.LoadPointer(&t.tagged)
	if uintptr(p)&trackRegistered != 0 {
		return (*trackRegistration)(unsafe.Pointer(uintptr(p) &^ trackFlags)).sl
	}
	return (*slot)(unsafe.Pointer(uintptr(p) &^ trackFlags))
}

// young reports whether the guard is open and unregistered: a track
// guard is closed when its lane is detached (young.go, invariant 3).
func (t *TrackGuard) young() bool {
	return uintptr(atomic.LoadPointer(&t.tagged))&trackRegistered == 0 && t.lane.Cell() != nil
}

// register captures the cell the lane is attached to now, where the
// cleanup makes the closing bumps (any cell is summed, so a later Repin
// does not matter). The registration replaces the slot in tagged, and
// the lane is looked at again after it; Close detaches and then looks at
// tagged (young.go, invariant 3).
func (t *TrackGuard) register(s *Stats) {
	cell := t.lane.Cell()
	if cell == nil {
		return // closed
	}
	p := atomic.LoadPointer(&t.tagged)
	fetch := uintptr(p) & trackFetch
	r := &trackRegistration{sl: (*slot)(unsafe.Pointer(uintptr(p) &^ trackFlags))}
	r.cleanup = runtime.AddCleanup(t, s.reclaim.track, trackLeak{r.sl, cell, fetch != 0})
	registering()
	atomic.StorePointer(&t.tagged, unsafe.Pointer(uintptr(unsafe.Pointer(r))+fetch+trackRegistered))
	if t.lane.Cell() == nil {
		stop(&r.cleanup, unsafe.Pointer(t)) // Close detached meanwhile, and may not have seen r
	}
}

// trackLeak is what a dropped TrackGuard's cleanup closes: the cell its
// lane was on when it registered.
type trackLeak struct {
	sl    *slot
	cell  *shard.Cell
	fetch bool
}

// openTrack opens a track guard on sl, or returns nil when sl's entry was
// collected meanwhile (the caller moves on to its successor).
//
// It attaches the lane, counts the pin in the lane's cell and bumps
// subscriptions there, so a busy broadcast's guards open and close without
// sharing a cache line (package registry: pin first, then check).
func openTrack(s *Stats, sl *slot, fetch bool) *TrackGuard {
	var flags uintptr
	if fetch {
		flags = trackFetch
	}
	t := new(TrackGuard)
	t.tagged = unsafe.Pointer(uintptr(unsafe.Pointer(sl)) + flags)
	sl.Attach(&t.lane)
	if !pinOn(&t.lane, counters.Pins, &sl.entry.State) {
		sl.Detach(&t.lane)
		return nil
	}
	if fetch {
		t.lane.Add(counters.Fetches, 1)
	} else {
		t.lane.Add(counters.Subscriptions, 1)
	}
	if s.leakCheck {
		s.pushYoung(trackGuard, unsafe.Pointer(t))
	}
	return t
}

func reclaimTrack(s *Stats, l trackLeak) {
	if !l.fetch {
		l.cell[counters.SubscriptionsClosed].Add(1)
	}
	l.cell[counters.Pins].Add(counters.Unpin)
	s.reclaimed(trackGuard, l.sl.entry.Key())
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
		t.slot().Repin(&t.lane)
		t.lane.Add(counters.Groups, 1)
	}
}

// Datagram counts a group sent as one datagram: it bumps datagrams, and
// groups, frames and bytes (by n) for the group and its one frame.
// datagrams is written with Config.NewerCounters; the rest always counts.
func (t *TrackGuard) Datagram(n uint64) {
	if t != nil {
		t.lane.Add(counters.Datagrams, 1)
		t.lane.Add(counters.Groups, 1)
		t.lane.Add(counters.Frames, 1)
		t.lane.Add(counters.Bytes, n)
	}
}

// Close bumps subscriptions_closed (not for a fetch) and unpins the
// broadcast. Only the first call has an effect; bumps after it are
// dropped.
func (t *TrackGuard) Close() {
	if t == nil {
		return
	}
	cell := t.lane.Detach()
	// After the detach: see TrackGuard.register.
	p := atomic.LoadPointer(&t.tagged)
	if uintptr(p)&trackRegistered != 0 {
		stop(&(*trackRegistration)(unsafe.Pointer(uintptr(p)&^trackFlags)).cleanup, unsafe.Pointer(t))
	}
	if cell != nil {
		if uintptr(p)&trackFetch == 0 {
			cell[counters.SubscriptionsClosed].Add(1)
		}
		// Unpin last: a pass that sees the pin gone then sees the close.
		cell[counters.Pins].Add(counters.Unpin)
	}
}

// SessionGuard is a connected session under an auth root on one tier.
// Methods on a nil guard are no-ops.
type SessionGuard struct {
	e  *sEntry
	st guardState
}

func newSessionGuard(s *Stats, e *sEntry) *SessionGuard {
	g := &SessionGuard{e: e}
	if s.leakCheck {
		s.pushYoung(sessionGuard, unsafe.Pointer(g))
	}
	return g
}

func (g *SessionGuard) register(s *Stats) {
	g.st.publish(&registration{runtime.AddCleanup(g, s.reclaim.session, g.e)})
}

func reclaimSession(s *Stats, e *sEntry) {
	closeSession(e)
	s.reclaimed(sessionGuard, e.Key())
}

func closeSession(e *sEntry) {
	e.Value.gauge.Add(counters.SessionsClosed, 1)
	e.Value.gauge.Add(counters.SessionPins, counters.Unpin)
}

// Close bumps sessions_closed and unpins the root. Only the first call has
// an effect.
func (g *SessionGuard) Close() {
	if g == nil {
		return
	}
	if g.st.close() {
		closeSession(g.e)
	}
}
