package fuzz

import (
	"bytes"
	stdflate "compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/moqstats/moqstats/zframe"
)

// The framing a compressed track's frames share, as the wire format
// states it: each frame is raw DEFLATE ending where a sync flush would,
// its trailing 00 00 FF FF cut; a reader puts the marker back, and to
// decode one frame on its own, ends the stream with an empty final
// stored block.
var (
	syncMarker = []byte{0x00, 0x00, 0xff, 0xff}
	finalBlock = []byte{0x01, 0x00, 0x00, 0xff, 0xff}
)

// errTrailing is the oracle's word for bytes after a frame's final block.
var errTrailing = errors.New("bytes after the final block")

// stdInflate is the oracle: compress/flate, an inflater independent of the
// one zframe uses, inflating frame against dict (the group's last 32 KiB
// of output) as the framing says, reading at most limit+1 bytes. tooLarge
// reports that the frame inflates past limit.
func stdInflate(frame, dict []byte, limit int) (out []byte, tooLarge bool, err error) {
	src := append(append(append([]byte(nil), frame...), syncMarker...), finalBlock...)
	in := bytes.NewReader(src) // an io.ByteReader: the inflater reads no further than it must
	r := stdflate.NewReaderDict(in, dict)
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, int64(limit)+1))
	switch {
	case err != nil:
		return nil, false, err
	case n > int64(limit):
		return nil, true, nil
	case in.Len() != 0:
		return nil, false, errTrailing
	}
	return buf.Bytes(), false, nil
}

// window returns the last 32 KiB of a group's output, all a DEFLATE
// back-reference can reach.
func window(history []byte) []byte {
	return history[max(0, len(history)-32<<10):]
}

// splitFrames cuts data into frames: lengths holds little-endian uint16s,
// one per frame but the last, which is what remains; bit 15 of one marks
// its frame a snapshot (the first frame always is).
func splitFrames(data, lengths []byte) (frames [][]byte, snapshot []bool) {
	for i := 0; i+1 < len(lengths) && len(data) > 0; i += 2 {
		v := binary.LittleEndian.Uint16(lengths[i:])
		n := min(int(v&0x7fff), len(data))
		frames = append(frames, data[:n])
		snapshot = append(snapshot, v&0x8000 != 0 || len(frames) == 1)
		data = data[n:]
	}
	frames = append(frames, data)
	snapshot = append(snapshot, len(frames) == 1)
	return frames, snapshot
}

// joinLengths is splitFrames' inverse: the lengths of all frames but the
// last, snapshots marked, and the frames joined.
func joinLengths(frames [][]byte, snapshot []bool) (data, lengths []byte) {
	for i, f := range frames {
		data = append(data, f...)
		if i < len(frames)-1 {
			if len(f) > 0x7fff {
				panic(fmt.Sprintf("BUG: a seed's frame %d has %d bytes, more than a length holds", i, len(f)))
			}
			v := uint16(len(f))
			if snapshot[i] {
				v |= 0x8000
			}
			lengths = binary.LittleEndian.AppendUint16(lengths, v)
		}
	}
	return data, lengths
}

// upstreamCap is the inflated size moq's decoders cap a frame at by
// default, 64 MiB: the zero Decoder's cap.
const upstreamCap = 64 << 20

// frameCap is the decoder's cap for a fuzz input, 64 bytes to 512 KiB, or
// 0 (the default) one time in 15, and the cap that stands for.
func frameCap(capLog byte) (setting, limit int) {
	if capLog%15 == 14 {
		return 0, upstreamCap
	}
	return 1 << (6 + capLog%15), 1 << (6 + capLog%15)
}

// bits writes a raw DEFLATE bit stream by hand, for inputs no compressor
// writes: values LSB first, Huffman codes MSB first (RFC 1951 3.1.1).
type bits struct {
	out []byte
	n   uint // bits used in the last byte
}

