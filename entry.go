package moqstats

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/cpu"

	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/internal/registry"
	"github.com/moqstats/moqstats/snapshot"
)

// Entry layout, and what a collected entry leaves behind and how its
// successor continues from it (package registry calls keepBroadcast and
// continueBroadcast, and their session counterparts).

type (
	broadcastMap = registry.Map[broadcastEntry, keptBroadcast]
	sessionMap   = registry.Map[sessionEntry, counters.SessionSnapshot]
	bEntry       = registry.Entry[broadcastEntry]
	sEntry       = registry.Entry[sessionEntry]
)

// broadcastEntry is one broadcast path's state: its counters per slot
// (tier*2 + role), each set up when a guard first uses it. Most broadcasts
// use one or two of the four slots; the first slot used lives in the entry
// itself, so the pass reads a typical broadcast, key and counters, from one
// object.
//
// Layout: first at offset 0, and the registry entry around it exactly 384
// bytes (registry.InlineKey is sized for it, and a test checks). Go's
// allocator places the objects of a size class at multiples of the size
// from a page boundary, with no header before them up to 512 bytes (larger
// objects with pointers get an 8-byte one); 384 is a multiple of 128, the
// widest line (arm64), so every entry starts a cache line and first shares
// no line with another object. (It was 512, with 128 more bytes of inline
// key; 384 is the smallest size class that holds the slot, the entry's
// bookkeeping and a typical path.)
type broadcastEntry struct {
	first slot
	slots [4]atomic.Pointer[slot]
	// claimed is set once first is installed, or being installed, as one
	// of the four.
	claimed atomic.Bool
}

// slotOf returns slot i of e, setting it up.
func slotOf(e *bEntry, i int) *slot {
	b := &e.Value
	if sl := b.slots[i].Load(); sl != nil {
		return sl
	}
	sl := &b.first
	if !b.claimed.CompareAndSwap(false, true) {
		sl = new(slot)
	}
	sl.entry = e // before the slot is published below
	if b.slots[i].CompareAndSwap(nil, sl) {
		return sl
	}
	// Another guard set up slot i first.
	if sl == &b.first {
		b.claimed.Store(false)
	}
	return b.slots[i].Load()
}

// pin counts a pin in sl and completes it; see pinOn.
func (sl *slot) pin() bool { return pinOn(&sl.Counters, counters.Pins, &sl.entry.State) }

// pinOn counts a pin at index i of c and completes it against st, the
// state of the entry c belongs to (package registry: count, then check).
// If the entry was collected meanwhile it withdraws the pin and reports
// false. Guard opens call it, never bumps.
func pinOn[C interface{ Add(i int, n uint64) }](c C, i int, st *registry.State) bool {
	c.Add(i, 1)
	if st.Admit() {
		return true
	}
	c.Add(i, counters.Unpin)
	return false
}

// pinned reports whether a guard pins the entry: whether any slot's pin
// counters sum to nonzero. See registry's invariant 1 for why reading them
// slot by slot, cell by cell, is enough.
func (b *broadcastEntry) pinned() bool {
	var slots [4]*slot
	for i := range b.slots {
		slots[i] = b.slots[i].Load()
	}
	return pinnedIn(&slots)
}

// pinnedIn is pinned over slot pointers already loaded: the pass's first,
// careless look (Collect looks again, with care, before collecting).
func pinnedIn(slots *[4]*slot) bool {
	for _, sl := range slots {
		if sl != nil && sl.Pinned() {
			return true
		}
	}
	return false
}

// slotFields is one (broadcast, tier, role)'s counters, and, owned by the
// pass, what it last put in a frame for them.
type slotFields struct {
	counters.Counters
	emitted snapshot.Emitted[counters.Snapshot]
	// entry is the entry the slot belongs to, whose state a guard checks
	// after counting its pin (registry.State.Admit); set before the slot
	// is published.
	entry *bEntry
}

// slot pads slotFields to a power of two, a multiple of two cache lines.
// Go's allocator places objects of such sizes at multiples of their size,
// so the counters at offset 0 always start a line and share none with
// another slot's. (slotFields must not fill the size exactly: Go pads a
// struct that ends in a zero-size field, which the size test would
// catch.)
type slot struct {
	slotFields
	_ [slotSize - unsafe.Sizeof(slotFields{})]byte
}

const (
	lineSize  = unsafe.Sizeof(cpu.CacheLinePad{})
	slotAlign = 2 * lineSize
	slotSize  = (unsafe.Sizeof(slotFields{}) + slotAlign - 1) / slotAlign * slotAlign
)

