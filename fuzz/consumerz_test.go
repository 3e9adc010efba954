package fuzz

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/zframe"
)

// Limits of the compressed-track targets: small, so that the size and
// entry caps are reached, and memory stays bounded whatever the input.
var zDecoder = consumer.Decoder{MaxFrameSize: 1 << 12, MaxEntries: 8}

// zinput hands out a fuzz input byte by byte, zeros once it is used up.
type zinput struct{ b []byte }

func (in *zinput) next() byte {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return c
}

func (in *zinput) take(n int) []byte {
	n = min(n, len(in.b))
	p := in.b[:n]
	in.b = in.b[n:]
	return p
}

// checkApplied fails t unless err, from Apply of frame index of group,
// is nil or a *FrameError placed there that matches ErrInvalidFrame,
// and unless the track's state agrees with it.
func checkApplied(t *testing.T, c *consumer.CompressedTrack, kind consumer.Kind, group uint64, index int, err error) {
	t.Helper()
	if err != nil {
		var fe *consumer.FrameError
		if !errors.As(err, &fe) || !errors.Is(err, consumer.ErrInvalidFrame) {
			t.Fatalf("frame %d.%d: error %v is not a *FrameError matching ErrInvalidFrame", group, index, err)
		}
		if fe.Group != group || fe.Index != index {
			t.Fatalf("frame %d.%d: error placed at %d.%d: %v", group, index, fe.Group, fe.Index, err)
		}
		if !errors.Is(err, consumer.ErrFrameOrder) {
			if _, _, ok := c.Current(); ok {
				t.Fatalf("frame %d.%d: Current reports a value after %v", group, index, err)
			}
		}
		return
	}
	g, i, ok := c.Current()
	if !ok || g != group || i != index {
		t.Fatalf("frame %d.%d applied, Current() = %d, %d, %v", group, index, g, i, ok)
	}
	n := len(c.Traffic())
	if kind == consumer.SessionsKind {
		n = len(c.Presence())
		if c.Presence() == nil || c.Traffic() != nil {
			t.Fatal("a session track without a PresenceFrame, or with a TrafficFrame")
		}
	} else if c.Traffic() == nil || c.Presence() != nil {
		t.Fatal("a per-broadcast track without a TrafficFrame, or with a PresenceFrame")
	}
	if n > zDecoder.MaxEntries {
		t.Fatalf("frame %d.%d: %d keys, past MaxEntries %d", group, index, n, zDecoder.MaxEntries)
	}
}

// FuzzCompressedTrackHostile feeds a CompressedTrack random sequences of
// group and index numbers (going on, skipping, going back, negative) with
// frame bytes that are either raw fuzz bytes (mostly not DEFLATE at all)
// or fuzz bytes compressed as a producer would, so that the JSON checks
// see hostile snapshots and patches. It must never panic; every error is
// a *FrameError placed at the frame, and a frame applied leaves a value
// within the Decoder's limits, current at that frame.
func FuzzCompressedTrackHostile(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x81\x08{\"a\":{}}\x00\x01\x81\x0c{\"a\":null}"))
	f.Add([]byte("\x01\x00\x00\x81\x1c{\"r\":{\"sessions\":1}}\x00\x01\x81\x13{\"r\":{\"sessions\":-1}}"))
	f.Add([]byte("\x00\x00\x00\x01\x05\xff\xff\xff\xff\xff\x00\x01\x81\x03[1]"))
	f.Add([]byte("\x00\x00\x02\x81\x08{\"a\":{}}\x00\x00\x81\x08{\"a\":{}}\xff\x05\x81\x02{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &zinput{data}
		kind := consumer.Publisher
		if in.next()&1 != 0 {
			kind = consumer.SessionsKind
		}
		c := consumer.NewCompressedTrack(kind, zDecoder)
		w := zframe.NewWriter(1 << 20)
		group := uint64(0)
		for len(in.b) > 0 {
			switch step := in.next(); {
			case step == 0xff:
				group-- // back, or wrapping to the top
			default:
				group += uint64(step % 3)
			}
			index := int(in.next() % 8)
			if index == 7 {
				index = -1
			}
			how := in.next()
			payload := in.take(int(how & 0x7f))
			frame := payload
			if how&0x80 != 0 && len(payload) > 0 {
				// Compressed as the producer would: the JSON is hostile,
				// the DEFLATE stream sound.
				if index == 0 || w.Snapshotting() {
					frame = w.Snapshot(payload)
				} else {
					frame = w.Delta(payload)
				}
				w.Commit(true)
			}
			err := c.Apply(group, index, frame)
			checkApplied(t, c, kind, group, index, err)
		}
	})
}

