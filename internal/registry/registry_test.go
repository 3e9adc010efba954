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

func newMap() *Map[atomic.Uint64] { return New[atomic.Uint64](strconv.AppendQuote) }

// sweep merges and collects every row, as a pass does.
func sweep[T any](m *Map[T]) []*Entry[T] {
	rows := m.Merge()
	for _, e := range rows {
		m.Collect(e)
	}
	return rows
}

func keys[T any](rows []*Entry[T]) []string {
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
	e := m.Acquire("k")
	rows := sweep(m)
	if len(rows) != 1 || e.Dead() {
		t.Fatalf("pinned entry: rows %q, dead %v; want it live", keys(rows), e.Dead())
	}
	e.Release()
	rows = sweep(m)
	if !e.Dead() || len(rows) != 1 || rows[0] != e {
		t.Fatalf("released entry: rows %q, dead %v; want it returned once, dead", keys(rows), e.Dead())
	}
	if m.Len() != 0 {
		t.Fatalf("collected entry still in the map")
	}
	if e.TryAcquire() {
		t.Fatalf("a dead entry was pinned")
	}
	m.Retain(func(*Entry[atomic.Uint64]) bool { return true })
	if len(m.Rows()) != 0 {
		t.Fatalf("settled dead row kept: %q", keys(m.Rows()))
	}
}

func TestUnsettledDeadRowIsKept(t *testing.T) {
	m := newMap()
	e := m.Acquire("k")
	e.Release()
	sweep(m)
	m.Retain(func(*Entry[atomic.Uint64]) bool { return false })
	if got := keys(m.Rows()); !slices.Equal(got, []string{"k(dead)"}) {
		t.Fatalf("rows = %q, want the unsettled dead row kept", got)
	}
	// Live rows survive even when settled says true.
	l := m.Acquire("live")
	sweep(m)
	m.Retain(func(*Entry[atomic.Uint64]) bool { return true })
	if got := keys(m.Rows()); !slices.Equal(got, []string{"live"}) {
		t.Fatalf("rows = %q, want only the live row", got)
	}
	l.Release()
}

func TestRowsSortedAndSuccessorAfterDeadPredecessor(t *testing.T) {
	m := newMap()
	for _, k := range []string{"m", "a", "z", "b"} {
		m.Acquire(k)
	}
	sweep(m)
	for _, k := range []string{"c", "", "zz"} {
		m.Acquire(k)
	}
	old := m.Lookup("b")
	old.Release()
	sweep(m) // collects b
	succ := m.Acquire("b")
	if succ == old {
		t.Fatalf("Acquire returned the dead entry")
	}
	rows := sweep(m)
	want := []string{"", "a", "b(dead)", "b", "c", "m", "z", "zz"}
	if got := keys(rows); !slices.Equal(got, want) {
		t.Fatalf("rows = %q, want %q", got, want)
	}
	if rows[2] != old || rows[3] != succ {
		t.Fatalf("dead predecessor must come before its successor")
	}
}

func TestAcquireRemovesDeadEntryStillMapped(t *testing.T) {
	m := newMap()
	e := m.Lookup("k")
	m.merge()
	// Mark dead by hand, as Collect does, but leave the map entry in place.
	if !e.refs.CompareAndSwap(0, dead) {
		t.Fatal("could not mark dead")
	}
	if got, _ := m.m.Load("k"); got != e {
		t.Fatal("setup: dead entry not mapped")
	}
	n := m.Acquire("k")
	if n == e || n.Dead() {
		t.Fatalf("Acquire returned the dead entry")
	}
	if got, _ := m.m.Load("k"); got != n {
		t.Fatalf("map holds %p, want the successor %p", got, n)
	}
	n.Release()
}

func TestReleaseOfUnpinnedEntryPanicsWithBUG(t *testing.T) {
	m := newMap()
	e := m.Lookup("k")
	defer func() {
		if r, _ := recover().(string); len(r) < 5 || r[:5] != "BUG: " {
			t.Fatalf("recover() = %q, want a BUG: panic", r)
		}
	}()
	e.Release()
}

// TestAcquireRacingCollectNeverPinsDeadEntry hammers a few keys with
// acquire/bump/release from many goroutines while sweeps collect
// concurrently. Every bump lands in an entry that is live while pinned,
// and every entry ever created is seen by a sweep, so the bumps summed
// over all rows ever returned equal the bumps made.
func TestAcquireRacingCollectNeverPinsDeadEntry(t *testing.T) {
	const workers, rounds = 4, 2000
	m := newMap()
	var made atomic.Uint64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				e := m.Acquire(fmt.Sprint("k", (w+r)%3))
				if e.Dead() {
					t.Errorf("Acquire returned a dead entry")
				}
				e.Value.Add(1)
				made.Add(1)
				e.Release()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var counted uint64
	seen := map[*Entry[atomic.Uint64]]bool{}
	sweep := func() {
		for _, e := range sweep(m) {
			if e.Dead() && !seen[e] {
				seen[e] = true
				counted += e.Value.Load()
			}
		}
		m.Retain(func(e *Entry[atomic.Uint64]) bool { return seen[e] })
	}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		sweep()
	}
	sweep() // collects what the last workers released
	if counted != made.Load() {
		t.Fatalf("bumps in collected entries = %d, want %d", counted, made.Load())
	}
	if m.Len() != 0 || len(m.Rows()) != 0 {
		t.Fatalf("after all releases: Len %d, rows %q; want empty", m.Len(), keys(m.Rows()))
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
