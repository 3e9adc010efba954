package sse

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestReaderParsesEventsWithinTheLimit(t *testing.T) {
	in := ": comment\r\n" +
		"retry: 1500\n\n" +
		"id: 3.0\r\ndata: {\"a\":\r\ndata: 1}\n\n" +
		"event: end\ndata\n\n" +
		"id: bad\x00id\nevent: other\ndata:x\n\n" +
		"data: " + strings.Repeat("y", 100) + "\nid: 4.0\n\n" +
		"data: " + strings.Repeat("z", 40) + "\r\n\n" + // long, within the limit
		"id: " + strings.Repeat("i", MaxIDLen+1) + "\ndata: 1\n\n" +
		": " + strings.Repeat("c", 300) + "\ndata: 2\n\n" +
		"data: tail"
	r := NewReaderSize(strings.NewReader(in), 50, 16)
	type got struct {
		id, event, data string
		hasID, tooLarge bool
		retry           time.Duration
	}
	var evs []got
	for {
		ev, err := r.Next(func() {})
		if err != nil {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("final error %v, want unexpected EOF", err)
			}
			break
		}
		evs = append(evs, got{ev.ID, ev.Type, string(ev.Data), ev.HasID, ev.TooLarge, ev.Retry})
	}
	want := []got{
		{retry: 1500 * time.Millisecond},
		{id: "3.0", hasID: true, data: "{\"a\":\n1}"},
		{event: "end"},
		{event: "other", data: "x"},
		{id: "4.0", hasID: true, tooLarge: true},
		{data: strings.Repeat("z", 40)},
		{data: "1"},
		{data: "2"},
	}
	if fmt.Sprint(evs) != fmt.Sprint(want) {
		t.Fatalf("events\n %+v\nwant\n %+v", evs, want)
	}
}

// endless yields n bytes of a line that never ends, then EOF, without
// holding them.
type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	if e.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), e.n)
	for i := range k {
		p[i] = 'x'
	}
	e.n -= k
	return k, nil
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A line past the limit is never held whole, data line or not, and the
// error at the end names it: what the reader holds is bounded by the
// limit, not by what the server sends. Samples of the live heap are taken
// as the line streams in: a line other than data is held not at all, a
// data line up to the limit, and not past it.
func TestReaderSkipsAnEndlessLineWithoutBufferingIt(t *testing.T) {
	const limit, line = 8 << 20, 48 << 20
	for _, prefix := range []string{"data: ", ": ", "id: "} {
		t.Run(strings.TrimSpace(prefix), func(t *testing.T) {
			before := int64(liveHeap())
			var samples []int64
			body := io.MultiReader(strings.NewReader(prefix), &endless{n: line})
			r := NewReader(body, limit)
			chunks := 0
			_, err := r.Next(func() {
				if chunks++; chunks%32 == 0 { // every 2 MiB
					samples = append(samples, int64(liveHeap())-before)
				}
			})
			if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "without a line end") {
				t.Fatalf("error %v, want one naming a line without an end, wrapping io.ErrUnexpectedEOF", err)
			}
			if prefix == "data: " && !strings.Contains(err.Error(), "event limit") {
				t.Errorf("error %v, want it to name the event limit", err)
			}
			if len(samples) < line/(4<<20) {
				t.Fatalf("%d heap samples while a %d-byte line streamed in: alive was not called as bytes arrived", len(samples), line)
			}
			peak := slices.Max(samples)
			last := samples[len(samples)-1]
			switch {
			case peak > 3*limit:
				t.Fatalf("the live heap grew by up to %d bytes while the line streamed in, want at most %d (3 x the %d-byte limit)", peak, 3*limit, limit)
			case prefix != "data: " && peak > limit/2:
				t.Fatalf("the live heap grew by up to %d bytes for a line that is skipped, want at most %d", peak, limit/2)
			case last > limit/2:
				t.Fatalf("the live heap held %d bytes more at the end of the line, past the limit, want at most %d", last, limit/2)
			}
		})
	}
}

// A large event is delivered whole, and its buffer is released before
// the next one is read, so a stream does not keep its largest event.
func TestReaderReleasesALargeEventsBuffer(t *testing.T) {
	const size = 16 << 20
	big := "data: " + strings.Repeat("x", size) + "\n\n"
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(big + "data: small\n\n"))
		// The stream stays open: the reader waits for the third event.
		pw.Write([]byte(": ping\n"))
	}()
	defer pw.Close()
	r := NewReader(pr, 32<<20)
	ev, err := r.Next(func() {})
	if err != nil || len(ev.Data) != size {
		t.Fatalf("first event: %d bytes, %v; want %d bytes", len(ev.Data), err, size)
	}
	before := liveHeap()
	ev, err = r.Next(func() {})
	if err != nil || string(ev.Data) != "small" {
		t.Fatalf("second event %q, %v", ev.Data, err)
	}
	if after := liveHeap(); after+size/2 > before+uint64(MaxKeptData) {
		t.Fatalf("live heap %d bytes after a small event, %d after the 16 MiB one: the large buffer is still held", after, before)
	}
	runtime.KeepAlive(r)
}
