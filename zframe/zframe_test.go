package zframe

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/moqstats/moqstats/internal/race"
)

// jsonish returns a frame-like JSON text of about n bytes.
func jsonish(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"c-%d/live/%d":{"bytes":%d,"frames":%d}`, r.IntN(50), r.IntN(1000), r.Uint64N(1<<40), r.IntN(1<<20))
	}
	b.WriteByte('}')
	return b.Bytes()
}

// stdInflate inflates a group's frames with compress/flate, an independent
// inflater, over the whole stream: the frames with their sync markers put
// back, in order. It returns the concatenated output.
func stdInflate(t *testing.T, frames [][]byte) []byte {
	t.Helper()
	var stream []byte
	for _, f := range frames {
		stream = append(append(stream, f...), syncMarker...)
	}
	out, err := io.ReadAll(stdflate.NewReader(bytes.NewReader(stream)))
	if !errors.Is(err, io.ErrUnexpectedEOF) { // a sync-flushed stream never ends
		t.Fatalf("compress/flate over the group: %v", err)
	}
	return out
}

// Every frame of every group decodes to what was written, with the
// Decoder and, over the whole group, with compress/flate; frames are
// sync-flushed with the marker cut; groups start on snapshots.
func TestGroupsRoundTripAndAnyInflaterReadsThem(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	w := NewWriter(2)
	var d Decoder
	var group [][]byte
	var want []byte
	groups := 0
	for i := range 300 {
		var in, wire []byte
		snap := w.Snapshotting()
		if snap {
			if group != nil {
				if got := stdInflate(t, group); !bytes.Equal(got, want) {
					t.Fatalf("group %d through compress/flate differs from what was written", groups)
				}
			}
			groups++
			in = jsonish(r, 2000+r.IntN(30000))
			wire = w.Snapshot(in)
			group, want = nil, nil
		} else {
			in = jsonish(r, 50+r.IntN(3000))
			wire = w.Delta(in)
		}
		group = append(group, bytes.Clone(wire))
		want = append(want, in...)
		var got []byte
		var err error
		if snap {
			got, err = d.Snapshot(wire)
		} else {
			got, err = d.Delta(wire)
		}
		if err != nil || !bytes.Equal(got, in) {
			t.Fatalf("frame %d (snapshot %v): decoded %d bytes, err %v; want the %d written", i, snap, len(got), err, len(in))
		}
		w.Commit(true)
	}
	if groups < 3 {
		t.Fatalf("%d groups in 300 frames at ratio 2: the budget never rolled a group", groups)
	}
}

// A group rolls once the deltas already written pass ratio times the
// snapshot, so it overshoots by at most one delta; and at MaxGroupFrames.
func TestGroupRollsOnTheDeltaBudgetAndTheFrameCap(t *testing.T) {
	w := NewWriter(1)
	snap := w.Snapshot(bytes.Repeat([]byte(`{"a":1}`), 100))
	w.Commit(true)
	n, total, last := 0, 0, 0
	for !w.Snapshotting() {
		last = len(w.Delta([]byte(fmt.Sprintf(`{"k%d":%d}`, n, n*7919))))
		total += last
		w.Commit(true)
		n++
	}
	if total <= len(snap) || total-last > len(snap) {
		t.Fatalf("rolled after %d deltas, %d bytes (the last %d), with a %d-byte snapshot: want the first delta past the budget to be the last", n, total, last, len(snap))
	}
	w = NewWriter(1 << 30)
	w.Snapshot([]byte(`{}`))
	w.Commit(true)
	for w.Frames() < MaxGroupFrames {
		if w.Snapshotting() {
			t.Fatalf("snapshot due at %d frames, before the cap", w.Frames())
		}
		w.Delta([]byte(`{"x":1}`))
		w.Commit(true)
	}
	if !w.Snapshotting() {
		t.Fatalf("no snapshot due with %d frames in the group", w.Frames())
	}
}

// A frame that did not reach the wire forces a snapshot, even with budget
// left: the window cannot be rolled back.
func TestFailedWriteResyncs(t *testing.T) {
	w := NewWriter(8)
	if !w.Resyncing() || !w.Snapshotting() {
		t.Fatal("a new Writer must start with a snapshot")
	}
	w.Snapshot([]byte(`{"a":1}`))
	w.Commit(true)
	w.Delta([]byte(`{"a":2}`))
	w.Commit(false)
	if !w.Resyncing() || !w.Snapshotting() {
		t.Fatal("after a failed delta the next frame must be a snapshot")
	}
	var d Decoder
	got, err := d.Snapshot(w.Snapshot([]byte(`{"a":2}`)))
	if err != nil || string(got) != `{"a":2}` {
		t.Fatalf("resync snapshot decoded to %q, %v", got, err)
	}
}

func TestDecoderRejectsBadInput(t *testing.T) {
	var d Decoder
	if _, err := d.Delta([]byte{0x4a, 0x04, 0x00}); !errors.Is(err, ErrMissingSnapshot) {
		t.Errorf("delta before a snapshot: %v, want ErrMissingSnapshot", err)
	}
	if _, err := d.Snapshot([]byte("not deflate at all")); err == nil {
		t.Errorf("garbage decoded without an error")
	}
	if _, err := d.Delta(NewWriter(0).Snapshot([]byte(`{}`))); !errors.Is(err, ErrMissingSnapshot) {
		t.Errorf("delta after a failed snapshot: %v, want ErrMissingSnapshot", err)
	}
	big := NewWriter(0).Snapshot([]byte(strings.Repeat("x", 5000)))
	small := Decoder{MaxFrameSize: 4096}
	if _, err := small.Snapshot(big); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("5000 bytes under a 4096-byte cap: %v, want ErrFrameTooLarge", err)
	}
	// A frame that finishes the stream itself, then has more bytes.
	var b bytes.Buffer
	fw, _ := stdflate.NewWriter(&b, 6)
	fw.Write([]byte(`{}`))
	fw.Close()
	if _, err := d.Snapshot(append(b.Bytes(), 0x00)); err == nil {
		t.Errorf("a frame with a final block and trailing bytes decoded without an error")
	}
}

func TestWriterAllocatesNothingPerFrameOnceWarm(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates")
	}
	w := NewWriter(0)
	frame := jsonish(rand.New(rand.NewPCG(3, 4)), 20000)
	patch := []byte(`{"c-1/live/2":{"bytes":42}}`)
	w.Snapshot(frame)
	w.Commit(true)
	w.Delta(patch)
	w.Commit(true)
	if n := testing.AllocsPerRun(20, func() {
		w.Snapshot(frame)
		w.Commit(true)
		w.Delta(patch)
		w.Commit(true)
	}); n > 0 {
		t.Fatalf("%v allocations per snapshot and delta, want 0", n)
	}
}
