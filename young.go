package moqstats

import (
	"math/bits"
	"runtime"
	"sync"
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
// cleanup when it opens: it is pushed on a young list, one of a small set
// indexed by P, and registered only if it is still open when the list is
// drained. A guard that closes young costs a push and one atomic swap.
//
// # Invariants
//
//  1. A young list holds its guards strongly, so a guard dropped while
//     young stays reachable until a drain registers it; the collection
//     after that finds it unreachable and runs its cleanup.
//  2. Every guard in a list is drained eventually: every pass drains all
//     lists, and so does the first drain after each garbage collection
//     (a cleanup on a sentinel object, re-armed every cycle, until
//     Close). A list that fills is compacted by the guard pushing onto
//     it, dropping closed guards; when over half are still open it is
//     drained at once.
//  3. Close and the registrar agree through one atomic word per guard
//     (guardState.reg): nil while open and unregistered, the registration
//     once registered, closedMark once closed. Close swaps in closedMark:
//     if it finds a registration it stops the cleanup while the guard is
//     reachable (Close holds it), so the cleanup never runs. The registrar
//     adds the cleanup, while the list keeps the guard reachable, and
//     publishes it with a compare-and-swap from nil: if that fails, Close
//     came first, and the registrar stops the cleanup it added. So a guard
//     is closed once, by Close or by its cleanup, never both, and a guard
//     closed by Close is never reclaimed.
//
// # When a dropped guard is reclaimed
//
// Had it been registered when it opened, a dropped guard would be
// reclaimed by the first collection after it became unreachable. One
// dropped while young is registered by the first drain after it was
// dropped, the next pass or the drain after the next collection, whichever
// comes first, and reclaimed by the collection after that: one collection
// later, at most. Registered or young, its counts are exact.
//
// A guard opened while the Stats closes may be pushed after the final
// drain; if it is then dropped it is never reclaimed. Nothing after Close
// is published, so only Leaked can tell.

// youngCap is how many guards a young list holds before the guard pushing
// onto it compacts it. Small enough that a list (16 bytes a guard) stays
// within a few pages and a drain under its lock is short, large enough
// that churn on one P compacts rarely.
const youngCap = 128

// testHookRegistering, when set, runs in the registrar after it added a
// guard's cleanup and before it publishes it: where Close may race it.
var testHookRegistering atomic.Pointer[func()]

// registration is a registered guard's cleanup handle.
type registration struct{ cleanup runtime.Cleanup }

// closedMark is guardState.reg once its guard is closed.
var closedMark = new(registration)

// guardState is the word Close and the registrar agree through
// (invariant 3): nil, a registration, or closedMark.
type guardState struct{ reg atomic.Pointer[registration] }

// close marks the guard closed and stops its cleanup if it was registered.
// It reports whether this was the first close. st is inside the guard, so
// the guard is reachable until close returns: Stop takes effect.
func (st *guardState) close() bool {
	old := st.reg.Swap(closedMark)
	if old == closedMark {
		return false
	}
	if old != nil {
		old.cleanup.Stop()
	}
	return true
}

// closed reports whether the guard was closed.
func (st *guardState) closed() bool { return st.reg.Load() == closedMark }

// young reports whether the guard is open and unregistered.
func (st *guardState) young() bool { return st.reg.Load() == nil }

// publish publishes r, a cleanup the registrar just added for the guard,
// unless the guard closed meanwhile; then it stops it. The caller holds
// the guard (the young list does), so Stop takes effect.
func (st *guardState) publish(r *registration) {
	if hook := testHookRegistering.Load(); hook != nil {
		(*hook)()
	}
	if !st.reg.CompareAndSwap(nil, r) {
		r.cleanup.Stop()
	}
}

// youngGuard is a guard that may sit on a young list.
type youngGuard interface {
	// state returns the guard's state word.
	state() *guardState
	// register adds the guard's cleanup and publishes it (guardState
	// publish); the guard may have closed meanwhile.
	register(s *Stats)
}

// youngList is one young list. lock is held for a few instructions, with
// preemption off where procid.Pinned (the registrar copies the list out
// under it and registers outside); see tryAcquire.
type youngList struct {
	youngFields
	_ [(unsafe.Sizeof(youngFields{})+lineSize-1)/lineSize*lineSize - unsafe.Sizeof(youngFields{})]byte
}

type youngFields struct {
	lock atomic.Uint32
	// n and items are guarded by lock; items is allocated on first push.
	n     int
	items *[youngCap]youngGuard
}

// youngLists is a Stats' set of young lists, and what drains them.
type youngLists struct {
	lists []youngList // length a power of two
	// drainMu serializes drains (the pass, the collection hook and a full
	// list) and guards scratch.
	drainMu sync.Mutex
	scratch [youngCap]youngGuard
	// stopped is set by Close: the collection hook stops re-arming.
	stopped atomic.Bool
}

func newYoungLists() *youngLists {
	n := runtime.GOMAXPROCS(0)
	if !procid.Pinned {
		n = 4 * runtime.NumCPU() // random picks: few collisions
	}
	return &youngLists{lists: make([]youngList, 1<<bits.Len(uint(n-1)))}
}

// tryAcquire takes l's lock if it is free. Callers hold it pinned
// (procid.Pin), so a holder is never descheduled by Go's scheduler; one
// that finds the lock taken unpins and yields before it tries again, and
// never spins: on a machine with more Ps than cores the holder's thread
// may be descheduled by the OS.
func (l *youngList) tryAcquire() bool { return l.lock.CompareAndSwap(0, 1) }

func (l *youngList) release() { l.lock.Store(0) }

// push puts g, a guard just opened, on the young list of the caller's P.
func (s *Stats) pushYoung(g youngGuard) {
	y := s.young
	var fresh *[youngCap]youngGuard
	for {
		p := procid.Pin()
		l := &y.lists[p&(len(y.lists)-1)]
		if !l.tryAcquire() {
			procid.Unpin()
			runtime.Gosched()
			continue
		}
		if l.items == nil {
			if fresh == nil {
				// Allocate unpinned: an allocation may start a
				// collection, which must be able to block.
				l.release()
				procid.Unpin()
				fresh = new([youngCap]youngGuard)
				continue
			}
			l.items = fresh
		}
		if l.n < youngCap || l.compact() {
			l.items[l.n] = g
			l.n++
			l.release()
			procid.Unpin()
			return
		}
		l.release()
		procid.Unpin()
		y.drain(s, l) // over half still open: register them now
	}
}

// compact drops the closed and registered guards from a full list, and
// reports whether it has room now; false when over half are still young,
// which the caller then drains. l.lock must be held.
func (l *youngList) compact() bool {
	n := 0
	for i, g := range l.items[:l.n] {
		if g.state().young() {
			l.items[n] = l.items[i]
			n++
		}
	}
	clear(l.items[n:l.n])
	l.n = n
	return n <= youngCap/2
}

// drainAll registers every young guard still open, on every list.
func (y *youngLists) drainAll(s *Stats) {
	for i := range y.lists {
		y.drain(s, &y.lists[i])
	}
}

// drain empties l and registers the guards in it that are still open.
func (y *youngLists) drain(s *Stats, l *youngList) {
	y.drainMu.Lock()
	defer y.drainMu.Unlock()
	for {
		procid.Pin() // the lock is held with preemption off, as pushes hold it
		if l.tryAcquire() {
			break
		}
		procid.Unpin()
		runtime.Gosched()
	}
	n := 0
	if l.items != nil {
		n = copy(y.scratch[:], l.items[:l.n])
		clear(l.items[:l.n])
		l.n = 0
	}
	l.release()
	procid.Unpin()
	for _, g := range y.scratch[:n] {
		if g.state().young() {
			g.register(s)
		}
	}
	clear(y.scratch[:n])
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
