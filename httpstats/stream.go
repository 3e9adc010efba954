package httpstats

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"
)

// stream is one client's event stream on one track. Writers queue events
// on it under the broadcast's lock and never wait; the handler serving the
// client takes them and writes them out without the lock.
type stream struct {
	b *Broadcast
	t *track
	// wake holds one token when there may be something to take; buffered
	// so a writer's signal never blocks.
	wake chan struct{}

	// Guarded by b.mu.

	// queue holds events written since the last take, in write order, at
	// most limit of them. Pushing onto a full queue empties it and sets
	// resync instead, so a client that does not keep up costs a bounded
	// amount of memory and gets the current state, not a stale backlog.
	queue []event
	limit int
	// queued is the bytes of the frames in queue; inflight, of the frames
	// the handler took and has not released yet (it is writing them).
	// Their sum stays within maxBytes for queued frames, and counts in
	// the Origin's held, within its QueueBytes; a resync's frames are
	// counted in flight but not refused (see push).
	queued   int
	inflight int
	maxBytes int
	// resync means the queue is not used: the next take delivers the
	// track's current state as seen from sent (see track.appendCurrent),
	// and writes until then only wake the handler. A new stream starts
	// with resync set, positioned at its Last-Event-ID if it had one.
	resync bool
	// sent is the position of the last event taken, if hasSent: where
	// the client is, as far as the server knows.
	sent    position
	hasSent bool
	// ended is set by the broadcast's Close: once the queue is drained
	// the stream ends with an end event.
	ended bool
	// resyncs counts the times a full queue was dropped.
	resyncs int
}

// push queues ev, or drops the queue for a resync if it is full. The
// caller holds the broadcast's mu.
func (s *stream) push(ev event) {
	n := len(ev.frame)
	switch {
	case s.resync:
		// The resync reads the track when taken, ev included.
	case len(s.queue) < s.limit && s.queued+s.inflight+n <= s.maxBytes && s.b.reserve(s, n):
		s.queue = append(s.queue, ev)
		s.queued += n
	default:
		s.drop()
	}
	s.signal()
}

// drop empties the queue and marks the stream for a resync. The caller
// holds the broadcast's mu.
func (s *stream) drop() {
	clear(s.queue) // release the frames
	s.queue = s.queue[:0]
	s.b.origin.held.Add(-int64(s.queued))
	s.queued = 0
	s.resync = true
	s.resyncs++
}

// reserve counts n more bytes in the Origin's held for s, within
// QueueBytes: if they do not fit, the queues of the broadcast's other
// streams are dropped, the stream holding the most queued bytes first (the
// reader furthest behind), until they do. It reports false, reserving
// nothing, if s itself holds the most, or nothing queued is left to drop.
// The caller holds the broadcast's mu.
func (b *Broadcast) reserve(s *stream, n int) bool {
	o := b.origin
	for o.held.Load()+int64(n) > int64(o.opts.QueueBytes) {
		var slowest *stream
		for _, t := range b.tracks {
			for other := range t.streams {
				if other.queued > 0 && (slowest == nil || other.queued > slowest.queued) {
					slowest = other
				}
			}
		}
		if slowest == nil || slowest == s || slowest.queued <= s.queued {
			return false
		}
		slowest.drop()
		slowest.signal()
	}
	o.held.Add(int64(n))
	return true
}

// signal wakes the handler without blocking. The caller holds the
// broadcast's mu, or the stream is ending anyway.
func (s *stream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take appends to dst the events due to the client, and reports whether
// the broadcast has closed (every queued event is then in dst, and no
// more will come).
//
// The frames taken stay counted against the stream's and the Origin's
// budgets until release.
func (s *stream) take(dst []event) ([]event, bool) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.resync {
		s.resync = false
		from := len(dst)
		dst = s.t.appendCurrent(dst, s.sent, s.hasSent)
		// The track's current frames, which it holds anyway while they
		// are current: counted, so that queues make room for them, but
		// not refused, or a client could never catch up.
		n := 0
		for _, ev := range dst[from:] {
			n += len(ev.frame)
		}
		s.inflight += n
		s.b.origin.held.Add(int64(n))
	} else {
		dst = append(dst, s.queue...)
		clear(s.queue)
		s.queue = s.queue[:0]
		s.inflight += s.queued
		s.queued = 0
	}
	if n := len(dst); n > 0 {
		s.sent, s.hasSent = dst[n-1].position, true
	}
	return dst, s.ended
}

