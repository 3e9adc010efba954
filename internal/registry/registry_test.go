package registry

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// val is a test payload: a pin count, as a caller keeps one, and a
// counter to bump.
type val struct {
	pins atomic.Int64
	hits atomic.Uint64
}

func pinned(v *val) bool { return v.pins.Load() != 0 }

type testMap = Map[val, uint64]

// newMap returns a map whose entries keep and continue their hits, as
// package moqstats' keep and continue their counters.
func newMap(cfg Config[val, uint64]) *testMap {
	cfg.Quote = strconv.AppendQuote
	if cfg.Overflow == "" {
		cfg.Overflow = "/overflow"
	}
	cfg.Keep = func(e *Entry[val]) (uint64, bool) {
		n := e.Value.hits.Load()
		return n, n != 0
	}
	cfg.Continue = func(succ, pred *Entry[val], kept *uint64) {
		if pred != nil {
			succ.Value.hits.Add(pred.Value.hits.Load())
			return
		}
		succ.Value.hits.Add(*kept)
	}
	return New(cfg)
}

// count counts a pin on e and completes it, as invariant 1 asks.
func count(e *Entry[val]) bool {
	e.Value.pins.Add(1)
	if e.Admit() {
		return true
	}
	e.Value.pins.Add(-1) // withdraw from the dead entry
	return false
}

// pin pins key's live entry.
func pin(m *testMap, key string) *Entry[val] { return m.Pin(key, nil, count) }

func unpin(e *Entry[val]) { e.Value.pins.Add(-1) }

// sweep merges and collects every row, as a pass does, and checks that
// rows are sorted with each key once (invariant 4).
func sweep(m *testMap) []*Entry[val] {
	rows := m.Merge()
	for i, e := range rows {
		m.Collect(e, pinned)
		if i > 0 && rows[i-1].Key() >= e.Key() {
			panic(fmt.Sprintf("rows %d and %d: %q then %q, want strictly increasing keys", i-1, i, rows[i-1].Key(), e.Key()))
		}
	}
	return rows
}

// settleAll forgets every dead row.
func settleAll(m *testMap, now time.Duration) {
	m.Retain(now, func(*Entry[val]) bool { return true })
}

func keys(rows []*Entry[val]) []string {
	var ks []string
	for _, e := range rows {
		k := e.Key()
		if e.Dead() {
			k += "(dead)"
		}
		ks = append(ks, k)
	}
	return ks
}

func TestLookupCreatesOnceAndQuotesKey(t *testing.T) {
	m := newMap(Config[val, uint64]{})
	a := m.Lookup("foo/bar")
	if b := m.Lookup("foo/bar"); a != b {
		t.Fatalf("two lookups of one key gave two entries")
	}
	if a.Key() != "foo/bar" || a.Quoted() != `"foo/bar"` {
		t.Fatalf("Key, Quoted = %q, %q; want foo/bar and its quoted form", a.Key(), a.Quoted())
	}
	if m.Len() != 1 || m.Held() != 1 {
		t.Fatalf("Len() = %d, Held() = %d, want 1 and 1", m.Len(), m.Held())
	}
}

func TestUnpinnedEntryCollectedOnNextPassForgottenWhenSettled(t *testing.T) {
	m := newMap(Config[val, uint64]{})
	e := pin(m, "k")
	rows := sweep(m)
	if len(rows) != 1 || e.Dead() {
		t.Fatalf("pinned entry: rows %q, dead %v; want it live", keys(rows), e.Dead())
	}
	unpin(e)
	rows = sweep(m)
	if !e.Dead() || len(rows) != 1 || rows[0] != e {
		t.Fatalf("released entry: rows %q, dead %v; want it returned once, dead", keys(rows), e.Dead())
	}
	e.Value.pins.Add(1)
	if e.Admit() {
		t.Fatalf("a dead entry admitted a pin")
	}
	e.Value.pins.Add(-1)
	if _, ok := m.Get("k"); ok {
		t.Fatalf("Get returned a dead entry")
	}
	settleAll(m, 0)
	if len(m.Rows()) != 0 || m.Len() != 0 || m.Held() != 0 {
		t.Fatalf("settled dead row: rows %q, Len %d, Held %d; want all gone", keys(m.Rows()), m.Len(), m.Held())
	}
}

