package shard

import (
	"runtime"
	"sync"
	"testing"
	"unsafe"

	"github.com/moqstats/moqstats/internal/race"
)

func TestPaddingIsWholeLines(t *testing.T) {
	if lineSize == 0 || lineSize&(lineSize-1) != 0 {
		t.Fatalf("lineSize = %d, want a power of two", lineSize)
	}
	size, inner := unsafe.Sizeof(cell{}), unsafe.Sizeof(Cell{})
	if size%lineSize != 0 {
		t.Errorf("Sizeof(cell) = %d, want a multiple of the %d-byte line", size, lineSize)
	}
	if size < inner || size-inner >= lineSize {
		t.Errorf("Sizeof(cell) = %d for %d bytes of counters, want them rounded up to the next line", size, inner)
	}
	// A Set is embedded unpadded; its base cell must come first, so that
	// an owner aligning the Set aligns the hot counters.
	if off := unsafe.Offsetof(Set{}.base); off != 0 {
		t.Errorf("Set.base at offset %d, want 0", off)
	}
}

// Counters the test lanes count their opening and closing in, as package
// counters does with subscriptions: what tells Attach that base is held.
const laneOpened, laneClosed = 11, 12

// attach attaches l and counts it open, as a guard does.
func attach(s *Set, l *Lane) *Cell {
	c := s.Attach(l, laneOpened, laneClosed)
	l.Add(laneOpened, 1)
	return c
}

// detach detaches l and counts it closed in the cell it was on.
func detach(s *Set, l *Lane) *Cell {
	c := s.Detach(l)
	if c != nil {
		c[laneClosed].Add(1)
	}
	return c
}

// slots returns the length of the set's table, 0 when not inflated.
func slots(s *Set) int {
	if t := s.table.Load(); t != nil {
		return len(t.slots)
	}
	return 0
}

func sum(s *Set) [Width]uint64 {
	var v [Width]uint64
	s.Sum(&v, 1<<Width-1)
	return v
}

func TestFirstLaneTakesBaseWithoutInflating(t *testing.T) {
	var s Set
	var l Lane
	attach(&s, &l)
	l.Add(3, 7)
	l.Add(3, 5)
	if s.table.Load() != nil {
		t.Fatalf("one lane inflated the set; want base only")
	}
	if got := l.cell(); got != &s.base {
		t.Fatalf("first lane points at %p, want base %p", got, &s.base)
	}
	if got := sum(&s)[3]; got != 12 {
		t.Fatalf("Sum = %d, want 12", got)
	}
}

func TestSecondConcurrentLaneGetsItsOwnCell(t *testing.T) {
	var s Set
	var a, b Lane
	attach(&s, &a)
	attach(&s, &b)
	if s.table.Load() == nil {
		t.Fatalf("second concurrent lane did not inflate the set")
	}
	if a.cell() == b.cell() {
		t.Fatalf("two concurrent lanes share cell %p; want base and a cell", a.cell())
	}
	if got := s.Cells(); got != 1 {
		t.Fatalf("Cells() = %d, want 1 (one cell for the second lane)", got)
	}
	a.Add(0, 1)
	b.Add(0, 2)
	s.Add(0, 4)
	if got := sum(&s)[0]; got != 7 {
		t.Fatalf("Sum = %d, want 7 over base and cell", got)
	}
	if got := s.Total(0); got != 7 {
		t.Fatalf("Total = %d, want 7 over base and cell", got)
	}
}

func TestLaneAfterIdleReusesBase(t *testing.T) {
	var s Set
	var a, b Lane
	attach(&s, &a)
	detach(&s, &a)
	attach(&s, &b)
	if s.table.Load() != nil {
		t.Fatalf("sequential lanes inflated the set; want base reused")
	}
	if b.cell() != &s.base {
		t.Fatalf("lane of an idle set is not on base")
	}
}