// release uncounts the frames taken, once they are written (or the
// stream is over).
func (s *stream) release() {
	s.b.mu.Lock()
	s.b.origin.held.Add(-int64(s.inflight))
	s.inflight = 0
	s.b.mu.Unlock()
}

// subscribe registers a stream on track name of the current broadcast,
// positioned after `after` if has. It returns an HTTP status and message
// instead when there is no such track or no stream may open.
func (o *Origin) subscribe(name string, after position, has bool) (*stream, int, string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.current
	if b == nil {
		return nil, http.StatusNotFound, msgNotAnnounced
	}
	t, ok := b.tracks[name]
	if !ok {
		return nil, http.StatusNotFound, msgUnknownTrack
	}
	if o.isShutdown {
		return nil, http.StatusServiceUnavailable, "shutting down"
	}
	if o.streams >= o.opts.MaxStreams {
		return nil, http.StatusServiceUnavailable, "too many streams"
	}
	o.streams++
	s := &stream{
		b:        b,
		t:        t,
		wake:     make(chan struct{}, 1),
		queue:    make([]event, 0, o.opts.StreamBuffer),
		limit:    o.opts.StreamBuffer,
		maxBytes: o.opts.StreamBytes,
		resync:   true,
		sent:     after,
		hasSent:  has,
	}
	// Registering under both locks: a broadcast found current is open,
	// and its Close (which takes both) will see this stream.
	b.mu.Lock()
	if t.streams == nil {
		t.streams = make(map[*stream]struct{})
	}
	t.streams[s] = struct{}{}
	b.mu.Unlock()
	return s, 0, ""
}

// unsubscribe removes s from its track and frees its slot.
func (o *Origin) unsubscribe(s *stream) {
	s.b.mu.Lock()
	delete(s.t.streams, s)
	clear(s.queue)
	s.queue = nil
	o.held.Add(-int64(s.queued + s.inflight))
	s.queued, s.inflight = 0, 0
	s.b.mu.Unlock()

	o.mu.Lock()
	o.streams--
	o.mu.Unlock()
}

// serveStream serves track name as Server-Sent Events until the
// broadcast closes, the request's context ends, the Origin shuts down or
// a write fails.
func (o *Origin) serveStream(w http.ResponseWriter, r *http.Request, name string) {
	if !canFlush(w) {
		writeError(w, http.StatusInternalServerError, "streaming not supported by this server")
		return
	}
	after, has := parseEventID(r.Header.Get("Last-Event-ID"))
	s, code, msg := o.subscribe(name, after, has)
	if s == nil {
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", o.retryAfter())
		}
		writeError(w, code, msg)
		return
	}
	defer o.unsubscribe(s)

	setStreamHeaders(w)
	if r.ProtoMajor == 1 {
		// The write deadline a stream sets stays on an HTTP/1 connection
		// after the handler returns, so the connection must not be
		// reused. (On HTTP/2 the deadline is the stream's own, and
		// Connection: close would tear down every stream on the
		// connection.)
		w.Header().Set("Connection", "close")
	}
	w.WriteHeader(http.StatusOK)
	c := client{w: w, rc: http.NewResponseController(w), timeout: o.opts.WriteTimeout}
	retry := strconv.AppendInt([]byte("retry: "), o.opts.Retry.Milliseconds(), 10)
	if c.write(append(retry, "\n\n"...)) != nil || c.flush() != nil {
		return
	}

	heartbeat := time.NewTicker(o.opts.Heartbeat)
	defer heartbeat.Stop()
	var events []event
	for {
		select {
		case <-o.shutdown:
			return
		default:
		}
		var ended bool
		events, ended = s.take(events[:0])
		err := c.events(s.t.kind, events, ended)
		clear(events) // do not keep frames alive while waiting
		s.release()
		if err != nil || ended {
			return
		}
		if len(events) > 0 {
			heartbeat.Reset(o.opts.Heartbeat)
		}
		select {
		case <-s.wake:
		case <-heartbeat.C:
			if c.write([]byte(ping)) != nil || c.flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-o.shutdown:
			return
		}
	}
}

