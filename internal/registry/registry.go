// Package registry keeps the entries that counters live in, keyed by path
// or root, decides when an entry no guard pins may be collected, and hands
// the snapshot pass a key-sorted view of the entries that it maintains
// incrementally.
//
// # Pins
//
// The registry does not count pins itself. A guard counts its pin in the
// caller's sharded counters (package moqstats keeps a pin counter in every
// counter cell, so a busy entry's guards pin on their own cache lines),
// and the caller tells Collect how to read the total. What the registry
// keeps is the entry's State: live, dying or dead.
//
// # Invariants
//
//  1. An entry is collected (marked dead and removed from the map) only
//     while no guard pins it, and a dead entry is never pinned. A guard
//     pins by first counting its pin and then calling Admit, which waits
//     while the entry is dying and reports whether it is live. Collect
//     first stores dying and then reads the pin total, and marks the entry
//     dead only if that total is zero; otherwise it stores live again.
//     All of these are sequentially consistent atomics, so of a guard's
//     count-then-load and the collector's store-then-read, at least one
//     sees the other: either the collector counts the pin and keeps the
//     entry, or the guard sees dying, waits, and, if the entry died
//     (the collector missed the pin), withdraws its pin and pins a
//     successor. A pin counted before the dying store is always in the
//     total the collector reads after it, whichever cell holds it: an
//     atomic load observes every write that precedes it in that order.
//     No lock is taken to pin an entry.
//  2. Collection happens only in Collect, which the pass calls on a row
//     right before it reads the row's counters, so a collected entry's
//     final counters are read before it is forgotten. An entry is forgotten
//     only when the pass says its final state reached the wire (Retain).
//     Nothing bumped through a guard before it closed can be lost.
//  3. Rows are sorted by key. Entries that share a key (a collected entry
//     whose final frame is still pending, and its successor) are in
//     creation order, oldest first.
//
// Merge, Collect, Retain and Rows belong to one goroutine at a time (the
// pass, serialized by its caller); everything else is safe for concurrent
// use.
//
// # Cost
//
// A new entry is pushed on a lock-free stack when it is created. Merge
// pops the stack, sorts just the new keys and merges them into the sorted
// rows, so a pass costs O(rows + new log new) and never sorts the whole key
// set: keeping keys sorted across ticks is what keeps a tick linear.
package registry

import (
	"cmp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/puzpuzpuz/xsync/v3"
)

// InlineKey is how many bytes of quoted key an Entry holds in itself.
// Longer keys live in an allocation of their own. Sized so that package
// moqstats' broadcast entries come to 512 bytes: see its broadcastEntry.
const InlineKey = 176

// Entry is one key's value and the bookkeeping that decides its lifetime.
//
// Value comes first, so a caller that makes the whole Entry a power-of-two
// size (which Go's allocator aligns to its size) controls the alignment of
// what it puts at the start of Value. The key is stored in the entry
// itself when it fits: a pass that reads every entry then touches one
// object, one page, per key.
type Entry[T any] struct {
	// Value is the caller's payload: counters bumped by guards, plus state
	// only the pass touches.
	Value T

	key    string // normalized key; immutable
	quoted string // key as a JSON string, for the encoder; immutable
	// State is read by every guard open and written only when the pass
	// collects (or considers collecting) the entry.
	State
	// next links the entry into Map.fresh from its creation until the
	// Merge that takes it into the rows; written before the push that
	// publishes it, read only by that Merge.
	next *Entry[T]
	// inline holds quoted (and key, its middle) when they fit; immutable.
	inline [InlineKey]byte
}

// Key returns the entry's key.
func (e *Entry[T]) Key() string { return e.key }

// Quoted returns the entry's key encoded as a JSON string.
func (e *Entry[T]) Quoted() string { return e.quoted }

// States of an entry.
const (
	live  int32 = iota // guards may pin it
	dying              // the collector is reading its pins
	dead               // collected: never pinned again
)

// State is an entry's lifetime state. Guards may hold a *State rather
// than the entry itself.
type State struct {
	s atomic.Int32
	_ int32 // keeps the size of State a whole word, as Entry's padding assumes
}

// Dead reports whether the entry has been collected.
func (st *State) Dead() bool { return st.s.Load() == dead }