func (b *bits) put(v uint32, n uint) {
	for i := range n {
		if b.n == 0 {
			b.out = append(b.out, 0)
		}
		b.out[len(b.out)-1] |= byte(v>>i&1) << b.n
		b.n = (b.n + 1) % 8
	}
}

func (b *bits) code(c uint32, n uint) {
	for i := n; i > 0; i-- {
		b.put(c>>(i-1)&1, 1)
	}
}

// fixedLit writes literal/length symbol s with the fixed Huffman code.
func (b *bits) fixedLit(s uint32) {
	switch {
	case s < 144:
		b.code(0x30+s, 8)
	case s < 256:
		b.code(0x190+s-144, 9)
	case s < 280:
		b.code(s-256, 7)
	default:
		b.code(0xc0+s-280, 8)
	}
}

// fixedBlock starts a block with fixed Huffman codes.
func (b *bits) fixedBlock(final bool) {
	f := uint32(0)
	if final {
		f = 1
	}
	b.put(f, 1)
	b.put(1, 2)
}

// farMatch writes a fixed block: the literal 'a', then a match of 3 bytes
// at distance 24577 + extra (extra < 8192: distance code 29, up to the
// window's 32768), and the start of an empty stored block, whose length
// the cut sync marker holds.
func farMatch(extra uint32) []byte {
	var b bits
	b.fixedBlock(false)
	b.fixedLit('a')
	b.fixedLit(257)  // length 3
	b.code(29, 5)    // distance code 29
	b.put(extra, 13) // its extra bits
	b.fixedLit(256)  // end of block
	b.put(0, 3)      // a stored block, padded to the byte
	b.n = 0
	return b.out
}