// TestBaseHeldWhileItsLaneIsOpen checks the hint Attach reads: base is
// held from a lane's opened count to its closed count, and a lane that
// has not counted opened yet leaves it free (documented on baseFree).
func TestBaseHeldWhileItsLaneIsOpen(t *testing.T) {
	var s Set
	var a, b, c Lane
	if s.Attach(&a, laneOpened, laneClosed) != &s.base {
		t.Fatalf("first lane not on base")
	}
	if s.Attach(&b, laneOpened, laneClosed) != &s.base || s.table.Load() != nil {
		t.Fatalf("a lane attaching before the first counted opened did not share base")
	}
	a.Add(laneOpened, 1)
	if attach(&s, &c) == &s.base || s.table.Load() == nil {
		t.Fatalf("a lane attaching while base's lane is open took base")
	}
	var d Lane
	detach(&s, &a)
	if attach(&s, &d) == &s.base {
		t.Fatalf("an inflated set handed out base")
	}
}

// TestRepinMovesLanesOffBase checks that lanes that shared base move to
// their P's cell once the set is inflated, so sharing it does not last.
func TestRepinMovesLanesOffBase(t *testing.T) {
	var s Set
	var a, b, c Lane
	s.Attach(&a, laneOpened, laneClosed)
	s.Attach(&b, laneOpened, laneClosed) // both on base: neither counted opened
	a.Add(laneOpened, 1)
	b.Add(laneOpened, 1)
	attach(&s, &c) // inflates
	s.Repin(&a)
	if procPinned && a.cell() == &s.base {
		t.Fatalf("Repin left a lane on the base of an inflated set")
	}
	if !procPinned && a.cell() != &s.base {
		t.Fatalf("purego Repin moved a lane")
	}
	a.Add(0, 1)
	b.Add(0, 2)
	c.Add(0, 4)
	if got := sum(&s)[0]; got != 7 {
		t.Fatalf("Sum = %d, want 7 over base and cells", got)
	}
}

func TestDetachIsIdempotentAndDropsLaterBumps(t *testing.T) {
	var s Set
	var l Lane
	attach(&s, &l)
	l.Add(1, 1)
	if c := detach(&s, &l); c != &s.base {
		t.Fatalf("first Detach = %p, want the base cell %p", c, &s.base)
	}
	if c := detach(&s, &l); c != nil {
		t.Fatalf("second Detach = %p, want nil", c)
	}
	l.Add(1, 100)
	if got := sum(&s)[1]; got != 1 {
		t.Fatalf("Sum = %d after a bump on a detached lane, want 1", got)
	}
	var next Lane
	if attach(&s, &next) != &s.base {
		t.Fatalf("base still held after its lane detached twice")
	}
	var zero Lane
	zero.Add(1, 1) // a zero Lane drops bumps
	if got := sum(&s)[1]; got != 1 {
		t.Fatalf("a zero Lane bumped the set")
	}
}

// TestConcurrentBumpsSumExactly checks that no bump is lost across base,
// cells, lanes attaching and detaching, and one-off adds.
func TestConcurrentBumpsSumExactly(t *testing.T) {
	const goroutines, rounds, perRound = 8, 50, 100
	var s Set
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for r := range rounds {
				var l Lane
				attach(&s, &l)
				for range perRound {
					l.Add(6, 3)
					l.Add(7, 1)
				}
				if r%8 == 0 {
					s.Repin(&l)
				}
				s.Add(0, uint64(g+1))
				detach(&s, &l)
			}
		})
	}
	wg.Wait()
	v := sum(&s)
	if want := uint64(goroutines * rounds * perRound * 3); v[6] != want {
		t.Errorf("counter 6 = %d, want %d", v[6], want)
	}
	if want := uint64(goroutines * rounds * perRound); v[7] != want {
		t.Errorf("counter 7 = %d, want %d", v[7], want)
	}
	if want := uint64(rounds * goroutines * (goroutines + 1) / 2); v[0] != want {
		t.Errorf("counter 0 = %d, want %d", v[0], want)
	}
}