// zvalue is a per-broadcast frame as the oracle holds it: key to the
// twelve counters, in wire order.
type zvalue map[string][12]uint64

// oracleSnapshot is a frame's JSON, encoded by encoding/json.
func oracleSnapshot(v zvalue) []byte {
	m := map[string]map[string]uint64{}
	for k, c := range v {
		e := map[string]uint64{}
		for i, name := range trafficNames {
			e[name] = c[i]
		}
		m[k] = e
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// oraclePatch is the RFC 7396 merge patch from old to cur, encoded by
// encoding/json: a key that left is null, a new key has its whole value,
// a changed key its changed counters. ok is false when nothing changed.
func oraclePatch(old, cur zvalue) (patch []byte, ok bool) {
	m := map[string]any{}
	for k := range old {
		if _, in := cur[k]; !in {
			m[k] = nil
		}
	}
	for k, c := range cur {
		o, had := old[k]
		e := map[string]uint64{}
		for i, name := range trafficNames {
			if !had || c[i] != o[i] {
				e[name] = c[i]
			}
		}
		if !had || len(e) > 0 {
			m[k] = e
		}
	}
	if len(m) == 0 {
		return nil, false
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b, true
}

// oracleMerge applies patch to cur as RFC 7396 and the consumer's
// contract say, with encoding/json: ok is false when the consumer must
// reject it (not JSON, a root or entry that is not an object or null, a
// counter that is not an unsigned integer within uint64 or is null, over
// a limit), and strict is false when encoding/json accepts what the
// contract rejects (duplicate keys, deep nesting, bad UTF-8) or leaves a
// case to the comparison (surrogate escapes).
func oracleMerge(cur zvalue, patch []byte) (next zvalue, ok, strict bool) {
	if !json.Valid(patch) || len(patch) > zDecoder.MaxFrameSize {
		return nil, false, false
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(patch, &raw); err != nil || raw == nil || len(raw) > zDecoder.MaxEntries {
		return nil, false, false
	}
	strict = utf8.Valid(patch) && !hasSurrogateEscape(patch) && uniqueAndShallow(patch)
	next = maps.Clone(cur)
	for k, m := range raw {
		if string(m) == "null" {
			delete(next, k)
			continue
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(m, &members); err != nil || members == nil {
			return nil, false, false
		}
		v := next[k]
		for i, name := range trafficNames {
			mm, present := members[name]
			if !present {
				continue
			}
			if string(mm) == "null" {
				return nil, false, false
			}
			if err := json.Unmarshal(mm, &v[i]); err != nil {
				return nil, false, false
			}
		}
		next[k] = v
	}
	if len(next) > zDecoder.MaxEntries {
		return nil, false, false
	}
	return next, true, strict
}

func valueOf(f consumer.TrafficFrame) zvalue {
	v := zvalue{}
	for k, t := range f {
		var c [12]uint64
		for i := range c {
			c[i] = t.Field(consumer.TrafficField(i))
		}
		v[k] = c
	}
	return v
}

// zkeys are the keys the oracle's values use: escapes, non-ASCII, empty.
var zkeys = []string{"a", "b/c", "", "k\"q", "é/ü", "x\\y", "\x01"}

// mutate returns patch changed by op, in a way that may or may not keep
// it a valid patch: the oracle decides.
func mutate(patch []byte, op, arg byte) []byte {
	p := bytes.Clone(patch)
	switch op % 10 {
	case 0: // every key twice
		return append(append(p[:len(p)-1:len(p)-1], ','), patch[1:]...)
	case 1: // an entry that is a number
		return append(p[:len(p)-1], []byte(`,"n":1}`)...)
	case 2: // a counter beyond uint64
		return bytes.Replace(p, []byte(`"bytes":`), []byte(`"bytes":18446744073709551616`+`,"x":`), 1)
	case 3: // a null counter
		return bytes.Replace(p, []byte(`"frames":`), []byte(`"frames":null,"y":`), 1)
	case 4: // invalid UTF-8
		return append(p[:len(p)-1], []byte(",\"\xff\":{}}")...)
	case 5: // not an object
		return []byte(`[` + string(p) + `]`)
	case 6: // cut short
		if n := int(arg) % len(p); n > 0 {
			return p[:n]
		}
		return []byte(" ")
	case 7: // a byte changed
		p[int(arg)%len(p)] ^= 1 << (arg % 7)
		return p
	case 8: // an unknown member
		return bytes.Replace(p, []byte(`":{`), []byte(`":{"new":[{"z":null}],`), 1)
	default: // a key removed that the value lacks
		return append(p[:len(p)-1], []byte(`,"absent":null}`)...)
	}
}

// FuzzCompressedTrackOracle builds a sequence of frame values from the
// input, encodes each as a producer would (a snapshot, or a merge patch
// against the value before it, both by encoding/json), compresses them
// with zframe.Writer with a small delta budget so groups roll, and
// decodes them with a CompressedTrack. Along the way the input may fail
// a write (the next frame resyncs with a snapshot in a new group), lose a
// frame, mutate a patch before compression, or flip a compressed byte.
// The value after every frame must equal the oracle's: the sequence's
// value on unmutated input, the patch applied by encoding/json and RFC
// 7396 on a mutated one (whatever the consumer accepts, the oracle
// accepts with the same value; whatever the oracle accepts strictly, the
// consumer accepts), and no value at all while a group is broken.
func FuzzCompressedTrackOracle(f *testing.F) {
	f.Add([]byte("\x02\x01\x10\x20\x03\x00\x00\x01\x11\x21\x00\x00\x00\x00\x01\x12\x22\x00\x00\x05\x00"))
	f.Add([]byte("\x01\x01\x10\x20\x03\x00\x00\x01\x11\x21\x40\x00\x00\x00\x01\x12\x22\x80\x00\x05\x00"))
	f.Add([]byte("\x03\x07\x10\x20\x03\x00\x00\x07\x11\x21\xc0\x02\x00\x00\x07\x12\x22\xc0\x03\x05\x00\x07\x11\x21\xc0\x07\x09"))
	f.Add([]byte("\x01\x0f\xff\xff\x03\xff\x00\x0f\x01\x01\x00\x00\x00\x0f\x00\x00\x20\x00\x00\x0f\x02\x02\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) { zoracle(t, data, nil) })
}

// zcounts counts what zoracle went through, for the test that checks
// the target reaches what it is for.
type zcounts struct {
	snapshots, deltas, mutatedOK, mutatedRejected, missing, flipped, failed int
}

// zoracle is the body of FuzzCompressedTrackOracle; n, if not nil,
// counts what it did.
func zoracle(t *testing.T, data []byte, n *zcounts) {
	if n == nil {
		n = &zcounts{}
	}
	{
		in := &zinput{data}
		w := zframe.NewWriter(1 + int(in.next()%3))
		c := consumer.NewCompressedTrack(consumer.Publisher, zDecoder)
		var (
			truth  = zvalue{} // the producer's value
			wire   zvalue     // the producer's value on the wire (nil: none yet)
			expect zvalue     // what the consumer must hold (nil: nothing current)
			known  bool       // expect is known; false after a frame of unknown content
			group  uint64
			index  int
			gapped bool // a frame of the group was lost or rejected
			// mutated: a mutated patch of the group was accepted, so
			// expect is no longer the producer's value.
			mutated bool
		)
		for step := 0; len(in.b) > 0 && step < 64; step++ {
			// The next value: each key stays, changes some counters,
			// comes or goes.
			keys := in.next()
			next := zvalue{}
			for i, k := range zkeys {
				if keys&(1<<i) == 0 {
					continue
				}
				v := truth[k]
				for f := range 12 {
					switch b := in.next(); {
					case b&0xc0 == 0xc0:
						v[f] += uint64(b & 0x3f)
					case b == 0xbf:
						v[f] = 1<<64 - 1 - uint64(in.next())
					}
				}
				next[k] = v
			}
			truth = next
			op := in.next()
			var raw []byte
			snapshot := w.Snapshotting()
			if snapshot {
				if !w.Resyncing() && wire != nil && maps.Equal(truth, wire) {
					continue // unchanged: nothing written
				}
				raw = oracleSnapshot(truth)
			} else {
				patch, changed := oraclePatch(wire, truth)
				if !changed {
					continue
				}
				raw = patch
				if op&0x38 == 0x38 {
					raw = mutate(raw, in.next(), in.next())
				}
			}
			var frame []byte
			if snapshot {
				frame = w.Snapshot(raw)
			} else {
				frame = w.Delta(raw)
			}
			if op&0x07 == 0x01 { // the write fails: nothing delivered
				w.Commit(false)
				n.failed++
				continue
			}
			w.Commit(true)
			wire = truth
			if snapshot {
				group += 1 + uint64(op>>6&1)
				index = 0
			} else {
				index++
			}
			if op&0x07 == 0x02 && !snapshot { // lost on the way
				gapped = true
				continue
			}
			flipped := false
			if op&0x38 == 0x30 && len(frame) > 0 { // a compressed byte flipped
				frame = bytes.Clone(frame)
				frame[int(in.next())%len(frame)] ^= 1 << (op & 7)
				flipped = true
				n.flipped++
			}

			err := c.Apply(group, index, frame)
			checkApplied(t, c, consumer.Publisher, group, index, err)
			got := zvalue(nil)
			if err == nil {
				got = valueOf(c.Traffic())
			}
			switch {
			case snapshot && !flipped:
				if err != nil {
					t.Fatalf("snapshot %d.0 %s: %v", group, raw, err)
				}
				expect, known, gapped, mutated = maps.Clone(truth), true, false, false
				n.snapshots++
			case snapshot:
				// Unknown content: whatever it decoded to, if anything.
				expect, known, gapped = got, false, err != nil
			case gapped || expect == nil:
				if !errors.Is(err, consumer.ErrMissingSnapshot) {
					t.Fatalf("delta %d.%d after a lost or rejected frame: %v, want ErrMissingSnapshot", group, index, err)
				}
				n.missing++
				continue
			case flipped || !known:
				known = false
				if err != nil {
					gapped = true
				}
				expect = got
			default:
				want, ok, strict := oracleMerge(expect, raw)
				switch {
				case err == nil && !ok:
					t.Fatalf("delta %d.%d %q: the consumer accepts a patch the oracle rejects", group, index, raw)
				case err == nil && !uniqueAndShallow(raw):
					t.Fatalf("delta %d.%d %q: the consumer accepts duplicate keys or deep nesting", group, index, raw)
				case err != nil && strict:
					t.Fatalf("delta %d.%d %q: the consumer rejects a valid patch: %v", group, index, raw, err)
				case err != nil:
					gapped = true
					n.mutatedRejected++
					continue
				}
				expect = want
				mutated = mutated || op&0x38 == 0x38
				if op&0x38 == 0x38 {
					n.mutatedOK++
				} else {
					n.deltas++
				}
			}
			if err == nil && known && !maps.Equal(got, expect) {
				t.Fatalf("after frame %d.%d (%s):\n got %v\nwant %v", group, index, raw, got, expect)
			}
			if err == nil && known && !mutated && !maps.Equal(got, wire) {
				t.Fatalf("after frame %d.%d, unmutated: %v, the plain value is %v", group, index, got, wire)
			}
		}
	}
}

// The oracle target reaches what it is for on random input: snapshots,
// deltas that apply, mutated patches accepted and rejected, deltas
// refused in a broken group, flipped bytes and failed writes.
func TestCompressedOracleReachesDeltasAndMutations(t *testing.T) {
	var n zcounts
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		data := make([]byte, 400)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		zoracle(t, data, &n)
	}
	t.Logf("%+v", n)
	if n.snapshots == 0 || n.deltas == 0 || n.mutatedOK == 0 || n.mutatedRejected == 0 || n.missing == 0 || n.flipped == 0 || n.failed == 0 {
		t.Fatalf("the oracle target misses a path: %+v", n)
	}
}

// A check of the oracle itself, so the fuzz target's verdicts mean what
// they say: encoding/json's merge of a producer's patch gives the value
// the patch was made from.
func TestOraclePatchRoundTrips(t *testing.T) {
	old := zvalue{"a": {1, 2}, "b": {3}, "é/ü": {4}}
	cur := zvalue{"a": {1, 5}, "c": {0, 0, 0, 0, 0, 0, 0, 0, 9}, "é/ü": {4}}
	patch, ok := oraclePatch(old, cur)
	if !ok {
		t.Fatal("no patch for a change")
	}
	got, ok, strict := oracleMerge(old, patch)
	if !ok || !strict || !maps.Equal(got, cur) {
		t.Fatalf("merge of %s: %v (ok %v, strict %v), want %v", patch, got, ok, strict, cur)
	}
	if _, ok := oraclePatch(cur, cur); ok {
		t.Fatal("a patch for no change")
	}
	for _, bad := range []string{`[1]`, `{"a":1}`, `{"a":{"bytes":null}}`, `{"a":{"bytes":-1}}`, `{"a":{"bytes":1.5}}`} {
		if _, ok, _ := oracleMerge(old, []byte(bad)); ok {
			t.Errorf("the oracle accepts %s", bad)
		}
	}
	if _, _, strict := oracleMerge(old, mutate(patch, 0, 0)); strict {
		t.Errorf("the oracle holds duplicate keys strict: %s", mutate(patch, 0, 0))
	}
}

// FuzzCompressedTrackKeepsWithinLimits drives groups of compressed
// snapshots and patches, most of them sound DEFLATE of hostile JSON, at a
// Decoder with small limits, and checks after every frame what the track
// keeps: at most MaxEntries keys of at most MaxKeyLen bytes each, and a
// group applied no further than MaxGroupFrames frames. Every frame past
// that is refused with ErrGroupTooLong, and a group that starts over
// applies again.
func FuzzCompressedTrackKeepsWithinLimits(f *testing.F) {
	f.Add([]byte("{\"a\":{}}\x00{\"bb\":{\"bytes\":1}}\x00{\"ccccccccc\":{}}\x00{\"a\":null}\x00{}\x00{}\x00{}"))
	f.Add([]byte("!{\"a\":{}}\x00{\"b\":{}}\x00!{}\x00{\"c\":{},\"d\":{},\"e\":{},\"f\":{},\"g\":{},\"h\":{},\"i\":{},\"j\":{}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := consumer.Decoder{MaxFrameSize: 1 << 12, MaxEntries: 8, MaxKeyLen: 8, MaxGroupFrames: 4}
		c := consumer.NewCompressedTrack(consumer.Publisher, d)
		w := zframe.NewWriter(1 << 20)
		group, index := uint64(0), 0
		for i, piece := range bytes.Split(data, []byte{0}) {
			if i == 0 || len(piece) > 0 && piece[0] == '!' || w.Snapshotting() {
				piece = bytes.TrimPrefix(piece, []byte("!"))
				group, index = group+1, 0
			} else {
				index++
			}
			if len(piece) == 0 {
				piece = []byte("{}")
			}
			var frame []byte
			if index == 0 {
				frame = w.Snapshot(piece)
			} else {
				frame = w.Delta(piece)
			}
			w.Commit(true)
			err := c.Apply(group, index, frame)
			if index >= d.MaxGroupFrames && !errors.Is(err, consumer.ErrGroupTooLong) {
				t.Fatalf("frame %d.%d past MaxGroupFrames %d: %v, want ErrGroupTooLong", group, index, d.MaxGroupFrames, err)
			}
			if err != nil && !errors.Is(err, consumer.ErrInvalidFrame) {
				t.Fatalf("frame %d.%d: %v is not a frame error", group, index, err)
			}
			if _, at, ok := c.Current(); ok && at >= d.MaxGroupFrames {
				t.Fatalf("the track is current at frame %d of a group, past MaxGroupFrames %d", at, d.MaxGroupFrames)
			}
			v := c.Traffic()
			if len(v) > d.MaxEntries {
				t.Fatalf("frame %d.%d: %d keys kept, past MaxEntries %d", group, index, len(v), d.MaxEntries)
			}
			for k := range v {
				if len(k) > d.MaxKeyLen {
					t.Fatalf("frame %d.%d: a key of %d bytes kept, past MaxKeyLen %d", group, index, len(k), d.MaxKeyLen)
				}
			}
		}
	})
}