// zframeSeeds are hostile frames and groups for FuzzZframeDecoder, with
// the cap to decode them under.
func zframeSeeds() []struct {
	name   string
	frames [][]byte
	snap   []bool
	capLog byte
} {
	type seed = struct {
		name   string
		frames [][]byte
		snap   []bool
		capLog byte
	}
	valid := func(ratio int, texts ...string) ([][]byte, []bool) {
		w := zframe.NewWriter(ratio)
		var frames [][]byte
		var snap []bool
		for _, s := range texts {
			if w.Snapshotting() {
				frames = append(frames, bytes.Clone(w.Snapshot([]byte(s))))
				snap = append(snap, true)
			} else {
				frames = append(frames, bytes.Clone(w.Delta([]byte(s))))
				snap = append(snap, false)
			}
			w.Commit(true)
		}
		return frames, snap
	}
	group, groupSnap := valid(0, `{"a/b":{"bytes":1,"frames":1}}`, `{"a/b":{"bytes":2}}`, `{"c":{"sessions":1,"sessions_closed":0}}`, `{"a/b":null}`)
	rolls, rollsSnap := valid(1, `{"x":1}`, `{"x":2}`, `{"x":3}`, `{"x":4}`, `{"x":5}`)
	var big []byte
	r := rand.New(rand.NewPCG(1, 2))
	for len(big) < 48<<10 {
		big = fmt.Appendf(big, `"t%d/live/%d":{"bytes":%d},`, r.IntN(30), r.IntN(900), r.Uint64N(1<<40))
	}
	sliding, slidingSnap := valid(0, string(big[:30<<10]), string(big[20<<10:]), string(big[:1000]))
	bomb, _ := valid(0, strings.Repeat("0", 300<<10))

	var closed bytes.Buffer
	fw, _ := stdflate.NewWriter(&closed, 6)
	fw.Write([]byte(`{"a":1}`))
	fw.Close() // a final block: the stream ends inside the frame

	var reserved bits
	reserved.put(0, 1)
	reserved.put(3, 2) // BTYPE 11, reserved

	var badLit bits
	badLit.fixedBlock(false)
	badLit.fixedLit(286) // a length code RFC 1951 forbids

	var dynamic bits
	dynamic.put(0, 1)
	dynamic.put(2, 2)  // dynamic Huffman codes
	dynamic.put(29, 5) // HLIT: 286 literal/length codes
	dynamic.put(29, 5) // HDIST: 30 distance codes
	dynamic.put(15, 4) // HCLEN: all 19 code length codes
	for range 19 {
		dynamic.put(7, 3) // every code length code 7 bits long: oversubscribed
	}

	var stored bits
	stored.put(0, 3) // a stored block
	stored.out = append(stored.out, 0xff, 0xff, 0x00, 0x00)
	stored.out = append(stored.out, "only a little of 65535 bytes"...)

	mismatch := []byte{0x00, 0x10, 0x00, 0x10, 0x00} // LEN and NLEN not complements

	return []seed{
		{"a group", group, groupSnap, 10},
		{"groups rolling", rolls, rollsSnap, 4},
		{"a window sliding past 32 KiB", sliding, slidingSnap, 13},
		{"a zip bomb under a 64 KiB cap", bomb, []bool{true}, 10},
		{"the zip bomb as a delta", [][]byte{group[0], bomb[0]}, []bool{true, false}, 10},
		{"the default cap", group, groupSnap, 14},
		{"a truncated snapshot", [][]byte{group[0][:len(group[0])/2], group[1]}, []bool{true, false}, 10},
		{"a delta without its snapshot", group[1:], []bool{true, false, false}, 10},
		{"a final block in the middle", [][]byte{closed.Bytes(), group[1]}, []bool{true, false}, 10},
		{"a final block then a snapshot", [][]byte{append(bytes.Clone(closed.Bytes()), group[0]...), group[0]}, []bool{true, true}, 10},
		{"a reference beyond the window", [][]byte{farMatch(0)}, []bool{true}, 10},
		{"a reference beyond a snapshot's output", [][]byte{group[0], farMatch(8191)}, []bool{true, false}, 10},
		{"a reference into a 32 KiB window", [][]byte{sliding[0], farMatch(0)}, []bool{true, false}, 13},
		{"a reserved block type", [][]byte{reserved.out}, []bool{true}, 10},
		{"a forbidden length code", [][]byte{badLit.out}, []bool{true}, 10},
		{"huge dynamic lengths", [][]byte{dynamic.out}, []bool{true}, 10},
		{"a stored block past its frame", [][]byte{stored.out}, []bool{true}, 10},
		{"a stored block with a bad length", [][]byte{mismatch}, []bool{true}, 10},
		{"garbage", [][]byte{[]byte("not deflate at all"), {0xff, 0xff, 0xff}}, []bool{true, false}, 10},
		{"an empty frame", [][]byte{{}}, []bool{true}, 10},
	}
}

