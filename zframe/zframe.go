// Package zframe writes and reads the frames of a compressed stats track
// (a ".json.z" sibling), in the form moq-net's stats publish today: groups
// of frames, frame 0 of each a full snapshot and the later ones merge
// patches, all of one group compressed as one raw DEFLATE stream.
//
// # Framing
//
// Each group is one raw DEFLATE stream (RFC 1951: no zlib or gzip header
// or trailer) at level 6 with a fresh 32 KiB window, shared by all the
// group's frames, so a delta can refer back to the snapshot. Each frame's
// bytes are pushed with a sync flush, never a full one, and the four bytes
// every sync flush ends with (00 00 FF FF, an empty stored block) are cut
// from the frame on the wire; the stream is never finished. A frame has no
// header of its own: the transport's frame boundaries delimit them.
//
// To decode frame k of a group a reader needs frames 0..k-1 of the same
// group first. Decoder keeps the last 32 KiB of output, which is all a
// DEFLATE back-reference can reach, and inflates each frame on its own
// with that as its dictionary, after putting back the cut marker and an
// empty final block: so decoding costs in proportion to the frame, not to
// the group.
//
// # Groups
//
// Writer decides when a group ends, as moq-json's encoder does: a new
// group (a snapshot) once the deltas already written in the group add up
// to more than Ratio times the compressed snapshot, or the group holds
// MaxGroupFrames frames; the delta that first passes the budget still goes
// in, so a group overshoots it by at most one delta. A frame that did not
// reach the wire leaves the stream ahead of every reader, and a DEFLATE
// window cannot be rolled back: the next frame is a snapshot in a new
// group (a resync), even if the value did not change.
//
// The compressor is github.com/klauspost/compress/flate, chosen on
// measurements: at level 6 it compresses stats frames about 3.7 times
// faster than compress/flate, to within a few percent of its size (see
// BENCHMARKS.md). Its output is standard DEFLATE: any inflater reads it.
package zframe

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/flate"
)

// Level is the DEFLATE compression level of every group.
const Level = 6

// MaxGroupFrames is the most frames a group holds: a snapshot and 255
// deltas. Well below a relay's per-group limits, so a late joiner can
// always still read frame 0.
const MaxGroupFrames = 256

// DefaultRatio is the delta budget of a group, in compressed snapshots.
const DefaultRatio = 8

// DefaultMaxFrameSize caps the inflated size of one frame in a Decoder.
const DefaultMaxFrameSize = 64 << 20

// syncMarker ends every sync flush; it is cut from frames on the wire.
var syncMarker = []byte{0x00, 0x00, 0xff, 0xff}

// Writer encodes the frames of one compressed track. The zero Writer is
// not usable: make one with NewWriter. A Writer is owned by one goroutine.
//
// A tick goes: Snapshotting tells whether the next frame must start a
// group; the caller gets the frame from Snapshot or Delta, writes it (a
// snapshot as a new group, a delta appended to the group), and reports the
// outcome with Commit.
type Writer struct {
	ratio int
	fw    *flate.Writer
	out   bytes.Buffer

	// Of the current group: frames on the wire (0: none, or resyncing),
	// the compressed size of its snapshot and of its deltas so far.
	frames, snapshot, deltas int
	// pending is the size of the frame handed out and not yet committed;
	// isSnapshot tells which kind it was.
	pending    int
	isSnapshot bool
}

// NewWriter returns a Writer whose groups end once their deltas pass
// ratio times their snapshot (ratio <= 0 means DefaultRatio).
func NewWriter(ratio int) *Writer {
	if ratio <= 0 {
		ratio = DefaultRatio
	}
	fw, err := flate.NewWriter(io.Discard, Level)
	if err != nil {
		panic("BUG: zframe: level " + fmt.Sprint(Level) + ": " + err.Error())
	}
	return &Writer{ratio: ratio, fw: fw}
}

// Snapshotting reports whether the next frame must be a snapshot starting
// a new group: there is no group on the wire (the first frame, or a resync
// after a failed write), the group is full, or its deltas passed the
// budget.
func (w *Writer) Snapshotting() bool {
	return w.frames == 0 || w.frames >= MaxGroupFrames || w.deltas > w.ratio*w.snapshot
}

// Resyncing reports whether no group is on the wire: the next snapshot is
// due even if the value did not change.
func (w *Writer) Resyncing() bool { return w.frames == 0 }

// Snapshot compresses frame as frame 0 of a new group, with a fresh
// window, and returns the bytes to write. They are valid until the next
// call of Snapshot or Delta.
func (w *Writer) Snapshot(frame []byte) []byte {
	w.out.Reset()
	w.fw.Reset(&w.out)
	w.isSnapshot = true
	return w.flush(frame)
}

