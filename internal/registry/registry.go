// Package registry keeps the entries that counters live in, keyed by path
// or root, decides when an entry no guard pins may be collected, keeps a
// collected entry's final counts for a while so that its key continues
// from them, caps how many keys it holds, and hands the snapshot pass a
// key-sorted view of the entries that it maintains incrementally.
//
// # Pins
//
// The registry does not count pins itself. A guard counts its pin in the
// caller's sharded counters (package moqstats keeps a pin counter in every
// counter cell, so a busy entry's guards pin on their own cache lines),
// and the caller tells Collect how to read the total. What the registry
// keeps is the entry's State: unpublished, live, dying or dead.
//
// # Invariants
//
//  1. An entry is collected (marked dead) only while no guard pins it, and
//     a dead entry is never pinned. A guard pins by first counting its pin
//     and then calling Admit, which waits while the entry is dying and
//     reports whether it is live. Collect first swaps in dying and then
//     reads the pin total, and marks the entry dead only if that total is
//     zero; otherwise it stores live again. All of these are sequentially
//     consistent atomics, so of a guard's count-then-load and the
//     collector's swap-then-read, at least one sees the other: either the
//     collector counts the pin and keeps the entry, or the guard sees
//     dying, waits, and, if the entry died (the collector missed the pin),
//     withdraws its pin and pins a successor. A pin counted before the
//     dying store is always in the total the collector reads after it,
//     whichever cell holds it: an atomic load observes every write that
//     precedes it in that order. No lock is taken to pin an entry.
//  2. The pass sees every entry before anyone can bump it. A new entry is
//     pushed on the list Merge takes from inside the map's compute
//     function, before the map store makes it visible, and it stays
//     unpublished (pinnable, never collected) until its creator returns
//     from the store. A pass that runs between the two merges it and reads
//     it but does not collect it, so a guard that finds the entry, bumps
//     and closes before its creator resumes is read by that pass.
//  3. Collection happens only in Collect, which the pass calls on a row
//     right before it reads the row's counters, so a collected entry's
//     final counters are read before it is forgotten. A dead entry leaves
//     the rows only when the pass says its final state reached the wire
//     (Retain), or when Merge folds it into its successor.
//  4. Rows are sorted by key and hold each key once. A successor created
//     while its dead predecessor's final state has not reached the wire
//     (a failed write) continues from it: Merge hands both to
//     Config.Continue, which moves the predecessor's final counts and
//     emission state into the successor, and drops the predecessor's row.
//     So a failed write delays a key's counts by a pass and never queues
//     incarnations behind each other.
//  5. With a Retention, a forgotten entry leaves what Config.Keep returns
//     (its final counts) under its key until the window ends; a successor
//     merged within it continues from them, so a key's counters never go
//     back while it is retained. Nothing bumped is lost either way.
//  6. Keys held (by a live entry, a dead one awaiting its final frame, or
//     a retained entry) never exceed MaxEntries, the overflow entry apart.
//     A hold belongs to the key, not to an entry: a successor takes over
//     the hold of its dead predecessor or of the retained entry it claims,
//     and only a key held by nothing reserves a new one, the one place the
//     count grows, against the cap. So a frame, which shows only rows, holds
//     at most MaxEntries keys plus the overflow key. A new key at the cap
//     first evicts the oldest retained entry; with none left it is folded
//     into the overflow entry, which is never collected, so totals over all
//     keys stay exact.
//  7. A retained entry whose key is live again is never evicted or
//     expired: its successor claims it when created, or, when the successor
//     was created while the forgotten entry was still mapped, forget leaves
//     it claimed. The successor's Merge then takes it. forget and create
//     decide this under the key's map lock, so of "successor created" and
//     "entry removed from the map" each sees the other's outcome.
//
// Merge, Collect, Retain, Expire and Rows belong to one goroutine at a time
// (the pass, serialized by its caller); everything else is safe for
// concurrent use.
//
// # What the tests show, and what they do not
//
// The pin-then-check tests run under the race detector on amd64 and arm64,
// natively and in an emulated arm64 guest (make test-arm64-race), with LSE
// atomics and without. The race detector checks that what a guard writes
// into an entry and what the pass reads from it are ordered by the atomics
// above; a plain access left unordered is reported whatever the hardware
// did. It does not check invariant 1: that rests on the atomics' single
// sequentially consistent order (of the guard's count-then-load and the
// collector's swap-then-read, at least one sees the other), which no
// interleaving a test happens to run can prove.
//
// Emulation differs from hardware here, in the weaker direction. qemu's
// TCG gives an arm64 guest its host's memory ordering, and on an x86 host
// it lets a load pass an earlier store-release (x86-TSO's one reordering),
// which arm64 forbids between STLR and LDAR: in the guest, Go's atomic
// Store followed by a Load of another variable is not sequentially
// consistent. Read-modify-writes run as locked host instructions and stay
// fully ordered. So the collector's dying is a Swap, not a Store: equally
// correct on hardware, where both are sequentially consistent, and correct
// in emulation, where TestPinAndCollectAtOnceNeverBothWin, run with a
// Store, failed in 4 to 3,471 of its 20,000 trials. The guard's side is an
// add, a read-modify-write already. Beyond that, emulation shows only the
// interleavings that happened to occur, which is why the argument above is
// made from the Go memory model.
//
// # Cost
//
// A new entry is pushed on a lock-free stack when it is created. Merge
// pops the stack, sorts just the new keys and merges them into the sorted
// rows, so a pass costs O(rows + new log new) and never sorts the whole key
// set: keeping keys sorted across ticks is what keeps a tick linear.
// Retained entries live in a plain map and a list in expiry order, under a
// mutex that only Merge (for new keys), Retain, Expire and, at the cap,
// eviction take.
package registry