func TestUnsettledDeadRowIsKept(t *testing.T) {
	m := newMap(Config[val, uint64]{})
	unpin(pin(m, "k"))
	sweep(m)
	m.Retain(0, func(*Entry[val]) bool { return false })
	if got := keys(m.Rows()); !slices.Equal(got, []string{"k(dead)"}) {
		t.Fatalf("rows = %q, want the unsettled dead row kept", got)
	}
	// Live rows survive even when settled says true.
	l := pin(m, "live")
	sweep(m)
	settleAll(m, 0)
	if got := keys(m.Rows()); !slices.Equal(got, []string{"live"}) {
		t.Fatalf("rows = %q, want only the live row", got)
	}
	unpin(l)
}

// Invariant 4: a successor merged while its dead predecessor's final state
// is not on the wire takes its place, continuing from it.
func TestSuccessorFoldsUnsettledPredecessor(t *testing.T) {
	m := newMap(Config[val, uint64]{})
	for _, k := range []string{"m", "a", "z", "b"} {
		pin(m, k)
	}
	sweep(m)
	for _, k := range []string{"c", "", "zz"} {
		pin(m, k)
	}
	old := m.Lookup("b")
	old.Value.hits.Add(7)
	unpin(old)
	sweep(m)                                               // collects b
	m.Retain(0, func(e *Entry[val]) bool { return false }) // its final write failed
	succ := pin(m, "b")
	if succ == old {
		t.Fatalf("pinning returned the dead entry")
	}
	succ.Value.hits.Add(3)
	rows := sweep(m)
	want := []string{"", "a", "b", "c", "m", "z", "zz"}
	if got := keys(rows); !slices.Equal(got, want) {
		t.Fatalf("rows = %q, want %q", got, want)
	}
	if rows[2] != succ || succ.Value.hits.Load() != 10 {
		t.Fatalf("row b = %p with %d hits, want the successor %p continuing to 10", rows[2], rows[2].Value.hits.Load(), succ)
	}
	if m.Held() != len(want) {
		t.Fatalf("Held() = %d, want %d: the predecessor is no longer held", m.Held(), len(want))
	}
}

// Invariant 5: within the window, a forgotten entry's successor continues
// from what it left; after it, from zero.
func TestRetainedCountsContinueWithinTheWindow(t *testing.T) {
	m := newMap(Config[val, uint64]{Retention: 10 * time.Second})
	e := pin(m, "k")
	e.Value.hits.Add(5)
	unpin(e)
	sweep(m)
	settleAll(m, time.Second)
	if m.Kept() != 1 || m.Held() != 1 || m.Len() != 0 {
		t.Fatalf("after forgetting: Kept %d, Held %d, Len %d; want 1, 1, 0", m.Kept(), m.Held(), m.Len())
	}
	m.Expire(10 * time.Second) // 1s + 10s not reached yet
	s := pin(m, "k")
	sweep(m)
	if got := s.Value.hits.Load(); got != 5 {
		t.Fatalf("successor within the window starts at %d, want 5", got)
	}
	if m.Kept() != 0 || m.Held() != 1 {
		t.Fatalf("Kept %d, Held %d after the successor took over; want 0, 1", m.Kept(), m.Held())
	}
	s.Value.hits.Add(1)
	unpin(s)
	sweep(m)
	settleAll(m, 20*time.Second)
	m.Expire(30 * time.Second) // its window ends at 30s
	if m.Kept() != 0 || m.Held() != 0 {
		t.Fatalf("after the window: Kept %d, Held %d; want nothing held", m.Kept(), m.Held())
	}
	n := pin(m, "k")
	sweep(m)
	if got := n.Value.hits.Load(); got != 0 {
		t.Fatalf("successor after the window starts at %d, want 0", got)
	}
}

func TestNothingRetainedWithoutRetentionOrForZeroCounts(t *testing.T) {
	for _, tc := range []struct {
		name      string
		retention time.Duration
		hits      uint64
	}{{"no retention", 0, 4}, {"zero counts", time.Hour, 0}} {
		m := newMap(Config[val, uint64]{Retention: tc.retention})
		e := pin(m, "k")
		e.Value.hits.Add(tc.hits)
		unpin(e)
		sweep(m)
		settleAll(m, 0)
		if m.Kept() != 0 || m.Held() != 0 {
			t.Errorf("%s: Kept %d, Held %d; want nothing held", tc.name, m.Kept(), m.Held())
		}
	}
}