// keptBroadcast is what a collected broadcast leaves for its retention
// window: the final counts of the slots it used, in slot order (used has
// bit i set for slot i), each as its twelve counters in uvarints. Final
// counts are mostly small numbers and zeros, so a slot takes 15 to 30
// bytes rather than the 96 of a counters.Snapshot: with the key and the
// registry's bookkeeping, about 170 bytes for a 22-byte path that used one
// slot (see Config.Retention).
type keptBroadcast struct {
	used uint8
	vals []byte
}

// snapshotWords views a Snapshot as its twelve counters, in field order.
func snapshotWords(v *counters.Snapshot) *[12]uint64 { return (*[12]uint64)(unsafe.Pointer(v)) }

// A Snapshot is exactly twelve uint64 fields, so snapshotWords is sound: a
// compile error otherwise (an index out of range, or a negative size).
var _ = [1]struct{}{}[unsafe.Sizeof(counters.Snapshot{})-12*8]

func appendKept(dst []byte, v counters.Snapshot) []byte {
	for _, n := range snapshotWords(&v) {
		dst = binary.AppendUvarint(dst, n)
	}
	return dst
}

// nextKept decodes the snapshot at the start of b, which appendKept wrote,
// and returns the rest of b.
func nextKept(b []byte) (counters.Snapshot, []byte) {
	var v counters.Snapshot
	w := snapshotWords(&v)
	for i := range w {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			panic("BUG: moqstats: retained counts truncated")
		}
		w[i], b = n, b[k:]
	}
	return v, b
}

// keepBroadcast returns e's final counts. e is dead and settled: every
// slot's emitted value is its final count, on the wire.
func keepBroadcast(e *bEntry) (keptBroadcast, bool) {
	var k keptBroadcast
	for i := range e.Value.slots {
		sl := e.Value.slots[i].Load()
		if sl == nil {
			continue
		}
		if v := sl.emitted.Value(); v != (counters.Snapshot{}) {
			k.used |= 1 << i
			k.vals = appendKept(k.vals, v)
		}
	}
	return k, k.used != 0
}

// continueBroadcast makes succ continue where its key left off: its slots
// get the final counts of pred's (or kept's) slots added, and take over
// their emission state, so a frame shows the key's counters growing across
// the collection, and a final count that has not reached the wire yet
// (pred's failed write) goes out with succ's. Runs in the pass, before
// succ is read, so no reader sees the counts half added.
func continueBroadcast(succ, pred *bEntry, kept *keptBroadcast) {
	if pred != nil {
		for i := range pred.Value.slots {
			psl := pred.Value.slots[i].Load()
			if psl == nil {
				continue
			}
			v := psl.ReadAll() // every counter carries on, written or not
			if v == (counters.Snapshot{}) && psl.emitted == (snapshot.Emitted[counters.Snapshot]{}) {
				continue // set up, never used
			}
			sl := slotOf(succ, i)
			sl.Continue(v)
			sl.emitted = psl.emitted
		}
		return
	}
	rest := kept.vals
	for i := range succ.Value.slots {
		if kept.used&(1<<i) != 0 {
			var v counters.Snapshot
			v, rest = nextKept(rest)
			sl := slotOf(succ, i)
			sl.Continue(v)
			sl.emitted = snapshot.OnWire(v)
		}
	}
}

// sessionEntry is one auth root's session gauge on one tier, and what the
// pass last put in a frame for it.
type sessionEntry struct {
	gauge   counters.Gauge
	emitted snapshot.Emitted[counters.SessionSnapshot]
}

func sessionPinned(e *sessionEntry) bool { return e.gauge.Pinned() }

// pinSession counts a pin on e's gauge and completes it; see pinOn.
func pinSession(e *sEntry) bool {
	return pinOn(&e.Value.gauge, counters.SessionPins, &e.State)
}

// keepSession returns a collected root's final counts (on the wire).
func keepSession(e *sEntry) (counters.SessionSnapshot, bool) {
	v := e.Value.emitted.Value()
	return v, v != (counters.SessionSnapshot{})
}

// continueSession is continueBroadcast for a session root.
func continueSession(succ, pred *sEntry, kept *counters.SessionSnapshot) {
	if pred != nil {
		succ.Value.gauge.Continue(pred.Value.gauge.Read())
		succ.Value.emitted = pred.Value.emitted
		return
	}
	succ.Value.gauge.Continue(*kept)
	succ.Value.emitted = snapshot.OnWire(*kept)
}
