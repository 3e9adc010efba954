package counters

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/moqstats/moqstats/shard"
)

// sumMasksInOrder returns, in source order, the mask arguments of the
// Sum calls in the body of method recv.name in counters.go.
func sumMasksInOrder(t *testing.T, recv, name string) []string {
	t.Helper()
	src, err := os.ReadFile("counters.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "counters.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var masks []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != name || fn.Recv == nil {
			continue
		}
		if star, ok := fn.Recv.List[0].Type.(*ast.StarExpr); !ok || star.X.(*ast.Ident).Name != recv {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Sum" && len(call.Args) == 2 {
				arg := call.Args[1]
				masks = append(masks, string(src[fset.Position(arg.Pos()).Offset:fset.Position(arg.End()).Offset]))
			}
			return true
		})
	}
	return masks
}

// TestSnapshotReadsClosedBeforeOpen pins, at the source level, the order
// that keeps every snapshot at closed <= open: a refactor that sums the
// open counters first, or reads the closed ones in the same pass, fails.
func TestSnapshotReadsClosedBeforeOpen(t *testing.T) {
	got := sumMasksInOrder(t, "Counters", "read")
	want := []string{"closedMask", "open"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Counters.read sums masks %q, want %q in that order: closed counters must be read before open ones", got, want)
	}
	for _, open := range []uint16{openMask, openMask | newerMask} { // Read's, ReadAll's
		if open&closedMask != 0 {
			t.Fatalf("an open mask %b includes closed counters", open)
		}
	}
	closed := []int{AnnouncedClosed, BroadcastsClosed, SubscriptionsClosed}
	var wantClosed uint16
	for _, i := range closed {
		wantClosed |= 1 << i
	}
	if closedMask != wantClosed {
		t.Fatalf("closedMask = %b, want exactly the closed counters %b", closedMask, wantClosed)
	}
	if closedMask&openMask != 0 || closedMask&newerMask != 0 || openMask&newerMask != 0 ||
		closedMask|openMask|newerMask != 1<<numCounters-1 || (closedMask|openMask|newerMask)&(1<<Pins) != 0 {
		t.Fatalf("closedMask %b, openMask %b and newerMask %b must split the %d counters frames carry, and leave out Pins", closedMask, openMask, newerMask, numCounters)
	}
}

// TestSessionSnapshotReadsClosedBeforeOpen is the same pin for the session
// gauge, so sessions_closed can never exceed sessions in a session frame.
func TestSessionSnapshotReadsClosedBeforeOpen(t *testing.T) {
	got := sumMasksInOrder(t, "Gauge", "Read")
	want := []string{"1<<SessionsClosed", "1<<Sessions"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Gauge.Read sums masks %q, want %q in that order: sessions_closed must be read before sessions", got, want)
	}
}

func TestLiveWhileAnyOpenExceedsClosed(t *testing.T) {
	for _, tc := range []struct {
		s    Snapshot
		want bool
	}{
		{Snapshot{}, false},
		{Snapshot{Bytes: 10, Frames: 2, Groups: 1}, false},
		{Snapshot{Announced: 1}, true},
		{Snapshot{Announced: 1, AnnouncedClosed: 1}, false},
		{Snapshot{Subscriptions: 2, SubscriptionsClosed: 1}, true},
		{Snapshot{Broadcasts: 1}, true},
		{Snapshot{Announced: 3, AnnouncedClosed: 3, Broadcasts: 2, BroadcastsClosed: 2, Subscriptions: 5, SubscriptionsClosed: 5}, false},
	} {
		if got := tc.s.Live(); got != tc.want {
			t.Errorf("%+v.Live() = %v, want %v", tc.s, got, tc.want)
		}
	}
	if (SessionSnapshot{Sessions: 2, SessionsClosed: 1}).Live() != true || (SessionSnapshot{Sessions: 2, SessionsClosed: 2}).Live() != false {
		t.Errorf("SessionSnapshot.Live disagrees with sessions != sessions_closed")
	}
}