// Admit completes a pin that the caller has already counted: it reports
// true if the entry is live, and false if it is dead, in which case the
// caller must withdraw its pin and pin a successor (Map.Live). While the
// collector is deciding (dying), Admit waits; that lasts as long as
// reading one entry's pins. See invariant 1.
func (st *State) Admit() bool {
	for {
		switch st.s.Load() {
		case live:
			return true
		case dead:
			return false
		}
		runtime.Gosched()
	}
}

// Map is a concurrent map of entries, plus the pass's sorted view of them.
type Map[T any] struct {
	m     *xsync.MapOf[string, *Entry[T]]
	quote func(dst []byte, key string) []byte
	// fresh is a lock-free stack of entries created since the last Merge.
	fresh atomic.Pointer[Entry[T]]

	// Owned by the pass.
	rows, spare []Row[T]
	batch       []*Entry[T]
}

// New returns an empty Map. quote appends a key, encoded as a JSON string,
// to dst; it runs once per entry, when the entry is created.
func New[T any](quote func(dst []byte, key string) []byte) *Map[T] {
	return &Map[T]{m: xsync.NewMapOf[string, *Entry[T]](), quote: quote}
}

// Lookup returns the entry mapped to key, creating one if there is none.
// The entry may be dead already (collected, its removal from the map under
// way) or soon: Admit tells, and Live recovers. Not checking for death here
// keeps Lookup to the map.
func (m *Map[T]) Lookup(key string) *Entry[T] {
	if e, ok := m.m.Load(key); ok {
		return e
	}
	return m.create(key)
}

// Get returns the live entry for key, if there is one, without creating
// it.
func (m *Map[T]) Get(key string) (*Entry[T], bool) {
	e, ok := m.m.Load(key)
	if !ok || e.Dead() {
		return nil, false
	}
	return e, true
}

// Pin pins an entry for key with pin, which counts a pin on the entry it
// is given and reports whether Admit accepted it, withdrawing the pin when
// not (invariant 1). Pin starts from e, an entry the caller looked up
// earlier (nil: look it up now), and moves on to the successor of each
// entry collected meanwhile. It returns the pinned entry.
func (m *Map[T]) Pin(key string, e *Entry[T], pin func(*Entry[T]) bool) *Entry[T] {
	if e == nil {
		e = m.Lookup(key)
	}
	for !pin(e) {
		e = m.Live(key)
	}
	return e
}

// Live returns a live entry for key: the mapped one, or a successor
// created in place of a dead one. It may die before the caller pins it;
// Admit tells.
func (m *Map[T]) Live(key string) *Entry[T] {
	if e := m.Lookup(key); !e.Dead() {
		return e
	}
	return m.create(key)
}

func (m *Map[T]) create(key string) *Entry[T] {
	for {
		e, loaded := m.m.LoadOrCompute(key, func() *Entry[T] { return m.newEntry(key) })
		if !loaded {
			m.push(e)
			return e
		}
		if !e.Dead() {
			return e
		}
		// Collected, but not removed from the map yet: do it here, then
		// create a successor.
		m.remove(e)
	}
}

// newEntry returns an entry for key, with its quoted form (and key) in the
// entry when it fits.
func (m *Map[T]) newEntry(key string) *Entry[T] {
	e := new(Entry[T])
	// q is in e.inline when it fits, in a new array otherwise; neither is
	// ever written again, so a string can share it.
	q := m.quote(e.inline[:0], key)
	e.quoted = unsafe.String(unsafe.SliceData(q), len(q))
	// Most keys need no escaping: then the key is the quoted form without
	// its quotes and shares its memory. Otherwise copy it: key may be a
	// slice of a larger string the caller does not want kept alive.
	if len(e.quoted) == len(key)+2 && e.quoted[1:len(e.quoted)-1] == key {
		e.key = e.quoted[1 : len(e.quoted)-1]
	} else {
		e.key = strings.Clone(key)
	}
	return e
}

// push publishes a new entry to the next Merge.
func (m *Map[T]) push(e *Entry[T]) {
	for {
		head := m.fresh.Load()
		e.next = head
		if m.fresh.CompareAndSwap(head, e) {
			return
		}
	}
}