// Invariant 6: at the cap a new key evicts the oldest retained entry, and
// with none left it folds into the overflow entry, which is never
// collected.
func TestCapEvictsOldestRetainedThenFolds(t *testing.T) {
	m := newMap(Config[val, uint64]{MaxEntries: 2, Retention: time.Hour})
	a, b := pin(m, "a"), pin(m, "b")
	a.Value.hits.Add(1)
	b.Value.hits.Add(1)
	c := pin(m, "c")
	if c.Key() != "/overflow" || m.Folded() != 1 {
		t.Fatalf("third key at a cap of 2: got %q, Folded %d; want the overflow entry, 1", c.Key(), m.Folded())
	}
	unpin(a)
	unpin(b)
	sweep(m)
	settleAll(m, 0) // a then b retained
	if m.Kept() != 2 || m.Held() != 2 {
		t.Fatalf("Kept %d, Held %d, want 2 and 2", m.Kept(), m.Held())
	}
	d := pin(m, "d")
	if d.Key() != "d" || m.Kept() != 1 {
		t.Fatalf("new key with retained ones at the cap: got %q, Kept %d; want d, evicting one", d.Key(), m.Kept())
	}
	sweep(m)
	ra := pin(m, "a") // a was evicted (oldest): it starts from zero
	rb := pin(m, "b") // at the cap again, nothing left to evict: folded
	sweep(m)
	if ra.Key() != "a" || ra.Value.hits.Load() != 0 {
		t.Fatalf("a after eviction: key %q, hits %d; want a from zero", ra.Key(), ra.Value.hits.Load())
	}
	if rb.Key() != "/overflow" {
		t.Fatalf("b at the cap with nothing to evict: got %q, want the overflow entry", rb.Key())
	}
	unpin(c)
	unpin(rb)
	sweep(m)
	if c.Dead() {
		t.Fatalf("the overflow entry was collected")
	}
	if m.Held() != 2 {
		t.Fatalf("Held() = %d, want 2 (the overflow entry is not held)", m.Held())
	}
}

// A dead entry still mapped is replaced by its successor even at the cap:
// the key is already held.
func TestSuccessorOfHeldDeadEntryIsNotFolded(t *testing.T) {
	m := newMap(Config[val, uint64]{MaxEntries: 1})
	e := pin(m, "k")
	unpin(e)
	sweep(m) // dead, its final state not on the wire yet
	s := pin(m, "k")
	if s.Key() != "k" || s == e {
		t.Fatalf("successor at the cap: got %q (same entry: %v), want a new entry for k", s.Key(), s == e)
	}
	sweep(m)
	if m.Held() != 1 {
		t.Fatalf("Held() = %d after the fold, want 1", m.Held())
	}
}

// Invariant 2: a new entry is on the Merge list before it is visible, and
// a pass that runs before its creator resumes reads it without collecting
// it.
func TestNewEntryIsMergedBeforeItIsVisibleAndNotCollectedUnpublished(t *testing.T) {
	m := newMap(Config[val, uint64]{})
	var during []string
	SetTestHookPublish(func(key string) {
		e, _ := m.m.Load(key)
		e.Value.hits.Add(100) // another goroutine found it and bumped
		for _, r := range sweep(m) {
			if r.Dead() {
				during = append(during, r.Key()+"(dead)")
			} else {
				during = append(during, r.Key())
			}
		}
	})
	e := m.Lookup("k")
	SetTestHookPublish(nil)
	if !slices.Equal(during, []string{"k"}) {
		t.Fatalf("pass while unpublished saw rows %q, want k, not collected", during)
	}
	if e.s.Load() != live {
		t.Fatalf("state after the creator returned = %d, want live", e.s.Load())
	}
	sweep(m)
	if !e.Dead() {
		t.Fatalf("published unpinned entry not collected")
	}
}

func TestLiveReplacesDeadEntryStillMapped(t *testing.T) {
	m := newMap(Config[val, uint64]{})
	e := m.Lookup("k")
	m.Merge()
	// Mark dead by hand, as Collect does; the map entry stays in place.
	e.s.Store(dead)
	if got := m.Lookup("k"); got != e {
		t.Fatalf("Lookup did not return the mapped dead entry")
	}
	n := m.Live("k")
	if n == e || n.Dead() {
		t.Fatalf("Live returned the dead entry")
	}
	if got, _ := m.m.Load("k"); got != n {
		t.Fatalf("map holds %p, want the successor %p", got, n)
	}
	if _, ok := m.Get("k"); !ok {
		t.Fatalf("Get does not see the live successor")
	}
}