// client writes a stream's events to its client.
type client struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	scratch [64]byte // an event's id line and data prefix
}

// events writes events, then the end event if ended, and flushes them.
// Frames are written from the shared copies, not copied again, so a
// large frame costs no memory per stream.
func (c *client) events(k kind, events []event, ended bool) error {
	for _, ev := range events {
		if err := c.event(k, ev); err != nil {
			return err
		}
	}
	if ended {
		if err := c.write([]byte(endEvent)); err != nil {
			return err
		}
	}
	if len(events) == 0 && !ended {
		return nil
	}
	return c.flush()
}

// event writes ev as one event: its id line, its data, and the blank
// line that dispatches it. A JSON frame is its text, one data line per
// line (compact frames have one); any other frame is std base64.
func (c *client) event(k kind, ev event) error {
	head := append(c.scratch[:0], "id: "...)
	head = appendEventID(head, ev.position)
	head = append(head, '\n')
	switch {
	case k == kindJSON && !bytes.ContainsAny(ev.frame, "\r\n"):
		head = append(head, "data: "...)
		return c.write(head, ev.frame, []byte("\n\n"))
	case k == kindJSON:
		lines := appendDataLines(head, ev.frame)
		return c.write(append(lines, '\n'))
	default:
		head = append(head, "data: "...)
		if err := c.write(head); err != nil {
			return err
		}
		enc := base64.NewEncoder(base64.StdEncoding, c.w)
		if _, err := enc.Write(ev.frame); err != nil {
			return err
		}
		if err := enc.Close(); err != nil {
			return err
		}
		return c.write([]byte("\n\n"))
	}
}

// write writes parts to the client, within the write timeout from now.
// An error means the stream is over.
func (c *client) write(parts ...[]byte) error {
	// A server or wrapper that cannot set deadlines leaves slow clients
	// to the server's own timeouts.
	_ = c.rc.SetWriteDeadline(time.Now().Add(c.timeout))
	for _, p := range parts {
		if _, err := c.w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// flush sends what was written, within the write timeout from now.
func (c *client) flush() error {
	_ = c.rc.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.rc.Flush()
}

// The fixed parts of the wire format; see the package doc.
const (
	endEvent = "event: end\ndata: closed\n\n"
	ping     = ": ping\n\n"
)

// setStreamHeaders sets the headers of an event stream response.
func setStreamHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", "Accept")
	// Tell nginx-style proxies not to buffer the stream.
	h.Set("X-Accel-Buffering", "no")
}

// retryAfter is the Retry-After value of a 503: Retry in whole seconds,
// rounded up, at least 1.
func (o *Origin) retryAfter() string {
	secs := (o.opts.Retry + time.Second - 1) / time.Second
	return strconv.FormatInt(max(int64(secs), 1), 10)
}

// canFlush reports whether w, or a ResponseWriter it wraps, can flush,
// looking where http.ResponseController looks.
func canFlush(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case interface{ FlushError() error }, http.Flusher:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}

// appendEventID appends "G.F".
func appendEventID(dst []byte, p position) []byte {
	dst = strconv.AppendUint(dst, p.group, 10)
	dst = append(dst, '.')
	return strconv.AppendInt(dst, int64(p.index), 10)
}

// appendDataLines appends text as data lines, split where the event
// stream format ends a line (CRLF, CR or LF), so a stray line break cannot
// end the event early or smuggle in another field. A client joins the
// lines with LF, which for JSON is the same whitespace.
func appendDataLines(dst, text []byte) []byte {
	start := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c != '\n' && c != '\r' {
			continue
		}
		dst = append(dst, "data: "...)
		dst = append(dst, text[start:i]...)
		dst = append(dst, '\n')
		if c == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		start = i + 1
	}
	dst = append(dst, "data: "...)
	dst = append(dst, text[start:]...)
	return append(dst, '\n')
}