import (
	"cmp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/puzpuzpuz/xsync/v3"
)

// InlineKey is how many bytes of quoted key an Entry holds in itself.
// Longer keys live in an allocation of their own. Sized so that package
// moqstats' broadcast entries come to 384 bytes: see its broadcastEntry.
// Quoted keys up to 40 bytes (paths up to 38, unescaped) fit; a longer key
// costs its own allocation, and the pass one more object to read.
const InlineKey = 40

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
	// State is read by every guard open and written when the entry is
	// published and when the pass collects (or considers collecting) it.
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
	live        int32 = iota // guards may pin it
	dying                    // the collector is reading its pins
	dead                     // collected: never pinned again
	unpublished              // its creator has not returned yet: pinnable, not collectable
)

// Entry flags, set at creation.
const (
	flagOverflow uint32 = 1 << iota // the overflow entry: never collected, not held
)

// State is an entry's lifetime state. Guards may hold a *State rather
// than the entry itself.
type State struct {
	s     atomic.Int32
	flags uint32 // immutable after creation
}

// Dead reports whether the entry has been collected.
func (st *State) Dead() bool { return st.s.Load() == dead }

// Admit completes a pin that the caller has already counted: it reports
// true if the entry is live (or not yet published), and false if it is
// dead, in which case the caller must withdraw its pin and pin a successor
// (Map.Live). While the collector is deciding (dying), Admit waits; that
// lasts as long as reading one entry's pins. See invariant 1.
func (st *State) Admit() bool {
	if s := st.s.Load(); s == live || s == unpublished {
		return true // inlined: a guard open pays no call for it
	}
	return st.admitSlow()
}

func (st *State) admitSlow() bool {
	for {
		switch st.s.Load() {
		case live, unpublished:
			return true
		case dead:
			return false
		}
		runtime.Gosched()
	}
}

// Config configures a Map. R is what a collected entry leaves behind for
// its retention window.
type Config[T, R any] struct {
	// Quote appends a key, encoded as a JSON string, to dst; it runs once
	// per entry, when the entry is created.
	Quote func(dst []byte, key string) []byte
	// Overflow is the reserved key that new keys fold into past MaxEntries
	// (and that callers fold other keys into, with Fold). It must differ
	// from every key the caller uses otherwise.
	Overflow string
	// MaxEntries caps the keys held (invariant 6); 0 means no cap.
	MaxEntries int
	// Retention is how long a forgotten entry's final counts are kept for
	// a successor; zero or negative keeps nothing (invariant 5).
	Retention time.Duration
	// Keep returns what the collected entry e leaves for its retention
	// window, and false when nothing is worth keeping (it never counted
	// anything). Called by Retain.
	Keep func(e *Entry[T]) (R, bool)
	// Continue makes succ, a new entry, continue where its key left off:
	// from pred, its dead predecessor whose final state has not reached
	// the wire, or from kept, what a forgotten predecessor left. Exactly
	// one of pred and kept is non-nil. Called by Merge, before succ is
	// read or collected.
	Continue func(succ, pred *Entry[T], kept *R)
}

