package registry

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

// val is a test payload: a pin count, as a caller keeps one, and a
// counter to bump.
type val struct {
	pins atomic.Int64
	hits atomic.Uint64
}

func pinned(v *val) bool { return v.pins.Load() != 0 }

func newMap() *Map[val] { return New[val](strconv.AppendQuote) }

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
func pin(m *Map[val], key string) *Entry[val] { return m.Pin(key, nil, count) }

func unpin(e *Entry[val]) { e.Value.pins.Add(-1) }

// sweep merges and collects every row, as a pass does, and checks every
// row's SameKey against its definition.
func sweep(m *Map[val]) []Row[val] {
	rows := m.Merge()
	for i, r := range rows {
		m.Collect(r.Entry, pinned)
		if want := i > 0 && rows[i-1].Key() == r.Key(); r.SameKey != want {
			panic(fmt.Sprintf("row %d (%q): SameKey = %v, want %v", i, r.Key(), r.SameKey, want))
		}
	}
	return rows
}

func keys(rows []Row[val]) []string {
	var ks []string
	for _, r := range rows {
		k := r.Key()
		if r.Dead() {
			k += "(dead)"
		}
		if r.SameKey {
			k += "(same)"
		}
		ks = append(ks, k)
	}
	return ks
}

func TestLookupCreatesOnceAndQuotesKey(t *testing.T) {
	m := newMap()
	a := m.Lookup("foo/bar")
	if b := m.Lookup("foo/bar"); a != b {
		t.Fatalf("two lookups of one key gave two entries")
	}
	if a.Key() != "foo/bar" || a.Quoted() != `"foo/bar"` {
		t.Fatalf("Key, Quoted = %q, %q; want foo/bar and its quoted form", a.Key(), a.Quoted())
	}
	if m.Len() != 1 {
		t.Fatalf("Len() = %d, want 1", m.Len())
	}
}

func TestUnpinnedEntryCollectedOnNextPass(t *testing.T) {
	m := newMap()
	e := pin(m, "k")
	rows := sweep(m)
	if len(rows) != 1 || e.Dead() {
		t.Fatalf("pinned entry: rows %q, dead %v; want it live", keys(rows), e.Dead())
	}
	unpin(e)
	rows = sweep(m)
	if !e.Dead() || len(rows) != 1 || rows[0].Entry != e {
		t.Fatalf("released entry: rows %q, dead %v; want it returned once, dead", keys(rows), e.Dead())
	}
	if m.Len() != 0 {
		t.Fatalf("collected entry still in the map")
	}
	e.Value.pins.Add(1)
	if e.Admit() {
		t.Fatalf("a dead entry admitted a pin")
	}
	m.Retain(func(*Entry[val]) bool { return true })
	if len(m.Rows()) != 0 {
		t.Fatalf("settled dead row kept: %q", keys(m.Rows()))
	}
}

func TestUnsettledDeadRowIsKept(t *testing.T) {
	m := newMap()
	unpin(pin(m, "k"))
	sweep(m)
	m.Retain(func(*Entry[val]) bool { return false })
	if got := keys(m.Rows()); !slices.Equal(got, []string{"k(dead)"}) {
		t.Fatalf("rows = %q, want the unsettled dead row kept", got)
	}
	// Live rows survive even when settled says true.
	l := pin(m, "live")
	sweep(m)
	m.Retain(func(*Entry[val]) bool { return true })
	if got := keys(m.Rows()); !slices.Equal(got, []string{"live"}) {
		t.Fatalf("rows = %q, want only the live row", got)
	}
	unpin(l)
}

func TestRowsSortedAndSuccessorAfterDeadPredecessor(t *testing.T) {
	m := newMap()
	for _, k := range []string{"m", "a", "z", "b"} {
		pin(m, k)
	}
	sweep(m)
	for _, k := range []string{"c", "", "zz"} {
		pin(m, k)
	}
	old := m.Lookup("b")
	unpin(old)
	sweep(m) // collects b
	succ := pin(m, "b")
	if succ == old {
		t.Fatalf("pinning returned the dead entry")
	}
	rows := sweep(m)
	want := []string{"", "a", "b(dead)", "b(same)", "c", "m", "z", "zz"}
	if got := keys(rows); !slices.Equal(got, want) {
		t.Fatalf("rows = %q, want %q", got, want)
	}
	if rows[2].Entry != old || rows[3].Entry != succ {
		t.Fatalf("dead predecessor must come before its successor")
	}
	// Once the predecessor is dropped, the successor no longer follows
	// an equal key.
	m.Retain(func(e *Entry[val]) bool { return e == old })
	if got := keys(m.Rows()); !slices.Equal(got, []string{"", "a", "b", "c", "m", "z", "zz"}) {
		t.Fatalf("rows after dropping the predecessor = %q", got)
	}
	sweep(m) // checks SameKey everywhere
}

func TestLiveReplacesDeadEntryStillMapped(t *testing.T) {
	m := newMap()
	e := m.Lookup("k")
	m.merge()
	// Mark dead by hand, as Collect does, but leave the map entry in place.
	e.s.Store(dead)
	if got, _ := m.m.Load("k"); got != e {
		t.Fatal("setup: dead entry not mapped")
	}
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
	m := newMap()
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
	m := newMap()
	e := m.Lookup("k")
	m.merge()
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
	m := newMap()
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

// TestPinRacingCollectNeverUsesDeadEntry hammers a few keys with
// pin/bump/unpin from many goroutines while passes collect concurrently.
// Every bump lands in an entry that is live while pinned, and every entry
// ever created is seen by a pass, so the bumps summed over all collected
// entries equal the bumps made.
func TestPinRacingCollectNeverUsesDeadEntry(t *testing.T) {
	const workers, rounds = 4, 2000
	m := newMap()
	var made atomic.Uint64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				e := pin(m, fmt.Sprint("k", (w+r)%3))
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
	var counted uint64
	seen := map[*Entry[val]]bool{}
	pass := func() {
		for _, r := range sweep(m) {
			if r.Dead() && !seen[r.Entry] {
				seen[r.Entry] = true
				counted += r.Value.hits.Load()
			}
		}
		m.Retain(func(e *Entry[val]) bool { return seen[e] })
	}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		pass()
	}
	pass() // collects what the last workers released
	if counted != made.Load() {
		t.Fatalf("bumps in collected entries = %d, want %d", counted, made.Load())
	}
	if m.Len() != 0 || len(m.Rows()) != 0 {
		t.Fatalf("after all releases: Len %d, rows %q; want empty", m.Len(), keys(m.Rows()))
	}
}
