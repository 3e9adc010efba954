// Package snapshot decides, once per tick, which keys a track's frame
// carries and whether the frame is worth writing.
//
// # Live or changed
//
// A key is in a track's frame on every tick where its value is live (a
// guard is open, so traffic may start at any moment) or differs from the
// last value of it that reached the wire. Live keys appear every tick so a
// downstream "currently active" view always sees the full set; changed keys
// appear once more after they go idle, so the final close is emitted. A key
// never emitted counts as emitted with the zero value (the reference's
// None-as-default rule): a slot that saw no traffic never appears, even on
// its first tick.
//
// # Commit on write
//
// What "reached the wire" means is decided by the caller: it encodes the
// frame, writes it, and calls Commit only when the write succeeded (or when
// the bytes equal the last frame written, which needs no write). A frame
// that fails to write leaves every emitted value as it was, so the next
// tick includes the same changes again: a failed write delays a count, and
// never loses it.
//
// # Idle frames
//
// Commit remembers the frame's bytes; Unchanged compares the next frame
// with them, and the caller skips the write when they match. Track-latest
// semantics still give late subscribers the last frame.
//
// # Incarnations
//
// A collected entry and its successor (the same key, re-created) may both
// be offered in one tick. The older one is offered first; if it is in the
// frame, the successor waits for the next tick, so the frame has each key
// once and a consumer sees the old incarnation's final counts before the
// new one's reset.
package snapshot

// Value is a snapshot a frame carries for one key.
type Value interface {
	comparable
	// Live reports whether a guard is open.
	Live() bool
}

// Track builds one track's frame, tick after tick. The zero Track, given a
// Name, is ready to use. A Track is owned by one goroutine at a time.
type Track[V Value] struct {
	// Name is the track's name, for the caller's writes and errors.
	Name string

	// The frame of the current tick: quoted keys, values, and where each
	// value's emitted state lives, in offer order.
	keys    []string
	vals    []V
	emitted []*V

	// prevKey is the key of the last Offer; prevIn whether some
	// incarnation of it is in the frame.
	prevKey string
	prevIn  bool

	// last is the last frame that reached the wire; written reports
	// whether there is one. next is spare capacity for encoding.
	last, next []byte
	written    bool
}

// Reset starts a new tick.
func (t *Track[V]) Reset() {
	clear(t.emitted) // drop pointers into entries that may be collected
	t.keys, t.vals, t.emitted = t.keys[:0], t.vals[:0], t.emitted[:0]
	t.prevKey, t.prevIn = "", false
}

// Offer considers one key for this tick's frame: key is the raw key (to
// recognize incarnations), quoted its JSON form, cur its current value and
// emitted the value last committed for it, which Commit will update. Keys
// must be offered in byte order, older incarnations first.
func (t *Track[V]) Offer(key, quoted string, cur V, emitted *V) {
	if key == t.prevKey && t.prevIn {
		return // an older incarnation is in this frame; see package doc
	}
	in := cur.Live() || cur != *emitted
	t.prevKey, t.prevIn = key, in
	if in {
		t.keys = append(t.keys, quoted)
		t.vals = append(t.vals, cur)
		t.emitted = append(t.emitted, emitted)
	}
}

// Keys returns the quoted keys in this tick's frame, in order.
func (t *Track[V]) Keys() []string { return t.keys }

// Values returns the values in this tick's frame, in key order.
func (t *Track[V]) Values() []V { return t.vals }

// Buffer returns an empty slice to encode this tick's frame into. Its
// capacity is reused from earlier ticks.
func (t *Track[V]) Buffer() []byte { return t.next[:0] }

// Unchanged reports whether frame is byte-identical to the last frame that
// reached the wire, so writing it can be skipped.
func (t *Track[V]) Unchanged(frame []byte) bool {
	return t.written && string(frame) == string(t.last)
}

// Commit records that frame (built from this tick's Keys and Values, in a
// slice from Buffer) reached the wire: each included key's emitted value
// becomes its current value, and frame becomes the one Unchanged compares
// against. The previous frame's memory becomes the next Buffer.
func (t *Track[V]) Commit(frame []byte) {
	for i, e := range t.emitted {
		*e = t.vals[i]
	}
	t.last, t.next = frame, t.last
	t.written = true
}

// Last returns the last frame committed, or nil before the first.
func (t *Track[V]) Last() []byte { return t.last }
