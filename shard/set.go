package shard

import (
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Width is the number of counters in a Set: the twelve of one
// (broadcast, role, tier) slot and the pin count of the guards on it, the
// widest group moqstats keeps. Narrower groups use some of them.
const Width = 13

// lineSize is the unit of all padding here: the cache line size of the
// target as golang.org/x/sys/cpu knows it (64 on amd64, 128 on arm64).
const lineSize = unsafe.Sizeof(cpu.CacheLinePad{})

// Cell is one shard of counters: Width adjacent uint64s. A Lane points at
// one.
type Cell = [Width]atomic.Uint64

// Size of a cell, rounded up to whole lines. Constant expressions, so the
// padding array below is sized at compile time.
const (
	cellFieldsSize = unsafe.Sizeof(Cell{})
	cellSize       = (cellFieldsSize + lineSize - 1) / lineSize * lineSize
)

// cell is a Cell padded to whole lines and allocated on its own, so two
// cells never share a line and bumps from different Ps never write the
// same line. On amd64 the nine counters take 72 bytes and the cell 128, a
// line pair, which also keeps Intel's adjacent-line prefetcher from
// coupling two cells (the reason sync.Pool pads its per-P locals to 128).
type cell struct {
	v Cell
	_ [cellSize - cellFieldsSize]byte
}

// table holds an inflated Set's cells, one slot per P (or per CPU in the
// purego build). Slots fill lazily. A table never shrinks and a filled slot
// never changes; a larger table replacing it starts as a copy of it, and
// both happen under Set.mu, so a later table reaches every cell an earlier
// one did.
type table struct {
	slots []atomic.Pointer[cell] // length is a power of two
}

// A Set is a group of Width uint64 counters that only go up. The zero
// value is ready to use. A Set must not be copied after first use (go vet
// reports copies: its atomics carry noCopy markers).
//
// Hot callers bump through a Lane attached to the set; one-off bumps use
// Add. Everything is safe for concurrent use, and Sum may run concurrently
// with bumps.
//
// A Set does not pad itself: its base cell is hot whenever one goroutine
// bumps it, so its owner must place it where no other hot data shares its
// lines, at the start of an allocation aligned to a line (package moqstats
// embeds it in a slot padded to a power-of-two size for this).
type Set struct {
	// base takes the one lane that attaches to an idle set, and one-off
	// bumps when there is no cell for the caller. Summed forever.
	base Cell
	// table is nil until a lane attaches while another is attached (the
	// set may then be bumped from two goroutines at once). Replaced only
	// by a larger table, under mu.
	table atomic.Pointer[table]
	// mu serializes table creation, growth and cell creation. Never taken
	// on a bump.
	mu sync.Mutex
}

// A Lane is one caller's path into a Set: a pointer to the cell its bumps
// land in. A guard embeds one. Bumping through a lane is a pointer load and
// an atomic add, inlined into the caller. The zero Lane is detached and
// drops bumps.
type Lane struct {
	// c is the attached cell, nil when detached. Written by Attach
	// (before the lane is shared, so a plain store), Repin (compare-and-
	// swap, so it cannot revive a detached lane) and Detach (swap to nil);
	// read by every bump.
	c unsafe.Pointer // *Cell
}

func (l *Lane) cell() *Cell { return (*Cell)(atomic.LoadPointer(&l.c)) }

// Cell returns the cell l is attached to now, nil when it is detached.
func (l *Lane) Cell() *Cell { return l.cell() }

// Add adds n to counter i of the lane's cell, or does nothing when the
// lane is detached. i must be in [0, Width); callers pass constants.
func (l *Lane) Add(i int, n uint64) {
	if c := l.cell(); c != nil {
		c[i].Add(n)
	}
}

// Attach attaches l, which must be detached and not yet shared with other
// goroutines (Attach stores to it without synchronization), to s. While
// the set is not inflated, a lane takes the base cell when base is free,
// so a set bumped by one goroutine at a time never allocates. Any other
// lane gets a cell of its own P (purego: a cell at random), inflating the
// set on first need; once inflated, every lane does, so lanes opening and
// closing on a busy set never touch a shared line for base. It returns
// the cell l attached to.
//
// Base is free when no lane that opened there is still open, which the
// caller tells by two counters it bumps once in its lane's cell: opened
// as the lane opens, closed as it closes (see baseFree). Attach only
// loads, and Detach does nothing for base: a flag taken with a
// compare-and-swap and cleared on detach cost two locked instructions per
// lane.
func (s *Set) Attach(l *Lane, opened, closed int) *Cell {
	c := &s.base
	if s.table.Load() != nil || !s.baseFree(opened, closed) {
		c = s.laneCell()
	}
	l.c = unsafe.Pointer(c)
	return c
}

// baseFree reports whether every lane that counted opened in base has
// counted closed there. Closed is loaded first: both only grow, so equal
// loads mean that at the first load no lane on base was open and none
// opened until the second.
//
// It is a hint, not a lock: a lane that attached to base and has not yet
// counted opened is not seen, so two lanes attaching at that moment both
// take base, and so does a lane that never counts opened. Both are
// correct, as base is summed like any cell; they cost only bumps from two
// cores on one line, until the set inflates and Repin moves them off.
func (s *Set) baseFree(opened, closed int) bool {
	c := s.base[closed].Load()
	return s.base[opened].Load() == c
}

// Detach detaches l from s and returns the cell it was attached to, nil
// when it was not attached (then nothing changes). Bumps that loaded the
// cell before Detach still land in it and are counted. The caller may make
// one last bump (a close) in the returned cell: it costs nothing shared.
func (s *Set) Detach(l *Lane) *Cell { return l.Detach() }

// Detach is Set.Detach for a caller that does not hold the lane's set: a
// lane knows its cell, and detaching needs nothing else.
func (l *Lane) Detach() *Cell { return (*Cell)(atomic.SwapPointer(&l.c, nil)) }

// Repin moves an attached lane of an inflated set to the cell of the P it
// runs on now, following a goroutine that migrated since it attached.
// Bumps racing the move land in the old or the new cell; both are summed.
// A lane on base moves off it too (base is shared only by lanes that
// attached at the same moment; see baseFree). A no-op in the purego build,
// which has no P to follow.
func (s *Set) Repin(l *Lane) {
	if !procPinned || s.table.Load() == nil {
		return
	}
	old := l.cell()
	if old == nil {
		return // detached
	}
	if c := s.pCell(pid(), true); c != old {
		atomic.CompareAndSwapPointer(&l.c, unsafe.Pointer(old), unsafe.Pointer(c))
	}
}

// Add adds n to counter i for a one-off bump (a guard opening or
// closing). It lands in the caller's P cell when that cell exists, and in
// the base cell otherwise, so it never allocates.
func (s *Set) Add(i int, n uint64) {
	if procPinned && s.table.Load() != nil {
		if c := s.pCell(pid(), false); c != nil {
			c[i].Add(n)
			return
		}
	}
	s.base[i].Add(n)
}

// laneCell returns the cell for a lane that cannot take base: the P's
// cell, or (purego) a cell picked at random from a fixed table, so lanes
// opening on a busy set share no counter or lock.
func (s *Set) laneCell() *Cell {
	if procPinned {
		return s.pCell(pid(), true)
	}
	return s.pCell(int(rand.Uint32()&uint32(nextPow2(initialSlots())-1)), true)
}

// pCell returns the cell of slot p, or nil when it does not exist yet and
// create is false. With create, it inflates the set and grows its table as
// needed, so the result is never nil and p is always in range.
func (s *Set) pCell(p int, create bool) *Cell {
	if t := s.table.Load(); t != nil && p < len(t.slots) {
		if c := t.slots[p].Load(); c != nil {
			return &c.v
		}
	}
	if !create {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tableLocked(p).cellLocked(p)
}

// tableLocked returns the set's table, creating it or growing it so that
// slot p exists. s.mu must be held.
func (s *Set) tableLocked(p int) *table {
	t := s.table.Load()
	if t != nil && p < len(t.slots) {
		return t
	}
	n := nextPow2(max(p+1, initialSlots()))
	if t != nil {
		n = max(n, 2*len(t.slots))
	}
	nt := &table{slots: make([]atomic.Pointer[cell], n)}
	if t != nil {
		for i := range t.slots {
			nt.slots[i].Store(t.slots[i].Load())
		}
	}
	s.table.Store(nt)
	return nt
}

// cellLocked returns the cell of slot p, creating it. The caller's set
// mutex must be held.
func (t *table) cellLocked(p int) *Cell {
	c := t.slots[p].Load()
	if c == nil {
		c = new(cell)
		t.slots[p].Store(c)
	}
	return &c.v
}

// Sum adds, for every counter i whose bit (1<<i) is set in mask, the
// counter's total over all cells to dst[i]. It is not an atomic snapshot:
// see the package doc for what a Sum concurrent with bumps observes. Each
// call loads the table afresh, so a later call covers every cell an
// earlier call covered.
func (s *Set) Sum(dst *[Width]uint64, mask uint16) {
	for m := mask; m != 0; m &= m - 1 {
		i := bits.TrailingZeros16(m)
		dst[i] += s.base[i].Load()
	}
	t := s.table.Load()
	if t == nil {
		return
	}
	for p := range t.slots {
		c := t.slots[p].Load()
		if c == nil {
			continue
		}
		for m := mask; m != 0; m &= m - 1 {
			i := bits.TrailingZeros16(m)
			dst[i] += c.v[i].Load()
		}
	}
}

// Total returns counter i summed over all cells: Sum for one counter,
// without the bookkeeping.
func (s *Set) Total(i int) uint64 {
	n := s.base[i].Load()
	if t := s.table.Load(); t != nil {
		for p := range t.slots {
			if c := t.slots[p].Load(); c != nil {
				n += c.v[i].Load()
			}
		}
	}
	return n
}

// Cells returns the number of cells the set has allocated beyond its base:
// 0 until a second lane attaches. Memory tests use it.
func (s *Set) Cells() int {
	t := s.table.Load()
	if t == nil {
		return 0
	}
	n := 0
	for p := range t.slots {
		if t.slots[p].Load() != nil {
			n++
		}
	}
	return n
}

func nextPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}

// procs is GOMAXPROCS now. runtime.GOMAXPROCS(0) takes the scheduler lock,
// which is fine only because it runs when a table is created or grown.
func procs() int { return runtime.GOMAXPROCS(0) }
