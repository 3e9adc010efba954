package httpstats

import (
	"encoding/base64"
	"io"
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
	switch {
	case s.resync:
		// The resync reads the track when taken, ev included.
	case len(s.queue) < s.limit:
		s.queue = append(s.queue, ev)
	default:
		clear(s.queue) // release the frames
		s.queue = s.queue[:0]
		s.resync = true
		s.resyncs++
	}
	s.signal()
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
func (s *stream) take(dst []event) ([]event, bool) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.resync {
		s.resync = false
		dst = s.t.appendCurrent(dst, s.sent, s.hasSent)
	} else {
		dst = append(dst, s.queue...)
		clear(s.queue)
		s.queue = s.queue[:0]
	}
	if n := len(dst); n > 0 {
		s.sent, s.hasSent = dst[n-1].position, true
	}
	return dst, s.ended
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
		b:       b,
		t:       t,
		wake:    make(chan struct{}, 1),
		queue:   make([]event, 0, o.opts.StreamBuffer),
		limit:   o.opts.StreamBuffer,
		resync:  true,
		sent:    after,
		hasSent: has,
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
	rc := http.NewResponseController(w)
	buf := make([]byte, 0, 512)
	buf = append(buf, "retry: "...)
	buf = strconv.AppendInt(buf, o.opts.Retry.Milliseconds(), 10)
	buf = append(buf, "\n\n"...)
	if !o.send(rc, w, buf) {
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
		buf = buf[:0]
		for _, ev := range events {
			buf = appendEvent(buf, s.t.kind, ev)
		}
		clear(events) // do not keep frames alive while waiting
		if ended {
			buf = append(buf, endEvent...)
		}
		if len(buf) > 0 {
			if !o.send(rc, w, buf) {
				return
			}
			heartbeat.Reset(o.opts.Heartbeat)
		}
		if ended {
			return
		}
		select {
		case <-s.wake:
		case <-heartbeat.C:
			if !o.send(rc, w, []byte(ping)) {
				return
			}
		case <-r.Context().Done():
			return
		case <-o.shutdown:
			return
		}
	}
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

// send writes p to the client and flushes it, within WriteTimeout. It
// reports whether that worked; when it did not the stream is over.
func (o *Origin) send(rc *http.ResponseController, w io.Writer, p []byte) bool {
	// A server or wrapper that cannot set deadlines leaves slow clients
	// to the server's own timeouts.
	_ = rc.SetWriteDeadline(time.Now().Add(o.opts.WriteTimeout))
	if _, err := w.Write(p); err != nil {
		return false
	}
	return rc.Flush() == nil
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

// appendEvent appends ev as one event: its id line, its data, and the
// blank line that dispatches it. A JSON frame is its text, one data line
// per line (compact frames have one); any other frame is std base64.
func appendEvent(dst []byte, k kind, ev event) []byte {
	dst = append(dst, "id: "...)
	dst = appendEventID(dst, ev.position)
	dst = append(dst, '\n')
	if k == kindJSON {
		dst = appendDataLines(dst, ev.frame)
	} else {
		dst = append(dst, "data: "...)
		dst = base64.StdEncoding.AppendEncode(dst, ev.frame)
		dst = append(dst, '\n')
	}
	return append(dst, '\n')
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