func TestPinFromACollectedEntryMovesToItsSuccessor(t *testing.T) {
	m := newMap(Config[val, uint64]{})
	old := m.Lookup("k") // looked up earlier, never pinned
	sweep(m)             // collects it
	if !old.Dead() {
		t.Fatal("setup: entry not collected")
	}
	got := m.Pin("k", old, count)
	if got == old || got.Dead() || got.Value.pins.Load() != 1 {
		t.Fatalf("Pin from a dead entry returned %p (dead %v, pins %d); want a pinned successor", got, got.Dead(), got.Value.pins.Load())
	}
	if old.Value.pins.Load() != 0 {
		t.Fatalf("the dead entry keeps a pin: %d", old.Value.pins.Load())
	}
}

func TestCollectRestoresLiveWhenAPinArrives(t *testing.T) {
	m := newMap(Config[val, uint64]{})
	e := m.Lookup("k")
	m.Merge()
	calls := 0
	// The first read sees no pin; a guard pins before the second read.
	racing := func(v *val) bool {
		calls++
		if calls == 2 {
			v.pins.Add(1)
		}
		return v.pins.Load() != 0
	}
	if m.Collect(e, racing) {
		t.Fatal("Collect collected an entry pinned during its decision")
	}
	if e.Dead() || e.s.Load() != live || !e.Admit() {
		t.Fatalf("state after a kept entry = %d, want live", e.s.Load())
	}
	if m.Len() != 1 {
		t.Fatal("a kept entry was removed from the map")
	}
}

func TestKeySharesQuotedMemoryWhenNothingIsEscaped(t *testing.T) {
	m := newMap(Config[val, uint64]{})
	plain := m.Lookup("demo/bbb")
	if plain.Key() != "demo/bbb" || unsafe.StringData(plain.Key()) != unsafe.StringData(plain.Quoted()[1:]) {
		t.Fatalf("key %q does not share the quoted form's memory", plain.Key())
	}
	if unsafe.StringData(plain.Quoted()) != &plain.inline[0] {
		t.Fatalf("a short key is not stored in the entry")
	}
	long := strings.Repeat("x", InlineKey)
	l := m.Lookup(long)
	if l.Key() != long || l.Quoted() != `"`+long+`"` || unsafe.StringData(l.Quoted()) == &l.inline[0] {
		t.Fatalf("a key longer than InlineKey: Key %d bytes, Quoted %d bytes", len(l.Key()), len(l.Quoted()))
	}
	src := "x\ny and more"
	escaped := m.Lookup(src[:3])
	if escaped.Key() != "x\ny" || escaped.Quoted() != `"x\ny"` {
		t.Fatalf("escaped key: Key %q, Quoted %q", escaped.Key(), escaped.Quoted())
	}
	if unsafe.StringData(escaped.Key()) == unsafe.StringData(src) {
		t.Fatalf("escaped key aliases the caller's string instead of a copy")
	}
}