// Map is a concurrent map of entries, plus the pass's sorted view of them.
type Map[T, R any] struct {
	cfg Config[T, R]
	m   *xsync.MapOf[string, *Entry[T]]
	// fresh is a lock-free stack of entries created since the last Merge.
	fresh atomic.Pointer[Entry[T]]
	// held counts keys held: by an entry created and not yet forgotten,
	// or by a retained entry (invariant 6). It grows only in reserve,
	// which never takes it past MaxEntries; a successor takes over its
	// key's hold.
	held atomic.Int64
	// overflow is the overflow entry once made; folded counts folds.
	overflow atomic.Pointer[Entry[T]]
	folded   atomic.Uint64
	kept     keptSet[R]

	// Owned by the pass.
	rows, spare []*Entry[T]
	batch       []*Entry[T]
}

// New returns an empty Map.
func New[T, R any](cfg Config[T, R]) *Map[T, R] {
	m := &Map[T, R]{cfg: cfg, m: xsync.NewMapOf[string, *Entry[T]]()}
	m.kept.byKey = map[string]*kept[R]{}
	return m
}

// testHookPublish, when set, runs in the creating goroutine between the map
// store that makes a new entry visible and its publication; testHookForget
// runs in the pass as it starts forgetting a settled entry, before the map
// lets go of it.
var (
	testHookPublish atomic.Pointer[func(key string)]
	testHookForget  atomic.Pointer[func(key string)]
)

// SetTestHookForget installs f as the forget hook (nil removes it). For
// tests of invariants 6 and 7 only.
func SetTestHookForget(f func(key string)) {
	if f == nil {
		testHookForget.Store(nil)
		return
	}
	testHookForget.Store(&f)
}

// SetTestHookPublish installs f as the creation hook (nil removes it). For
// tests of invariant 2 only.
func SetTestHookPublish(f func(key string)) {
	if f == nil {
		testHookPublish.Store(nil)
		return
	}
	testHookPublish.Store(&f)
}

// Lookup returns the entry mapped to key, creating one if there is none,
// or the overflow entry when creating one would pass MaxEntries. The entry
// may be dead already (collected) or soon: Admit tells, and Live recovers.
// Not checking for death here keeps Lookup to the map.
func (m *Map[T, R]) Lookup(key string) *Entry[T] {
	if e, ok := m.m.Load(key); ok {
		return e
	}
	return m.create(key)
}