// FuzzZframeDecoder feeds zframe.Decoder hostile frames, snapshots and
// deltas in any order, under caps from 64 bytes to 512 KiB and the zero
// Decoder's, which must be upstream's 64 MiB, and checks it
// against compress/flate: it never panics; it decodes exactly the frames
// compress/flate inflates within the cap, to the same bytes, never more
// than the cap; every other frame gets an error that starts with
// "zframe: ", is ErrFrameTooLarge exactly when the frame inflates past the
// cap, and breaks the group: its deltas get ErrMissingSnapshot until the
// next snapshot.
func FuzzZframeDecoder(f *testing.F) {
	for _, s := range zframeSeeds() {
		data, lengths := joinLengths(s.frames, s.snap)
		f.Add(data, lengths, s.capLog)
	}
	f.Fuzz(func(t *testing.T, data, lengths []byte, capLog byte) {
		frames, snapshot := splitFrames(data, lengths)
		setting, limit := frameCap(capLog)
		d := zframe.Decoder{MaxFrameSize: setting}
		var history []byte
		broken := true // no snapshot yet
		for i, frame := range frames {
			var got []byte
			var err error
			if snapshot[i] {
				got, err = d.Snapshot(frame)
				history, broken = history[:0], false
			} else {
				got, err = d.Delta(frame)
			}
			where := fmt.Sprintf("frame %d (snapshot %v, %d bytes, cap %d)", i, snapshot[i], len(frame), limit)
			if broken {
				if !errors.Is(err, zframe.ErrMissingSnapshot) || err.Error() != zframe.ErrMissingSnapshot.Error() {
					t.Fatalf("%s: a delta in a broken group: %v, want ErrMissingSnapshot", where, err)
				}
				continue
			}
			want, tooLarge, wantErr := stdInflate(frame, window(history), limit)
			if err != nil {
				msg := err.Error()
				if !strings.HasPrefix(msg, "zframe: ") || strings.Count(msg, "zframe: ") != 1 {
					t.Fatalf("%s: error %q: want one \"zframe: \" prefix", where, msg)
				}
				if errors.Is(err, zframe.ErrFrameTooLarge) != tooLarge {
					t.Fatalf("%s: error %v; compress/flate inflates past the cap: %v", where, err, tooLarge)
				}
				if !tooLarge && wantErr == nil {
					t.Fatalf("%s: error %v; compress/flate inflates it to %d bytes", where, err, len(want))
				}
				broken = true
				continue
			}
			switch {
			case len(got) > limit:
				t.Fatalf("%s: %d bytes out, over the cap", where, len(got))
			case tooLarge:
				t.Fatalf("%s: %d bytes out; compress/flate inflates it past the cap", where, len(got))
			case wantErr != nil:
				t.Fatalf("%s: %d bytes out; compress/flate: %v", where, len(got), wantErr)
			case !bytes.Equal(got, want):
				t.Fatalf("%s: %d bytes out, compress/flate %d: they differ", where, len(got), len(want))
			}
			history = append(history, got...)
			if len(history) > 1<<20 {
				history = append(history[:0], window(history)...)
			}
		}
	})
}

// FuzzZframeRoundTrip writes frames cut from the fuzzer's data with
// zframe.Writer, at delta budgets from 1 to 9 and the default, with some
// writes failing (never delivered), and checks that a Decoder following
// the delivered frames, with a cap of exactly the largest frame, decodes
// each to exactly what was written, that every failed write is followed
// by a snapshot, and that no group passes MaxGroupFrames.
//
// Frame i takes 1 + 64*(plan[i]&0x3f) bytes, 32 times that when bit 6 is
// set, from data read round and round (so a short input can make frames
// past the 32 KiB window); bit 7 fails its write.
func FuzzZframeRoundTrip(f *testing.F) {
	f.Add([]byte(`{}{"a":{"bytes":1}}{"a":{"bytes":2}}{"a":null}`), []byte{0, 0, 0x80, 0, 1}, byte(0))
	f.Add([]byte(`{"t1/live":{"bytes":18446744073709551615,"frames":12}}`), []byte{0x7f, 0x7f, 0x10, 0x90, 0x7f, 0x7f, 0x41, 0x7f}, byte(1))
	f.Add([]byte("\x00\xff\x10 incompressible? \x9c\x03"), bytes.Repeat([]byte{0x05}, 300), byte(2))
	f.Add([]byte("x"), []byte{1, 1, 1, 1, 0x81, 1, 1, 1, 1, 1}, byte(9))
	f.Fuzz(func(t *testing.T, data, plan []byte, ratio byte) {
		if len(data) == 0 || len(plan) > 1000 {
			return
		}
		type frame struct {
			in     []byte
			failed bool
		}
		var frames []frame
		largest, at := 0, 0
		for _, b := range plan {
			n := 1 + 64*int(b&0x3f)
			if b&0x40 != 0 {
				n *= 32
			}
			in := make([]byte, n)
			for i := range in {
				in[i] = data[at%len(data)]
				at++
			}
			frames = append(frames, frame{in, b&0x80 != 0})
			largest = max(largest, n)
		}
		w := zframe.NewWriter(int(ratio % 10))
		d := zframe.Decoder{MaxFrameSize: largest}
		index, resync := 0, false
		for i, fr := range frames {
			snap := w.Snapshotting()
			if resync && !snap {
				t.Fatalf("frame %d: a delta after a failed write", i)
			}
			var wire []byte
			if snap {
				wire = w.Snapshot(fr.in)
			} else {
				wire = w.Delta(fr.in)
			}
			w.Commit(!fr.failed)
			if fr.failed {
				resync = true
				continue
			}
			var got []byte
			var err error
			if snap {
				got, err = d.Snapshot(wire)
				index, resync = 0, false
			} else {
				got, err = d.Delta(wire)
				index++
			}
			if err != nil || !bytes.Equal(got, fr.in) {
				t.Fatalf("frame %d (index %d in its group): decoded %d bytes, %v; want the %d written", i, index, len(got), err, len(fr.in))
			}
			if index >= zframe.MaxGroupFrames {
				t.Fatalf("frame %d: index %d in its group, past the cap of %d", i, index, zframe.MaxGroupFrames)
			}
		}
	})
}

