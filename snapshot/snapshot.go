// Package snapshot decides, once per tick, which keys a track's frame
// carries and whether the frame is worth writing, and builds it.
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
// Each key keeps, in an Emitted owned by the pass, the value it last put in
// a frame and the pass that did. A Track remembers the last pass whose
// frame reached the wire (written, or found identical to the last one).
// A value put in a frame by a later pass, whose write failed, is not on the
// wire: the key counts as changed until a frame carrying it is written.
// So a failed write delays a count and never loses it, and committing a
// written frame is one store, not a pass over every key. A frame that goes
// out in two forms (a plain track and its compressed sibling) is committed
// only once both were written; one written alone is recorded with Wrote,
// so that later frames compare with the bytes on its track, while its
// values stay pending and go out again with the next frame.
//
// # Idle frames
//
// A frame is written only when its bytes differ from the last frame
// written. Most ticks are settled before anything is encoded: Changed
// reports false only when no key in the frame changed since its value
// reached the wire and the frame has as many keys as the last one, and
// then the bytes are equal. (A key in the frame with an unchanged value is
// live, so it was live, with this value, when that value reached the wire,
// and every frame written since carried it; the keys are thus the last
// frame's, with the same values.) When Changed reports true the caller asks
// Unchanged, which catches the one case the values cannot: a key
// re-created from zero whose new counters equal its predecessor's last
// ones. That needs a byte comparison only when no changed key had a
// nonzero value on the wire before; a changed key that had one was either
// in the last frame with it, or (a retained key coming back) in no frame
// since, so the bytes differ. Track-latest semantics still give late
// subscribers the last frame.
//
// # One row per key
//
// Rows come in key order, each key once. A key whose entry was collected
// and re-created continues: the caller (package registry) moves the old
// entry's counts and Emitted into the new one, so a track sees one key
// whose counters keep growing, and a final count that had not reached the
// wire goes out with the successor's.
//
// # Patches
//
// A compressed track carries, between snapshots, the merge patch (RFC
// 7396) that turns the frame of one tick into the next. A Track with
// AppendValue and AppendPatch builds it while it offers rows, from what it
// already knows: a key whose Emitted says it was in the frame before
// (Emitted records the last pass whose frame held the key) and is in this
// one with another value maps to its changed members; a key in this frame
// and not the one before, to its whole value; a key in the frame before
// and not this one, to null. A key whose row is gone (its owner forgot it
// after the frame, see Gone) is null in the next patch, or, if a successor
// row of the same key is offered, the successor is diffed against it. So
// a patch costs work in proportion to what changed, beyond the visit every
// row gets anyway, and is empty exactly when the two frames hold the same
// value. The frame before is the one built, written or not: a writer whose
// last write failed starts over from a snapshot.
//
// # Encoding as it goes
//
// Once a tick's frame is known to differ, every later Offer is encoded by
// the next Encode call, so a caller that offers in blocks and calls Encode
// after each block encodes keys while their memory is still in cache.
// Frame encodes whatever is left.
package snapshot

// Value is a snapshot a frame carries for one key.
type Value interface {
	comparable
	// Live reports whether a guard is open.
	Live() bool
}

// Emitted is one key's state on one track, owned by the pass: the value it
// last put in a frame, the pass that changed it (0: never), and the last
// pass whose frame held the key (0: none).
type Emitted[V Value] struct {
	v        V
	pass, in uint64
}

// Value returns the value the key last put in a frame.
func (e *Emitted[V]) Value() V { return e.v }

// OnWire returns the Emitted state of a key whose value v is on the wire
// and in no frame since: what a retained key's successor starts from.
func OnWire[V Value](v V) Emitted[V] { return Emitted[V]{v: v} }