func TestReadSumsEveryCounterOverAllShards(t *testing.T) {
	var c Counters
	var a, b shard.Lane
	c.Attach(&a)
	a.Add(Subscriptions, 1) // a holds base until it counts closed
	c.Attach(&b)            // inflates: a on base, b on a cell
	for i := range numCounters {
		a.Add(i, uint64(i+1))
		b.Add(i, uint64(10*(i+1)))
		c.Add(i, 100)
	}
	if c.Pinned() {
		t.Fatalf("no pin counted, but Pinned() = true")
	}
	a.Add(Pins, 1)
	b.Add(Pins, 1)
	a.Add(Pins, Unpin) // a pin and an unpin in different cells
	if !c.Pinned() {
		t.Fatalf("one pin left, but Pinned() = false")
	}
	c.Add(Pins, Unpin)
	if c.Pinned() {
		t.Fatalf("all pins withdrawn across cells, but Pinned() = true")
	}
	got := c.Read()
	want := Snapshot{111, 122, 133, 144, 156, 166, 177, 188, 199, 0, 0, 0}
	if got != want {
		t.Fatalf("Read() = %+v, want %+v: the newer three left zero", got, want)
	}
	want.AnnouncedBytes, want.Fetches, want.Datagrams = 210, 221, 232
	if got := c.ReadAll(); got != want {
		t.Fatalf("ReadAll() = %+v, want %+v", got, want)
	}
	if c.Shards() != 1 {
		t.Fatalf("Shards() = %d, want 1", c.Shards())
	}
}

// TestConcurrentGuardsNeverReadClosedAboveOpen runs guard-shaped
// goroutines (open, bump, close) against a reader and checks every read.
// A lane held on base for the whole test inflates the set before any
// worker starts, so every worker's lane gets a per-P cell: the reads
// always cross shards.
func TestConcurrentGuardsNeverReadClosedAboveOpen(t *testing.T) {
	const workers, rounds = 4, 3000
	var c Counters
	var g Gauge
	var held shard.Lane
	c.Attach(&held)
	held.Add(Subscriptions, 1) // open until the end: base stays held
	defer c.Detach(&held)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for r := range rounds {
				var l shard.Lane
				g.Add(Sessions, 1)
				c.Add(Announced, 1)
				c.Attach(&l) // a track guard: open and close bumps in its cell
				l.Add(Subscriptions, 1)
				c.Add(Broadcasts, 1)
				l.Add(Bytes, 1200)
				l.Add(Frames, 1)
				if r%16 == 0 {
					runtime.Gosched()
				}
				c.Add(BroadcastsClosed, 1)
				c.Detach(&l)[SubscriptionsClosed].Add(1)
				c.Add(AnnouncedClosed, 1)
				g.Add(SessionsClosed, 1)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	reads := 0
	for finished := false; !finished; reads++ {
		select {
		case <-done:
			finished = true
		default:
		}
		s := c.Read()
		if s.AnnouncedClosed > s.Announced || s.SubscriptionsClosed > s.Subscriptions || s.BroadcastsClosed > s.Broadcasts {
			t.Fatalf("read %d shows closed > open: %+v", reads, s)
		}
		if gs := g.Read(); gs.SessionsClosed > gs.Sessions {
			t.Fatalf("read %d shows sessions_closed > sessions: %+v", reads, gs)
		}
	}
	if c.Shards() == 0 {
		t.Fatalf("the counters were never inflated; the test did not exercise shards")
	}
	s := c.Read()
	const n = workers * rounds
	want := Snapshot{Announced: n, AnnouncedClosed: n, Broadcasts: n, BroadcastsClosed: n, Subscriptions: n + 1, SubscriptionsClosed: n, Bytes: n * 1200, Frames: n}
	if s != want {
		t.Fatalf("final Read() = %+v, want %+v", s, want)
	}
	if gs := g.Read(); gs != (SessionSnapshot{n, n}) {
		t.Fatalf("final gauge = %+v, want {%d %d}", gs, n, n)
	}
}