// Get returns the live entry for key, if there is one, without creating
// it.
func (m *Map[T, R]) Get(key string) (*Entry[T], bool) {
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
// entry collected meanwhile. It returns the pinned entry, which is the
// overflow entry when key's was folded.
func (m *Map[T, R]) Pin(key string, e *Entry[T], pin func(*Entry[T]) bool) *Entry[T] {
	if e == nil {
		e = m.Lookup(key)
	}
	for !pin(e) {
		e = m.Live(key)
	}
	return e
}

// Live returns a live entry for key: the mapped one, or a successor
// created in place of a dead one (or the overflow entry, at the cap). It
// may die before the caller pins it; Admit tells.
func (m *Map[T, R]) Live(key string) *Entry[T] {
	if e := m.Lookup(key); !e.Dead() {
		return e
	}
	return m.create(key)
}

// Fold returns the overflow entry, counting one fold: for callers that
// fold a key they will not store (one too long, say).
func (m *Map[T, R]) Fold() *Entry[T] {
	m.folded.Add(1)
	return m.overflowEntry()
}

// Folded returns how many times a key was folded into the overflow entry.
func (m *Map[T, R]) Folded() uint64 { return m.folded.Load() }

func (m *Map[T, R]) overflowEntry() *Entry[T] {
	if e := m.overflow.Load(); e != nil {
		return e
	}
	e, _ := m.m.LoadOrCompute(m.cfg.Overflow, func() *Entry[T] {
		e := m.newEntry(m.cfg.Overflow)
		e.flags = flagOverflow
		m.push(e)
		return e
	})
	e.publish()
	m.overflow.Store(e)
	return e
}

// create maps key to a new entry, unless a live one is there, and returns
// the entry mapped. A dead entry still mapped is replaced by its successor.
// A key held by nothing is held only if the cap allows (invariant 6);
// otherwise create folds it.
func (m *Map[T, R]) create(key string) *Entry[T] {
	var made *Entry[T]
	full := false
	e, _ := m.m.Compute(key, func(cur *Entry[T], loaded bool) (*Entry[T], bool) {
		switch {
		case loaded && !cur.Dead():
			return cur, false
		case loaded:
			// Its dead predecessor holds the key: the successor takes the
			// hold over, so the cap does not apply. Merge folds the
			// predecessor into it, or forget, which runs under this lock
			// too, leaves it what the predecessor kept (invariant 7).
		case m.kept.claim(key):
			// Retained: the successor takes the retained entry's hold and
			// its counts, at Merge.
		case !m.reserve():
			full = true
			return nil, true // store nothing
		}
		// Pushed before the store makes it visible: invariant 2.
		made = m.newEntry(key)
		made.s.Store(unpublished)
		m.push(made)
		return made, false
	})
	if full {
		return m.Fold()
	}
	if made != nil && e == made {
		if hook := testHookPublish.Load(); hook != nil {
			(*hook)(key)
		}
		made.publish()
	}
	return e
}

// publish makes an unpublished entry collectable. Nothing else changes the
// state of an unpublished entry, so a plain store suffices.
func (e *Entry[T]) publish() {
	if e.s.Load() == unpublished {
		e.s.Store(live)
	}
}

// reserve holds one more key if the cap allows, evicting the oldest
// retained entry when that makes room. It is the only place held grows,
// and a compare-and-swap keeps it at or under the cap at every instant.
func (m *Map[T, R]) reserve() bool {
	if m.cfg.MaxEntries <= 0 {
		m.held.Add(1)
		return true
	}
	for {
		n := m.held.Load()
		if n < int64(m.cfg.MaxEntries) {
			if m.held.CompareAndSwap(n, n+1) {
				return true
			}
			continue
		}
		if !m.kept.evictOldest() {
			return false
		}
		m.held.Add(-1) // the evicted entry's key
	}
}

// newEntry returns an entry for key, with its quoted form (and key) in the
// entry when it fits.
func (m *Map[T, R]) newEntry(key string) *Entry[T] {
	e := new(Entry[T])
	// q is in e.inline when it fits, in a new array otherwise; neither is
	// ever written again, so a string can share it.
	q := m.cfg.Quote(e.inline[:0], key)
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
func (m *Map[T, R]) push(e *Entry[T]) {
	for {
		head := m.fresh.Load()
		e.next = head
		if m.fresh.CompareAndSwap(head, e) {
			return
		}
	}
}

// SetTestHookDropped installs f to see the key of every retained entry
// evicted or expired, under the retained set's mutex (nil removes it). For
// tests only.
func (m *Map[T, R]) SetTestHookDropped(f func(key string)) {
	if f == nil {
		m.kept.testDroppedKey.Store(nil)
		return
	}
	m.kept.testDroppedKey.Store(&f)
}

// Len returns the number of entries in the map (dead ones not yet replaced
// or forgotten included).
func (m *Map[T, R]) Len() int { return m.m.Size() }

// Held returns the number of keys held against MaxEntries (invariant 6).
func (m *Map[T, R]) Held() int { return int(m.held.Load()) }

// Kept returns the number of retained entries.
func (m *Map[T, R]) Kept() int {
	m.kept.mu.Lock()
	defer m.kept.mu.Unlock()
	return len(m.kept.byKey)
}

// Rows returns the pass's current view: every entry merged so far and not
// yet forgotten, sorted by key, each key once (invariant 4).
func (m *Map[T, R]) Rows() []*Entry[T] { return m.rows }

// Merge merges the entries created since the last Merge into the rows, in
// key order, makes each continue from its predecessor or from what a
// retained one left (invariants 4 and 5), and returns the rows.
func (m *Map[T, R]) Merge() []*Entry[T] {
	batch := m.batch[:0]
	for e := m.fresh.Swap(nil); e != nil; {
		next := e.next
		e.next = nil
		batch = append(batch, e)
		e = next
	}
	m.batch = batch
	if len(batch) == 0 {
		return m.rows
	}
	// Keys in one batch are distinct: a key's successor can only be
	// created after its predecessor was collected, which happens after the
	// predecessor was merged.
	slices.SortFunc(batch, func(a, b *Entry[T]) int { return cmp.Compare(a.key, b.key) })
	out := slices.Grow(m.spare[:0], len(m.rows)+len(batch))
	i, j := 0, 0
	for i < len(m.rows) && j < len(batch) {
		// Existing rows first on equal keys: a new entry follows its
		// predecessor, which appendNew then folds into it.
		if batch[j].key < m.rows[i].key {
			out = m.appendNew(out, batch[j])
			j++
		} else {
			out = append(out, m.rows[i])
			i++
		}
	}
	out = append(out, m.rows[i:]...)
	for _, e := range batch[j:] {
		out = m.appendNew(out, e)
	}
	clear(batch)
	if cap(batch) > 2*len(batch)+64 {
		// A burst of new keys is over: let its room go rather than keep
		// a word per key.
		m.batch = nil
	}
	m.rows, m.spare = out, m.rows
	clear(m.spare)
	return m.rows
}

// appendNew appends a new entry's row, making it continue its key. Only a
// new row can follow an equal key: a new entry goes after every older row
// of its key, and the rows after it have greater keys.
func (m *Map[T, R]) appendNew(rows []*Entry[T], e *Entry[T]) []*Entry[T] {
	if n := len(rows); n > 0 && rows[n-1].key == e.key {
		pred := rows[n-1]
		if !pred.Dead() {
			panic("BUG: registry: entry " + strconv.Quote(e.key) + " created while its predecessor is not dead")
		}
		if m.cfg.Continue != nil {
			m.cfg.Continue(e, pred, nil)
		}
		rows[n-1] = e // pred is forgotten; e took over its hold when created
		return rows
	}
	if k := m.kept.take(e.key); k != nil {
		if m.cfg.Continue != nil {
			m.cfg.Continue(e, nil, &k.val)
		}
		// e took over the retained entry's hold when it claimed it, or
		// when forget found it in e's predecessor's place.
	}
	return append(rows, e)
}

// Collect collects row e if no guard pins it, as pinned reads the pin
// total from e.Value: marks it dead. It reports whether e is dead, now or
// from an earlier pass; a dead entry's counters are final (invariant 1),
// and the caller reads them right after, so they reach a frame before
// Retain may drop e. The overflow entry and unpublished entries are never
// collected.
//
// The first read of the pins needs no care: a total that is not zero only
// delays collection. Only a zero total goes through the dying protocol.
func (m *Map[T, R]) Collect(e *Entry[T], pinned func(*T) bool) bool {
	switch e.s.Load() {
	case dead:
		return true
	case dying:
		panic("BUG: registry: entry " + strconv.Quote(e.key) + " left dying")
	case unpublished:
		return false
	}
	if e.flags&flagOverflow != 0 || pinned(&e.Value) {
		return false
	}
	// Dying before reading the pins again: see invariant 1. A swap, not a
	// store: a read-modify-write keeps the pin read after it on emulated
	// arm64 too, where a plain store-release may be passed (see the
	// package doc); on hardware both are sequentially consistent.
	// TestPinAndCollectAtOnceNeverBothWin catches a Store here, but only
	// under arm64 emulation on an x86 host (make test-arm64, which CI
	// runs): natively, on amd64 or arm64, a Store passes every test.
	e.s.Swap(dying)
	if pinned(&e.Value) {
		e.s.Store(live)
		return false
	}
	e.s.Store(dead)
	return true
}

// Retain forgets the dead rows for which settled reports true: collected
// entries whose final state reached the wire. Live rows always stay. A
// forgotten entry leaves the map, and, with a Retention, leaves what
// Config.Keep returns until now + Retention (now is the caller's monotonic
// clock; Expire takes the same clock).
func (m *Map[T, R]) Retain(now time.Duration, settled func(*Entry[T]) bool) {
	out := m.rows[:0]
	for _, e := range m.rows {
		if e.Dead() && settled(e) {
			m.forget(e, now)
			continue
		}
		out = append(out, e)
	}
	clear(m.rows[len(out):]) // do not keep forgotten entries alive
	m.rows = out
}

// forget lets go of e, a dead row whose final state reached the wire: its
// key's hold goes to what e leaves retained, or to the successor that
// replaced e in the map meanwhile, or is given back. All of it happens
// under the key's map lock, which create takes too, so a successor either
// found e mapped (and took its hold) before, or finds e's retained entry,
// or nothing, after (invariants 6 and 7).
func (m *Map[T, R]) forget(e *Entry[T], now time.Duration) {
	var v R
	keep := false
	if m.cfg.Retention > 0 && m.cfg.Keep != nil {
		v, keep = m.cfg.Keep(e)
	}
	if hook := testHookForget.Load(); hook != nil {
		(*hook)(e.key)
	}
	m.m.Compute(e.key, func(cur *Entry[T], loaded bool) (*Entry[T], bool) {
		succ := loaded && cur != e
		switch {
		case keep:
			// Claimed when a successor holds the key already: its Merge,
			// a later pass's, takes it, and nothing may evict it first.
			m.kept.put(strings.Clone(e.key), v, now+m.cfg.Retention, succ)
		case !succ:
			m.held.Add(-1)
		}
		if succ {
			return cur, false // keep the successor
		}
		return nil, true // delete e (or store nothing)
	})
}

// Expire drops the retained entries whose window ended by now.
func (m *Map[T, R]) Expire(now time.Duration) {
	m.held.Add(-int64(m.kept.expire(now)))
}

// kept is a retained entry: what a forgotten entry left, in expiry order.
type kept[R any] struct {
	key        string
	val        R
	expires    time.Duration
	prev, next *kept[R]
	claimed    bool // by a successor not merged yet: off the expiry list
}

// keptSet holds the retained entries by key, and those not claimed by a
// successor in a list ordered by expiry (which is also age: the window is
// the same for all), oldest first.
type keptSet[R any] struct {
	mu         sync.Mutex
	byKey      map[string]*kept[R]
	head, tail *kept[R]
	// testDropped, if set, sees every entry evicted or expired.
	testDropped func(v R)
	// testDroppedKey, if set, sees the key of every entry evicted or
	// expired (SetTestHookDropped).
	testDroppedKey atomic.Pointer[func(key string)]
}

// put retains v under key until expires; claimed puts it aside for a
// successor already created, off the expiry list.
func (s *keptSet[R]) put(key string, v R, expires time.Duration, claimed bool) {
	k := &kept[R]{key: key, val: v, expires: expires, claimed: claimed}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.byKey[key]; old != nil {
		// Cannot happen (a key is retained only while no entry holds it),
		// and would break the held count.
		panic("BUG: registry: key " + strconv.Quote(key) + " retained twice")
	}
	s.byKey[key] = k
	if claimed {
		return
	}
	k.prev = s.tail
	if s.tail != nil {
		s.tail.next = k
	} else {
		s.head = k
	}
	s.tail = k
}

// claim reports whether key is retained, and if so keeps it for the
// successor being created: it leaves the expiry list, so neither eviction
// nor expiry drops it before the next Merge takes it.
func (s *keptSet[R]) claim(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.byKey[key]
	if k == nil {
		return false
	}
	if !k.claimed {
		s.unlist(k)
		k.claimed = true
	}
	return true
}

// take removes and returns the retained entry for key, nil if none.
func (s *keptSet[R]) take(key string) *kept[R] {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.byKey[key]
	if k != nil {
		delete(s.byKey, key)
		if !k.claimed {
			s.unlist(k)
		}
	}
	return k
}

// evictOldest drops the oldest retained entry and reports whether there
// was one.
func (s *keptSet[R]) evictOldest() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == nil {
		return false
	}
	s.drop(s.head)
	return true
}

// expire drops the entries whose window ended by now and returns how many.
func (s *keptSet[R]) expire(now time.Duration) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for s.head != nil && s.head.expires <= now {
		s.drop(s.head)
		n++
	}
	return n
}

func (s *keptSet[R]) drop(k *kept[R]) {
	delete(s.byKey, k.key)
	s.unlist(k)
	if s.testDropped != nil {
		s.testDropped(k.val)
	}
	if hook := s.testDroppedKey.Load(); hook != nil {
		(*hook)(k.key)
	}
}

// unlist removes k from the expiry list.
func (s *keptSet[R]) unlist(k *kept[R]) {
	if k.prev != nil {
		k.prev.next = k.next
	} else {
		s.head = k.next
	}
	if k.next != nil {
		k.next.prev = k.prev
	} else {
		s.tail = k.prev
	}
	k.prev, k.next = nil, nil
}