// remove deletes e's key from the map if it still maps to e.
func (m *Map[T]) remove(e *Entry[T]) {
	m.m.Compute(e.key, func(old *Entry[T], loaded bool) (*Entry[T], bool) {
		if loaded && old == e {
			return nil, true // delete
		}
		return old, !loaded // keep what is there; store nothing if absent
	})
}

// Len returns the number of entries in the map (not counting collected
// entries that only the rows still hold).
func (m *Map[T]) Len() int { return m.m.Size() }

// Row is one entry in the pass's view.
type Row[T any] struct {
	*Entry[T]
	// SameKey reports that the previous row has the same key: this entry
	// is a newer incarnation of it (invariant 3). Kept up to date by Merge
	// and Retain, so the pass never compares keys.
	SameKey bool
}

// Rows returns the pass's current view: every entry merged so far and not
// yet dropped by Retain, sorted by key (invariant 3).
func (m *Map[T]) Rows() []Row[T] { return m.rows }

// Merge merges the entries created since the last Merge into the rows, in
// key order, and returns the rows.
func (m *Map[T]) Merge() []Row[T] {
	m.merge()
	return m.rows
}

// Collect collects row e if no guard pins it, as pinned reads the pin
// total from e.Value: marks it dead and removes it from the map. It reports
// whether e is dead, now or from an earlier pass; a dead entry's counters
// are final (invariant 1), and the caller reads them right after, so they
// reach a frame before Retain may drop e.
//
// The first read of the pins needs no care: a total that is not zero only
// delays collection. Only a zero total goes through the dying protocol.
func (m *Map[T]) Collect(e *Entry[T], pinned func(*T) bool) bool {
	switch e.s.Load() {
	case dead:
		return true
	case dying:
		panic("BUG: registry: entry " + strconv.Quote(e.key) + " left dying")
	}
	if pinned(&e.Value) {
		return false
	}
	e.s.Store(dying) // before reading the pins again: see invariant 1
	if pinned(&e.Value) {
		e.s.Store(live)
		return false
	}
	e.s.Store(dead)
	m.remove(e)
	return true
}

func (m *Map[T]) merge() {
	batch := m.batch[:0]
	for e := m.fresh.Swap(nil); e != nil; {
		next := e.next
		e.next = nil
		batch = append(batch, e)
		e = next
	}
	m.batch = batch
	if len(batch) == 0 {
		return
	}
	// Keys in one batch are distinct: a key's successor can only be
	// created after its predecessor was collected, which happens after the
	// predecessor was merged.
	slices.SortFunc(batch, func(a, b *Entry[T]) int { return cmp.Compare(a.key, b.key) })
	out := slices.Grow(m.spare[:0], len(m.rows)+len(batch))
	i, j := 0, 0
	for i < len(m.rows) && j < len(batch) {
		// Existing rows first on equal keys: they are older.
		if batch[j].key < m.rows[i].key {
			out = appendNew(out, batch[j])
			j++
		} else {
			out = append(out, m.rows[i])
			i++
		}
	}
	out = append(out, m.rows[i:]...)
	for _, e := range batch[j:] {
		out = appendNew(out, e)
	}
	clear(batch)
	m.rows, m.spare = out, m.rows
	clear(m.spare)
}

// appendNew appends a new entry's row. Only a new row can follow an
// equal key: a new entry goes after every older incarnation of its key,
// and the rows after it have greater keys.
func appendNew[T any](rows []Row[T], e *Entry[T]) []Row[T] {
	same := len(rows) > 0 && rows[len(rows)-1].key == e.key
	return append(rows, Row[T]{Entry: e, SameKey: same})
}

// Retain drops the dead rows for which settled reports true: collected
// entries whose final state reached the wire. Live rows always stay.
func (m *Map[T]) Retain(settled func(*Entry[T]) bool) {
	out := m.rows[:0]
	dropped := false
	for _, r := range m.rows {
		if r.Dead() && settled(r.Entry) {
			dropped = true
			continue
		}
		if dropped {
			// Its previous row is gone: compare with the new one.
			r.SameKey = len(out) > 0 && out[len(out)-1].key == r.key
			dropped = false
		}
		out = append(out, r)
	}
	clear(m.rows[len(out):]) // do not keep dropped entries alive
	m.rows = out
}