// TestSumOfClosedBeforeOpenNeverShowsMoreClosed runs the pattern counters
// relies on: an open bump on one lane, then a close bump on another cell,
// while a reader sums the closed counter first and the open one second.
func TestSumOfClosedBeforeOpenNeverShowsMoreClosed(t *testing.T) {
	const open, closed = 0, 1
	var s Set
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var l Lane
				attach(&s, &l)
				l.Add(open, 1)
				runtime.Gosched()
				s.Add(closed, 1)
				detach(&s, &l)
			}
		})
	}
	for range 20000 {
		var v [Width]uint64
		s.Sum(&v, 1<<closed)
		s.Sum(&v, 1<<open)
		if v[closed] > v[open] {
			close(stop)
			wg.Wait()
			t.Fatalf("Sum shows closed %d > open %d", v[closed], v[open])
		}
	}
	close(stop)
	wg.Wait()
}

func TestGOMAXPROCSChangeKeepsCellsInRange(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var s Set
	var first, second Lane
	attach(&s, &first)
	attach(&s, &second) // inflates with a table sized for one P
	if got := slots(&s); got < 1 {
		t.Fatalf("Slots() = %d after inflation, want >= 1", got)
	}
	runtime.GOMAXPROCS(16)
	const goroutines, bumps = 32, 1000
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			var l Lane
			attach(&s, &l)
			for i := range bumps {
				l.Add(2, 1)
				if i%100 == 0 {
					s.Repin(&l)
					runtime.Gosched()
				}
			}
			s.Add(3, 1)
			detach(&s, &l)
		})
	}
	wg.Wait()
	runtime.GOMAXPROCS(2)
	var l Lane
	attach(&s, &l)
	s.Repin(&l)
	l.Add(2, 1)
	v := sum(&s)
	if want := uint64(goroutines*bumps + 1); v[2] != want {
		t.Fatalf("counter 2 = %d after GOMAXPROCS 1 -> 16 -> 2, want %d", v[2], want)
	}
	if v[3] != goroutines {
		t.Fatalf("counter 3 = %d, want %d", v[3], goroutines)
	}
	if n := slots(&s); n&(n-1) != 0 {
		t.Fatalf("Slots() = %d, want a power of two", n)
	}
}

// TestTableGrowsToReachAnyP asks for the cell of a P beyond the table, as
// a lane attaching after GOMAXPROCS grew does, and checks the table grew
// to cover it without losing the cells it had.
func TestTableGrowsToReachAnyP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var s Set
	c0 := s.pCell(0, true)
	c0[4].Add(5)
	first := nextPow2(initialSlots())
	if slots(&s) != first {
		t.Fatalf("Slots() = %d, want %d", slots(&s), first)
	}
	if got := s.pCell(1, false); got != nil {
		t.Fatalf("pCell(1, false) created a cell")
	}
	c37 := s.pCell(37, true)
	if want := max(64, first, 2*first); slots(&s) != want {
		t.Fatalf("Slots() = %d after P 37, want %d", slots(&s), want)
	}
	if s.pCell(0, false) != c0 || s.pCell(37, false) != c37 {
		t.Fatalf("growth lost or moved a cell")
	}
	c37[4].Add(1)
	if got := sum(&s)[4]; got != 6 {
		t.Fatalf("Sum after growth = %d, want 6", got)
	}
}

func TestBumpAndSumAllocateNothing(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates")
	}
	var s Set
	var a, b Lane
	attach(&s, &a)
	attach(&s, &b)
	var v [Width]uint64
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Lane.Add", func() { a.Add(6, 1200); b.Add(7, 1) }},
		{"Set.Add", func() { s.Add(0, 1) }},
		{"Set.Sum", func() { s.Sum(&v, 1<<Width-1) }},
		{"Set.Repin", func() { s.Repin(&b) }},
	} {
		if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
			t.Errorf("%s allocates %v times per call, want 0", tc.name, n)
		}
	}
}
