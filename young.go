package moqstats

import (
	"math/bits"
	"runtime"
	"sync/atomic"
	"unsafe"
	"weak"

	"github.com/moqstats/moqstats/internal/procid"
)

// Registering guards late: how the leak check stays off guard churn.
//
// runtime.AddCleanup and Cleanup.Stop each take the heap's global specials
// lock and allocate, which costs more than a whole guard open and close,
// and several Ps churning guards fight over that lock. Most guards in
// churn close within moments of opening. So a guard does not register its
// cleanup when it opens: it is put in a young ring, one per guard kind in
// each of a small set of lists indexed by P, and registered only if it is
// still open when it leaves the ring. A guard that closes young costs one
// atomic swap into the ring and a load of the guard it displaces.
//
// A guard's slot in its ring is picked from its address: each P allocates
// from spans of its own, in address order, so a P's guards of one kind
// walk their ring slot by slot, and a slot comes round again only after
// youngSlots/2 or more younger guards; by then the guard in it has almost
// always closed. A closed guard stays in its slot until displaced or
// drained, so a ring keeps at most youngSlots guards' memory alive, and a
// Stats at most 4 KiB of rings per P plus what they hold.
//
// # Invariants
//
//  1. A ring holds its guards strongly, so a guard dropped while young
//     stays reachable until it leaves the ring; whoever takes it out holds
//     it while registering it, and the collection after that finds it
//     unreachable and runs its cleanup.
//  2. Each guard leaves its ring exactly once, by an atomic swap: either a
//     younger guard displaces it (the guard opening then registers it if
//     it is still young), or a drain takes it. Every pass drains every
//     ring, and so does the first drain after each garbage collection (a
//     cleanup on a sentinel object, re-armed every cycle, until Close).
//  3. Close and the registrar agree through the guard's state word
//     (guardState.reg): nil while open and unregistered, the registration
//     once registered, and, for guards other than track guards, closedMark
//     once closed. Such a Close swaps in closedMark and stops a
//     registration it finds; the registrar adds the cleanup and publishes
//     it with a compare-and-swap from nil, and stops the cleanup it added
//     when that fails. A track guard keeps its state in its tagged slot
//     pointer (TrackGuard.tagged), which the registrar replaces with the
//     registration, and is closed by detaching its lane, which its Close
//     does anyway, so its Close pays no second atomic: it detaches and
//     then loads the tagged word, while the registrar stores the
//     registration there and then loads the lane. Both are sequentially
//     consistent, so at least one of them sees the other, and whichever
//     does stops the cleanup (stopping twice is harmless). Either holds
//     the guard until Stop returned (stop), since Stop cannot take back a
//     cleanup already queued. So a guard is closed once, by Close or by
//     its cleanup, never both, and a guard closed by Close is never
//     reclaimed.
//
// # When a dropped guard is reclaimed
//
// Had it been registered when it opened, a dropped guard would be
// reclaimed by the first collection after it became unreachable. One
// dropped while young is registered when it leaves its ring (at the next
// pass, the drain after the next collection, or when displaced, whichever
// comes first) and reclaimed by the collection after that: one collection
// later, at most. Registered or young, its counts are exact.
//
// A guard opened while the Stats closes may be put in a ring after the
// final drain; if it is then dropped it is never reclaimed. Nothing after
// Close is published, so only Leaked can tell.

// youngSlots is how many guards of one kind a ring holds. With slots
// picked by address in 16-byte steps, a P can have 2048/size of its guards
// open and young before opening another registers one early: 128 track
// guards (16 bytes), 64 broadcast guards (32).
const youngSlots = 128

// youngRing is one kind's ring of young guards on one list. A ring is
// 1 KiB, a size class aligned to its size, so rings of different Ps never
// share a cache line.
type youngRing [youngSlots]unsafe.Pointer

// youngRings is one list: a lazily made ring per guard kind, indexed by
// guardKind. Read on every push, written once per ring.
type youngRings [4]atomic.Pointer[youngRing]

// testHookRegistering, when set, runs in the registrar after it added a
// guard's cleanup and before it publishes it: where Close may race it.
var testHookRegistering atomic.Pointer[func()]

// testHookStopping, when set, runs in stop just before Stop: where a guard
// not held would be collected.
var testHookStopping atomic.Pointer[func()]

// registration is a registered guard's cleanup handle.
type registration struct{ cleanup runtime.Cleanup }

// closedMark is guardState.reg once its guard is closed (not for track
// guards: invariant 3).
var closedMark = new(registration)

// guardState is the word Close and the registrar agree through
// (invariant 3).
type guardState struct{ reg atomic.Pointer[registration] }

// close marks the guard closed and stops its cleanup if it was registered.
// It reports whether this was the first close. st is inside the guard.
func (st *guardState) close() bool {
	old := st.reg.Swap(closedMark)
	if old == closedMark {
		return false
	}
	if old != nil {
		stop(&old.cleanup, unsafe.Pointer(st))
	}
	return true
}