// bomb returns one frame inflating to n bytes: '0', then matches of 258
// bytes at distance 1, 13 bits each with the fixed codes. The first match
// ends on a byte boundary, and 8 matches take 13 bytes: those repeat.
func bomb(n int) []byte {
	var b bits
	b.fixedBlock(false)
	b.fixedLit('0')
	n--
	match := func() {
		b.fixedLit(285) // length 258
		b.code(0, 5)    // distance 1
		n -= 258
	}
	if n >= 258 {
		match()
	}
	if b.n == 0 && n >= 8*258 {
		start := len(b.out)
		for range 8 {
			match()
		}
		eight := b.out[start:]
		reps := n / (8 * 258)
		b.out = append(b.out, bytes.Repeat(eight, reps)...)
		n -= reps * 8 * 258
	}
	for n >= 258 {
		match()
	}
	switch {
	case n >= 3:
		lengthCode(&b, n)
		b.code(0, 5)
	case n > 0:
		for range n {
			b.fixedLit('0')
		}
	}
	b.fixedLit(256)
	b.put(0, 3) // a stored block, padded to the byte
	b.n = 0
	return b.out
}

// lengthCode writes match length l (3 to 257) with its fixed code and
// extra bits (RFC 1951 3.2.5).
func lengthCode(b *bits, l int) {
	base := []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227}
	extra := []uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5}
	i := len(base) - 1
	for base[i] > l {
		i--
	}
	b.fixedLit(uint32(257 + i))
	b.put(uint32(l-base[i]), extra[i])
}

// The zero Decoder caps a frame at upstream's 64 MiB: a frame of exactly
// that decodes, a frame a byte longer (a 420 KB zip bomb) gets
// ErrFrameTooLarge. The bombs are checked against compress/flate at small
// sizes. (Not fuzz seeds: the fuzzer would spend its time minimizing
// them.)
func TestZframeDecoderCapsFramesAt64MiBByDefault(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 258, 259, 260, 261, 8*258 + 1, 9*258 + 1, 10*258 + 2, 100000} {
		want := bytes.Repeat([]byte("0"), n)
		if got, _, err := stdInflate(bomb(n), nil, n); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("bomb(%d) inflates with compress/flate to %d bytes, %v", n, len(got), err)
		}
	}
	if testing.Short() {
		t.Skip("inflates 128 MiB")
	}
	var d zframe.Decoder
	if got, err := d.Snapshot(bomb(upstreamCap)); err != nil || len(got) != upstreamCap {
		t.Fatalf("a frame of 64 MiB: %d bytes out, %v; want them all", len(got), err)
	}
	frame := bomb(upstreamCap + 1)
	if _, err := d.Snapshot(frame); !errors.Is(err, zframe.ErrFrameTooLarge) {
		t.Fatalf("a frame of 64 MiB + 1 byte, from %d: %v, want ErrFrameTooLarge", len(frame), err)
	}
}
