package fuzz

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/moqstats/moqstats/internal/sse"
)

// oracleEvent is what the event-stream rules make of a stream, read whole.
type oracleEvent struct {
	id       string
	hasID    bool
	typ      string
	data     []byte
	hasData  bool
	tooLarge bool
	retry    time.Duration
}

// oracleSSE parses body by the rules the reader documents, the plain way:
// split into lines, every line held. A line of size bytes or more (its
// "\n" aside) that is not a data line is skipped, as the reader does with
// lines longer than its buffer; data past max+1 bytes (with the '\n' after
// each line) makes the event too large. It returns the complete events,
// and whether the body ended inside a line or an event.
func oracleSSE(body []byte, max, size int) (evs []oracleEvent, truncated bool) {
	var ev oracleEvent
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			return evs, true
		}
		raw := body[:i]
		body = body[i+1:]
		long := len(raw) >= size
		line := bytes.TrimSuffix(raw, []byte("\r"))
		if len(line) == 0 {
			if n := len(ev.data); ev.hasData && n > 0 && ev.data[n-1] == '\n' {
				ev.data = ev.data[:n-1]
			}
			evs = append(evs, ev)
			ev = oracleEvent{}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		if long && !(string(field) == "data" && bytes.HasPrefix(line, []byte("data:"))) {
			continue
		}
		switch string(field) {
		case "data":
			ev.hasData = true
			if !ev.tooLarge {
				ev.data = append(append(ev.data, value...), '\n')
				if len(ev.data) > max+1 {
					ev.tooLarge, ev.data = true, nil
				}
			}
		case "id":
			if len(value) <= sse.MaxIDLen && !bytes.ContainsRune(value, 0) {
				ev.id, ev.hasID = string(value), true
			}
		case "event":
			ev.typ = string(value)
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil {
				ev.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return evs, false
}

// FuzzSSEReader reads arbitrary streams with a small event limit and line
// buffer, so that long lines and events are the common case, and checks
// every event against oracleSSE and what the reader keeps against its
// limits: no event's data past the limit, its buffer within twice the
// limit, no id past MaxIDLen.
func FuzzSSEReader(f *testing.F) {
	f.Add([]byte("retry: 10\n\nid: 1.0\ndata: {\"a\":1}\n\n"), uint8(8))
	f.Add([]byte("data: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\ndata: b\n\n"), uint8(40))
	f.Add([]byte(": xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nid: 2\n\n"), uint8(4))
	f.Add([]byte("data: xxxxxxxxxxxxxxxx\r"), uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, m uint8) {
		const size = 16
		max := int(m)
		want, truncated := oracleSSE(body, max, size)
		r := sse.NewReaderSize(bytes.NewReader(body), max, size)
		for i := 0; ; i++ {
			ev, err := r.Next(func() {})
			if err != nil {
				if i != len(want) {
					t.Fatalf("error %v after %d events, want %d events", err, i, len(want))
				}
				if truncated != errors.Is(err, io.ErrUnexpectedEOF) || !truncated && err != io.EOF {
					t.Fatalf("error %v, want a truncated stream: %v", err, truncated)
				}
				return
			}
			if i >= len(want) {
				t.Fatalf("event %d %+v beyond the %d events of the stream", i, ev, len(want))
			}
			if len(ev.Data) > max || ev.TooLarge && ev.Data != nil || cap(ev.Data) > 2*(max+1)+64 || len(ev.ID) > sse.MaxIDLen {
				t.Fatalf("event %d keeps %d bytes of data (cap %d, too large %v) and an id of %d bytes; limits %d and %d",
					i, len(ev.Data), cap(ev.Data), ev.TooLarge, len(ev.ID), max, sse.MaxIDLen)
			}
			w := want[i]
			if ev.ID != w.id || ev.HasID != w.hasID || ev.Type != w.typ || ev.HasData != w.hasData ||
				ev.TooLarge != w.tooLarge || ev.Retry != w.retry || !bytes.Equal(ev.Data, w.data) {
				t.Fatalf("event %d:\n got %+v\nwant %+v", i, *ev, w)
			}
		}
	})
}