// closed reports whether the guard was closed.
func (st *guardState) closed() bool { return st.reg.Load() == closedMark }

// young reports whether the guard is open and unregistered (not for track
// guards: see TrackGuard.young).
func (st *guardState) young() bool { return st.reg.Load() == nil }

// publish publishes r, a cleanup the registrar just added for the guard,
// unless the guard closed meanwhile; then it stops it.
func (st *guardState) publish(r *registration) {
	registering()
	if !st.reg.CompareAndSwap(nil, r) {
		stop(&r.cleanup, unsafe.Pointer(st))
	}
}

func registering() {
	if hook := testHookRegistering.Load(); hook != nil {
		(*hook)()
	}
}

// stop stops c, the cleanup of the guard g points into, holding the guard
// until Stop returned. Stop does nothing to a cleanup the collector has
// already queued, and a guard is unreachable from its last use on, even
// while its Close or its registrar still runs: a guard closed and dropped
// by its owner would otherwise be reclaimed too if a collection ended just
// before Stop.
func stop(c *runtime.Cleanup, g unsafe.Pointer) {
	if hook := testHookStopping.Load(); hook != nil {
		(*hook)()
	}
	c.Stop()
	runtime.KeepAlive(g)
}

// youngLists is a Stats' set of young lists.
type youngLists struct {
	lists []youngRings // length a power of two
	// stopped is set by Close: the collection hook stops re-arming.
	stopped atomic.Bool
}

func newYoungLists() *youngLists {
	n := runtime.GOMAXPROCS(0)
	if !procid.Pinned {
		n = 4 * runtime.NumCPU() // picked by page: few collisions
	}
	return &youngLists{lists: make([]youngRings, 1<<bits.Len(uint(n-1)))}
}

// pushYoung puts g, a guard of kind k just opened, in its ring on the
// caller's P. The guard it displaces is registered now if still young.
func (s *Stats) pushYoung(k guardKind, g unsafe.Pointer) {
	y := s.young
	var p int
	if procid.Pinned {
		p = procid.Pin() // only to pick a list: a ring's slots are atomic
		procid.Unpin()
	} else {
		// No P id: pick by the guard's 8 KiB page. A P allocates from
		// spans of its own, so its guards share a list for a span's worth
		// of opens while another P's go elsewhere; a list picked at random
		// per guard moved every ring line between cores.
		p = int(uintptr(g) >> 13)
	}
	rings := &y.lists[p&(len(y.lists)-1)]
	r := rings[k].Load()
	if r == nil {
		r = rings.make(k)
	}
	if old := atomic.SwapPointer(&r[uintptr(g)>>4%youngSlots], g); old != nil {
		registerIfYoung(s, k, old)
	}
}

// make returns the ring of kind k, making it if it has none yet.
func (rings *youngRings) make(k guardKind) *youngRing {
	rings[k].CompareAndSwap(nil, new(youngRing))
	return rings[k].Load()
}

// registerIfYoung registers g, a guard of kind k just taken out of its
// ring, if it is open and unregistered.
func registerIfYoung(s *Stats, k guardKind, g unsafe.Pointer) {
	switch k {
	case trackGuard:
		if t := (*TrackGuard)(g); t.young() {
			t.register(s)
		}
	case broadcastGuard:
		if b := (*BroadcastGuard)(g); b.st.young() {
			b.register(s)
		}
	case subscriptionGuard:
		if sg := (*SubscriptionGuard)(g); sg.st.young() {
			sg.register(s)
		}
	case sessionGuard:
		if sg := (*SessionGuard)(g); sg.st.young() {
			sg.register(s)
		}
	}
}

// drainAll takes every guard out of every ring and registers those still
// open. Drains may run at once (the pass and the collection hook): each
// guard goes to the one whose swap takes it.
func (y *youngLists) drainAll(s *Stats) {
	for i := range y.lists {
		for k := range y.lists[i] {
			r := y.lists[i][k].Load()
			if r == nil {
				continue
			}
			for j := range r {
				if atomic.LoadPointer(&r[j]) == nil {
					continue // load first: a swap takes the line exclusively
				}
				if g := atomic.SwapPointer(&r[j], nil); g != nil {
					registerIfYoung(s, guardKind(k), g)
				}
			}
		}
	}
}

// gcSentinel is the object whose cleanup tells the young lists that a
// collection ran. It holds a pointer so the tiny allocator never packs it
// with another object that would keep it reachable.
type gcSentinel struct{ _ *byte }

// armDrainAfterGC makes the next collection drain the young lists
// (invariant 2), and re-arm, until Close. The cleanup holds s weakly: a
// Stats closed, or dropped, is not kept alive by it for another cycle.
func (s *Stats) armDrainAfterGC() {
	runtime.AddCleanup(&gcSentinel{}, drainAfterGC, weak.Make(s))
}

func drainAfterGC(w weak.Pointer[Stats]) {
	s := w.Value()
	if s == nil || s.young.stopped.Load() {
		return
	}
	s.young.drainAll(s)
	s.armDrainAfterGC()
}