// Delta compresses patch as the next frame of the current group and
// returns the bytes to append to it. Call it only when Snapshotting
// reports false.
func (w *Writer) Delta(patch []byte) []byte {
	if w.Snapshotting() {
		panic("BUG: zframe: Delta with a snapshot due")
	}
	w.out.Reset()
	w.isSnapshot = false
	return w.flush(patch)
}

func (w *Writer) flush(p []byte) []byte {
	if len(p) == 0 {
		panic("BUG: zframe: an empty frame")
	}
	if _, err := w.fw.Write(p); err != nil {
		panic("BUG: zframe: writing to a buffer: " + err.Error())
	}
	if err := w.fw.Flush(); err != nil {
		panic("BUG: zframe: flushing to a buffer: " + err.Error())
	}
	b := w.out.Bytes()
	if !bytes.HasSuffix(b, syncMarker) {
		panic(fmt.Sprintf("BUG: zframe: a sync flush ended in %x, not 0000ffff", b[max(0, len(b)-4):]))
	}
	b = b[:len(b)-len(syncMarker)]
	w.pending = len(b)
	return b
}

// Commit records whether the frame last returned reached the wire. One
// that did not leaves the stream ahead of every reader: the next frame is
// a snapshot.
func (w *Writer) Commit(ok bool) {
	switch {
	case !ok:
		w.frames = 0
	case w.isSnapshot:
		w.frames, w.snapshot, w.deltas = 1, w.pending, 0
	default:
		w.frames++
		w.deltas += w.pending
	}
	w.pending = 0
}

// Frames returns how many frames the current group has on the wire.
func (w *Writer) Frames() int { return w.frames }

// ErrMissingSnapshot is returned by Decoder.Delta before any snapshot, or
// after a frame that failed to decode.
var ErrMissingSnapshot = errors.New("zframe: a delta before its group's snapshot")

// ErrFrameTooLarge is returned for a frame that inflates past the
// decoder's MaxFrameSize.
var ErrFrameTooLarge = errors.New("zframe: inflated frame too large")

// Decoder inflates the frames of one compressed track, group by group.
// The zero Decoder is ready to use, with DefaultMaxFrameSize. A Decoder is
// owned by one goroutine.
type Decoder struct {
	// MaxFrameSize caps one frame's inflated size (0: DefaultMaxFrameSize).
	MaxFrameSize int

	window []byte // the group's last 32 KiB of output
	ok     bool   // a snapshot started the group and every frame decoded
	in     bytes.Reader
	src    []byte
	out    bytes.Buffer
}

// windowSize is DEFLATE's: how far back a reference can reach.
const windowSize = 32 << 10

// finalBlock is an empty stored block with BFINAL set: appended after the
// restored sync marker, it ends the stream where the frame ends.
var finalBlock = []byte{0x01, 0x00, 0x00, 0xff, 0xff}

// Snapshot inflates data, frame 0 of a new group, and returns its JSON.
// The result is valid until the next call.
func (d *Decoder) Snapshot(data []byte) ([]byte, error) {
	d.window = d.window[:0]
	d.ok = true
	return d.inflate(data)
}

// Delta inflates data, the next frame of the current group, and returns
// its JSON. It fails with ErrMissingSnapshot when the group's snapshot
// was not decoded.
func (d *Decoder) Delta(data []byte) ([]byte, error) {
	if !d.ok {
		return nil, ErrMissingSnapshot
	}
	return d.inflate(data)
}

// ErrEmptyFrame is returned for a frame with no bytes, which no writer
// sends (a frame always holds at least a JSON object).
var ErrEmptyFrame = errors.New("zframe: an empty frame")

func (d *Decoder) inflate(data []byte) ([]byte, error) {
	d.ok = false // until this frame decodes: a failed frame breaks the group
	if len(data) == 0 {
		return nil, ErrEmptyFrame
	}
	max := d.MaxFrameSize
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	d.src = append(append(append(d.src[:0], data...), syncMarker...), finalBlock...)
	d.in.Reset(d.src)
	r := flate.NewReaderDict(&d.in, d.window)
	defer r.Close()
	d.out.Reset()
	n, err := d.out.ReadFrom(io.LimitReader(r, int64(max)+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("zframe: inflating: %w", err)
	case n > int64(max):
		return nil, fmt.Errorf("%w: over %d bytes", ErrFrameTooLarge, max)
	case d.in.Len() != 0:
		return nil, fmt.Errorf("zframe: inflating: %d bytes after the end of the frame's blocks", d.in.Len())
	}
	out := d.out.Bytes()
	if len(out) >= windowSize {
		d.window = append(d.window[:0], out[len(out)-windowSize:]...)
	} else {
		d.window = append(d.window, out...)
		if len(d.window) > windowSize {
			d.window = append(d.window[:0], d.window[len(d.window)-windowSize:]...)
		}
	}
	d.ok = true
	return out, nil
}