// Track builds one track's frame, tick after tick. A Track needs a Name
// and AppendMembers before its first tick, and is owned by one goroutine
// at a time.
type Track[V Value] struct {
	// Name is the track's name, for the caller's writes and errors.
	Name string
	// AppendMembers appends "key":value members for keys[i] and vals[i],
	// joined by commas (as package encode's Append*Members do). Track adds
	// the braces, and the commas between the pieces it encodes.
	AppendMembers func(dst []byte, keys []string, vals []V) []byte

	// AppendValue and AppendPatch, when both are set, make the track also
	// build each tick's merge patch against the frame of the tick before
	// (see "Patches" in the package doc). AppendValue appends one whole
	// value; AppendPatch the object of cur's members that differ from
	// old's.
	AppendValue func(dst []byte, v V) []byte
	AppendPatch func(dst []byte, old, cur V) []byte

	// pass numbers ticks from 1; good is the last pass whose frame
	// reached the wire (0: none yet).
	pass, good uint64

	// The frame of the current tick: quoted keys and where their values
	// are, in offer order. A row in the frame has its value in its
	// Emitted (Offer leaves e.v equal to the value offered), which the
	// next Offer of the key, a tick later, is the first to change: so the
	// track keeps a pointer, 8 bytes a row rather than a copy of the value
	// (96 for a broadcast's). buf holds the frame encoded so far: '{' and
	// the first encoded members.
	keys    []string
	vals    []*Emitted[V]
	chunk   []V // scratch: values copied out for AppendMembers
	buf     []byte
	encoded int
	// changed reports whether some key in this tick's frame differs from
	// its value on the wire; differs whether one of them had a value on
	// the wire before, which makes the frame's bytes differ (package doc).
	changed, differs bool

	// last is the last frame that reached the wire and lastLen the number
	// of keys in it. next is spare capacity for encoding.
	last, next []byte
	lastLen    int

	// patch holds this tick's merge patch so far: '{' and the members,
	// joined by commas; gone are keys forgotten by their owner after the
	// last tick's frame held them, in key order, and goneAt how many of
	// them this tick has passed.
	patch  []byte
	gone   []goneKey[V]
	goneAt int
	// addsProto is set when this tick's patch adds the key "__proto__":
	// see AddsProto.
	addsProto bool
}

// goneKey is a key that was in the last frame and whose row is gone.
type goneKey[V Value] struct {
	key, quoted string
	v           V
}

// Reset starts a new tick.
func (t *Track[V]) Reset() {
	t.pass++
	t.keys, t.vals = t.keys[:0], t.vals[:0]
	t.buf, t.encoded = nil, 0
	t.changed, t.differs = false, false
	t.patch = append(t.patch[:0], '{')
	t.addsProto = false
}

// patching reports whether the track builds patches.
func (t *Track[V]) patching() bool { return t.AppendPatch != nil && t.AppendValue != nil }

// Offer considers one row for this tick's frame: key is its key, quoted
// the key as a JSON string, cur its current value and e its emitted state,
// which Offer updates when cur goes into the frame. Rows must come in key
// order, each key once; a row with no value on this track is not offered.
func (t *Track[V]) Offer(key, quoted string, cur V, e *Emitted[V]) {
	onWire := e.pass <= t.good
	changed := cur != e.v || !onWire
	in := changed || cur.Live()
	if t.patching() {
		t.patchRow(key, quoted, cur, e, in)
	}
	if !in {
		return
	}
	e.in = t.pass
	if changed {
		var zero V
		t.changed = true
		t.differs = t.differs || (onWire && e.v != zero)
		e.v, e.pass = cur, t.pass
	}
	t.keys = append(t.keys, quoted)
	t.vals = append(t.vals, e)
}

// patchRow adds the row's member to this tick's patch, if the frame before
// had it differently: its changed members, its whole value if it is new,
// null if it left. A gone key equal to this one was in the frame before:
// the row is its successor.
func (t *Track[V]) patchRow(key, quoted string, cur V, e *Emitted[V], in bool) {
	prev, was := e.v, e.in != 0 && e.in == t.pass-1
	for t.goneAt < len(t.gone) && t.gone[t.goneAt].key <= key {
		g := &t.gone[t.goneAt]
		t.goneAt++
		if g.key == key {
			prev, was = g.v, true
			break
		}
		t.patchNull(g.quoted)
	}
	switch {
	case in && !was:
		t.addsProto = t.addsProto || key == "__proto__"
		t.patchMember(quoted)
		t.patch = t.AppendValue(t.patch, cur)
	case in && cur != prev:
		t.patchMember(quoted)
		t.patch = t.AppendPatch(t.patch, prev, cur)
	case !in && was:
		t.patchNull(quoted)
	}
}

func (t *Track[V]) patchMember(quoted string) {
	if len(t.patch) > 1 { // past the '{'
		t.patch = append(t.patch, ',')
	}
	t.patch = append(t.patch, quoted...)
	t.patch = append(t.patch, ':')
}

func (t *Track[V]) patchNull(quoted string) {
	t.patchMember(quoted)
	t.patch = append(t.patch, "null"...)
}

// Gone records that a key whose row will not be offered again (its owner
// forgot it) was in this tick's frame with value v, so the next tick's
// patch removes it, or diffs a successor against it. Calls come in key
// order, after this tick's offers.
func (t *Track[V]) Gone(key, quoted string, e *Emitted[V]) {
	if t.patching() && e.in == t.pass {
		t.gone = append(t.gone, goneKey[V]{key, quoted, e.v})
	}
}