// TestPinRacingCollectNeverLosesAHit hammers a few keys with
// pin/bump/unpin from many goroutines while passes collect, forget (some
// passes "fail to write" and settle nothing), retain and expire
// concurrently, under a cap that forces folds. Every bump lands in an
// entry that is live while pinned, and every entry ever created is seen by
// a pass, so the hits in forgotten entries, retained ones and live ones
// add up to the hits made.
func TestPinRacingCollectNeverLosesAHit(t *testing.T) {
	for _, cfg := range []Config[val, uint64]{
		{},
		{Retention: 3 * time.Millisecond},
		{Retention: time.Hour, MaxEntries: 3},
	} {
		t.Run(fmt.Sprintf("retention=%v,max=%d", cfg.Retention, cfg.MaxEntries), func(t *testing.T) {
			const workers, rounds = 4, 2000
			var lost atomic.Uint64 // hits in entries forgotten with nothing kept, or expired
			keep := cfg
			m := newMap(keep)
			userKeep := m.cfg.Keep
			m.cfg.Keep = func(e *Entry[val]) (uint64, bool) {
				n, ok := userKeep(e)
				if !ok {
					lost.Add(e.Value.hits.Load())
				}
				return n, ok
			}
			m.kept.testDropped = func(v uint64) { lost.Add(v) } // under its mutex
			var made atomic.Uint64
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for r := range rounds {
						e := pin(m, fmt.Sprint("k", (w+r)%5))
						if e.Dead() {
							t.Errorf("pinned a dead entry")
						}
						e.Value.hits.Add(1)
						made.Add(1)
						unpin(e)
					}
				})
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			start := time.Now()
			n := 0
			pass := func(settle bool) {
				n++
				now := time.Since(start)
				sweep(m)
				m.Retain(now, func(e *Entry[val]) bool {
					if !settle {
						return false
					}
					if m.cfg.Retention <= 0 {
						lost.Add(e.Value.hits.Load())
					}
					return true
				})
				m.Expire(now)
			}
			for finished := false; !finished; {
				select {
				case <-done:
					finished = true
				default:
				}
				pass(n%7 != 3)
			}
			pass(true)
			pass(true) // collects and forgets what the last workers released

			var inMap uint64
			for _, e := range m.Rows() {
				inMap += e.Value.hits.Load()
			}
			var retained uint64
			m.kept.mu.Lock()
			for _, k := range m.kept.byKey {
				retained += k.val
			}
			m.kept.mu.Unlock()
			if got := lost.Load() + inMap + retained; got != made.Load() {
				t.Fatalf("hits forgotten %d + in rows %d + retained %d = %d, want %d", lost.Load(), inMap, retained, got, made.Load())
			}
			if over, ok := m.m.Load("/overflow"); ok && cfg.MaxEntries == 0 {
				t.Fatalf("overflow entry made without a cap: %p", over)
			}
			if m.Held() != m.Kept() {
				t.Fatalf("Held %d with every entry forgotten and %d retained", m.Held(), m.Kept())
			}
		})
	}
}

// TestPinAndCollectAtOnceNeverBothWin runs invariant 1's two sides at the
// same instant, many times: a guard counting a pin and completing it, and
// the collector storing dying and reading the pins. Under sequential
// consistency at most one wins. This is the store-buffering shape, the one
// reordering x86-TSO allows, and on an x86 host qemu's TCG lets an arm64
// guest's load pass its earlier store-release too, which arm64 hardware
// forbids; so this test fails in emulation when the collector's dying is a
// plain atomic store, and catches it in a few thousand tries. make
// test-arm64 runs it under qemu-user, where it failed in every run with a
// store; on amd64 an atomic store is already a full barrier and on arm64
// hardware a store-release is never passed by a later load-acquire, so
// only emulation can catch it.
//
// The two sides need two CPUs: on one, a context switch drains the store
// buffer and the reordering never shows. With fewer Ps (-cpu 1) it takes
// two itself rather than skip; on a one-CPU machine it skips, or fails
// when CI is set, since CI counts on it running.
func TestPinAndCollectAtOnceNeverBothWin(t *testing.T) {
	if runtime.NumCPU() < 2 {
		if os.Getenv("CI") != "" {
			t.Fatal("one CPU: the two sides cannot run at once, and CI is set, so this test may not skip")
		}
		t.Skip("needs two CPUs running at once")
	}
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	trials := 20000
	if testing.Short() {
		trials = 2000
	}
	m := newMap(Config[val, uint64]{})
	var ready atomic.Int64 // both sides of trial i arrived when it reaches 2*(i+1)
	pinnedIt := make([]bool, trials)
	entries := make([]*Entry[val], trials)
	for i := range entries {
		entries[i] = m.Lookup(strconv.Itoa(i))
	}
	m.Merge()
	arrive := func(i int) {
		ready.Add(1)
		for spins := 0; ready.Load() < int64(2*(i+1)); spins++ {
			if spins > 1000 {
				runtime.Gosched() // the other side may be waiting for this P
			}
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i, e := range entries {
			arrive(i)
			pinnedIt[i] = count(e)
		}
	})
	collected := make([]bool, trials)
	for i, e := range entries {
		arrive(i)
		collected[i] = m.Collect(e, pinned)
	}
	wg.Wait()
	both := 0
	for i := range trials {
		if pinnedIt[i] && collected[i] {
			both++
		}
	}
	if both > 0 {
		t.Fatalf("in %d of %d trials a guard pinned an entry that the collector collected", both, trials)
	}
}
