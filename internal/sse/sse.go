// Package sse reads a text/event-stream body (Server-Sent Events) from a
// server that may be hostile, in memory bounded by its limits.
//
// # Bounds
//
// A Reader holds its line buffer (BufferSize), the data of the event being
// read, at most MaxData bytes however long the event or its lines are,
// and between events a data buffer of at most MaxKeptData bytes. A line
// longer than the buffer is never held whole: a data line's value is
// appended to the event piece by piece while the event stays within
// MaxData, and past that the event is marked TooLarge, its data dropped
// and the rest of it read and discarded; any other long line (a comment,
// an id, an unknown field) is discarded as it is read. An id longer than
// MaxIDLen is ignored. So what a stream costs does not depend on what the
// server sends, only on the limits.
package sse

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"time"
)

const (
	// BufferSize is the Reader's line buffer: lines that fit are parsed
	// in place.
	BufferSize = 64 << 10
	// MaxKeptData is the largest data buffer a Reader keeps between
	// events: a larger one, made for a large event, is released before
	// the next event is read, so a stream does not hold its largest
	// event for as long as it lives.
	MaxKeptData = 1 << 20
	// MaxIDLen is the longest event id kept; the ids of stats streams
	// ("G.F") take at most 41 bytes.
	MaxIDLen = 1 << 10
)

// Event is one event. Data holds the data lines joined by '\n'.
type Event struct {
	ID       string
	HasID    bool // an id field within MaxIDLen came (ID may be "")
	Type     string
	Data     []byte
	HasData  bool // a data field came (Data may be empty)
	TooLarge bool // the data went over MaxData and was dropped
	Retry    time.Duration
}

// Reader reads events. It is owned by one goroutine.
type Reader struct {
	r   *bufio.Reader
	max int
	ev  Event
}

// NewReader returns a Reader of r that keeps at most maxData bytes of an
// event's data.
func NewReader(r io.Reader, maxData int) *Reader {
	return NewReaderSize(r, maxData, BufferSize)
}

// NewReaderSize is NewReader with a line buffer of size bytes (at least
// 16) instead of BufferSize: lines of size bytes or more are long.
func NewReaderSize(r io.Reader, maxData, size int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, size), max: maxData}
}

// Next returns the next event, calling alive whenever bytes arrive (after
// every line, and every buffer of a long one). The event, and its Data,
// are valid until the next call. A comment or a bare retry: field ends
// as an event with nothing set but Retry: the caller skips it.
//
// Errors are the body's, except when it ends inside a line or an event:
// then an error wrapping io.ErrUnexpectedEOF says how long the line was.
func (er *Reader) Next(alive func()) (*Event, error) {
	data := er.ev.Data[:0]
	if cap(data) > MaxKeptData {
		data = nil
	}
	er.ev = Event{Data: data}
	ev := &er.ev
	for {
		line, long, err := er.line(ev, alive)
		if err != nil {
			return nil, err
		}
		alive()
		if long {
			continue // a data line appended, or a line skipped
		}
		if len(line) == 0 {
			if n := len(ev.Data); ev.HasData && n > 0 && ev.Data[n-1] == '\n' {
				ev.Data = ev.Data[:n-1]
			}
			return ev, nil
		}
		if line[0] == ':' {
			continue // comment
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			ev.HasData = true
			er.appendData(ev, value)
			er.appendData(ev, []byte{'\n'})
		case "id":
			if len(value) <= MaxIDLen && !bytes.ContainsRune(value, 0) {
				ev.ID, ev.HasID = string(value), true
			}
		case "event":
			ev.Type = string(value)
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil {
				ev.Retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

// appendData appends p to the event's data, unless that takes it past
// max+1 bytes (the data and the '\n' that ends its last line): then the
// event is too large, and its data is released at once.
func (er *Reader) appendData(ev *Event, p []byte) {
	if ev.TooLarge {
		return
	}
	if len(ev.Data)+len(p) > er.max+1 {
		ev.TooLarge, ev.Data = true, nil
		return
	}
	ev.Data = append(ev.Data, p...)
}

// line returns the next line without its ending, valid until the next
// read. A line longer than the buffer is not returned (long is set): if
// it is a data line, its value goes to the event as it is read, within
// the event's limit; any other is discarded.
func (er *Reader) line(ev *Event, alive func()) (line []byte, long bool, err error) {
	b, err := er.r.ReadSlice('\n')
	switch {
	case err == nil:
		return bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r")), false, nil
	case err != bufio.ErrBufferFull:
		if err == io.EOF && len(b) > 0 {
			err = fmt.Errorf("the stream ended inside a line, after %d bytes: %w", len(b), io.ErrUnexpectedEOF)
		}
		return nil, false, err
	}
	n := int64(len(b))
	value, isData := bytes.CutPrefix(b, []byte("data:"))
	// A data line's value goes to the event piece by piece. A '\r' that
	// ends a piece waits for the next one: if that is the line's "\n",
	// the "\r\n" is the line's end, not data.
	cr := false
	piece := func(p []byte, end bool) {
		if end {
			p = bytes.TrimSuffix(p, []byte("\n"))
		}
		if cr && (!end || len(p) > 0) {
			er.appendData(ev, []byte{'\r'})
		}
		cr = false
		if q, ok := bytes.CutSuffix(p, []byte("\r")); ok {
			p, cr = q, !end
		}
		er.appendData(ev, p)
	}
	if isData {
		ev.HasData = true
		piece(bytes.TrimPrefix(value, []byte(" ")), false)
	}
	for err == bufio.ErrBufferFull {
		alive()
		b, err = er.r.ReadSlice('\n')
		n += int64(len(b))
		if isData && (err == nil || err == bufio.ErrBufferFull) {
			piece(b, err == nil)
		}
	}
	if err != nil {
		what := "a line"
		if isData && ev.TooLarge {
			what = "a data line over the " + strconv.Itoa(er.max) + "-byte event limit"
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, true, fmt.Errorf("reading %s, %d bytes without a line end so far: %w", what, n, err)
	}
	if isData {
		er.appendData(ev, []byte{'\n'})
	}
	return nil, true, nil
}