// Patch returns this tick's merge patch against the frame of the tick
// before, and whether it changes anything: with nothing in it, the two
// frames hold the same value. Call it after the last Offer, once per tick.
// It is valid until the next Reset.
func (t *Track[V]) Patch() (patch []byte, changed bool) {
	for ; t.goneAt < len(t.gone); t.goneAt++ {
		t.patchNull(t.gone[t.goneAt].quoted)
	}
	clear(t.gone)
	t.gone, t.goneAt = t.gone[:0], 0
	t.patch = append(t.patch, '}')
	return t.patch, len(t.patch) > 2
}

// AddsProto reports whether this tick's patch adds the key "__proto__".
// JavaScript readers apply a merge patch with target[key] = value, which
// for that key sets the object's prototype instead of adding a member
// (moq's own @moq/json does), so a writer should send a snapshot instead:
// JSON.parse makes it an ordinary member, which later patches change
// like any other.
func (t *Track[V]) AddsProto() bool { return t.addsProto }

// Encoding reports whether this tick's frame is being encoded as it goes:
// it is known to differ from the last frame written.
func (t *Track[V]) Encoding() bool { return t.changed || !t.written() }

// Encode encodes the keys offered since the last call, if Encoding.
func (t *Track[V]) Encode() {
	if t.Encoding() {
		t.encode()
	}
}

func (t *Track[V]) encode() {
	if t.buf == nil {
		// The spare buffer is reused while it has room for the last
		// frame and a 128th more (counters gain digits); a new one gets
		// a 32nd more, so a slowly growing frame reallocates once in many
		// ticks. Frames are most of what a pass keeps per key, and a
		// track keeps two (the last and the spare), so both stay within a
		// few percent of a frame (see Wrote).
		if cap(t.next) < len(t.last)+len(t.last)/128 {
			t.next = make([]byte, 0, len(t.last)+len(t.last)/32)
		}
		t.buf = append(t.next[:0], '{')
	}
	if t.encoded == len(t.keys) {
		return
	}
	for t.encoded < len(t.keys) {
		n := min(len(t.keys)-t.encoded, encodeChunk)
		if cap(t.chunk) < encodeChunk {
			t.chunk = make([]V, encodeChunk)
		}
		chunk := t.chunk[:n]
		for i, e := range t.vals[t.encoded : t.encoded+n] {
			chunk[i] = e.v
		}
		if t.encoded > 0 {
			t.buf = append(t.buf, ',')
		}
		t.buf = t.AppendMembers(t.buf, t.keys[t.encoded:t.encoded+n], chunk)
		t.encoded += n
	}
}

// encodeChunk is how many values encode copies out of their Emitted at a
// time.
const encodeChunk = 64

func (t *Track[V]) written() bool { return t.good > 0 }

// Changed reports whether this tick's frame may differ from the last frame
// written. When it reports false the bytes are equal (see the package
// doc): call Commit(nil) without encoding. The first frame always counts
// as changed.
func (t *Track[V]) Changed() bool {
	return !t.written() || t.changed || len(t.keys) != t.lastLen
}

// Frame returns this tick's frame, encoding what Encode has not. Call it
// only when Changed reports true.
func (t *Track[V]) Frame() []byte {
	t.encode()
	return append(t.buf, '}')
}

// Unchanged reports whether frame, this tick's Frame, is byte-identical to
// the last frame that reached the wire, so writing it can be skipped. It
// compares bytes only when the values leave it open.
func (t *Track[V]) Unchanged(frame []byte) bool {
	return t.written() && !t.differs && string(frame) == string(t.last)
}

// Commit records that this tick's frame reached the wire: frame is this
// tick's Frame, written or found Unchanged, or Last when Changed reported
// false. Without Commit, nothing this tick put in the frame counts as on
// the wire.
func (t *Track[V]) Commit(frame []byte) {
	t.good = t.pass
	t.Wrote(frame)
}

// Wrote records that frame, this tick's, is the last frame written, for
// Changed and Unchanged to compare with, without its values counting as
// on the wire: for a frame written where it must also reach somewhere else
// (a compressed sibling) before it counts.
func (t *Track[V]) Wrote(frame []byte) {
	t.lastLen = len(t.keys)
	if len(frame) > 0 && (len(t.last) == 0 || &frame[0] != &t.last[0]) {
		t.last, t.next = frame, t.last
		if cap(t.next) > len(frame)+len(frame)/8+64 {
			// Append's growth slack (the first frame's, or a jump):
			// let encode allocate one to size.
			t.next = nil
		}
	}
}

// Settled reports whether cur, a key's current value, is on the wire: a
// collected key with a settled value on every track can be forgotten.
func (t *Track[V]) Settled(cur V, e *Emitted[V]) bool {
	return cur == e.v && e.pass <= t.good
}

// Last returns the last frame written, or nil.
func (t *Track[V]) Last() []byte { return t.last }
