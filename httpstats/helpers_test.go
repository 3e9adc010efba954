package httpstats_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moqstats/moqstats/httpstats"
)

// safety bounds how long a test waits for something that should happen
// promptly; it only turns a hang into a failure.
const safety = 10 * time.Second

// firstGroup is the group number of every track's first group on an
// Origin made by newOrigin: its clock reads this many milliseconds.
const firstGroup = 1000

// newOrigin returns an Origin with a fixed clock, so group numbers start
// at firstGroup.
func newOrigin(t *testing.T, opts httpstats.Options) *httpstats.Origin {
	t.Helper()
	o, err := httpstats.New(opts)
	if err != nil {
		t.Fatalf("New(%+v) error = %v, want nil", opts, err)
	}
	httpstats.SetClock(o, func() time.Time { return time.UnixMilli(firstGroup) })
	return o
}

// serve mounts o at /stats/ on a test server, as a relay would.
func serve(t *testing.T, o *httpstats.Origin) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/stats/", http.StripPrefix("/stats", o))
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		o.Shutdown() // end streams, or Close would wait for them
		ts.Close()
	})
	return ts
}

func publish(t *testing.T, o *httpstats.Origin, path string, tracks ...string) *httpstats.Broadcast {
	t.Helper()
	bc, err := o.Publish(path, tracks)
	if err != nil {
		t.Fatalf("Publish(%q, %q) error = %v, want nil", path, tracks, err)
	}
	b, ok := bc.(*httpstats.Broadcast)
	if !ok {
		t.Fatalf("Publish returned %T, want *httpstats.Broadcast", bc)
	}
	return b
}

func write(t *testing.T, b *httpstats.Broadcast, track, frame string) {
	t.Helper()
	if err := b.WriteFrame(track, []byte(frame)); err != nil {
		t.Fatalf("WriteFrame(%q, %q) error = %v, want nil", track, frame, err)
	}
}

func appendFrame(t *testing.T, b *httpstats.Broadcast, track, frame string) {
	t.Helper()
	if err := b.AppendFrame(track, []byte(frame)); err != nil {
		t.Fatalf("AppendFrame(%q, %q) error = %v, want nil", track, frame, err)
	}
}

// get sends a request with the given headers (name, value pairs) and
// returns the response with its body read.
func get(t *testing.T, client *http.Client, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s error = %v, want a response", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, string(body)
}

// sseEvent is an event as EventSource dispatches it.
type sseEvent struct {
	ID    string
	Event string // "" for the default type, which onmessage sees
	Data  string
}

// sseBlock is one block of an event stream: its lines up to the blank
// line that ends it.
type sseBlock []string

// event interprets a block as EventSource does: "field: value" lines
// (one space after the colon dropped), data lines joined with LF, comment
// lines ignored. ok is false for a block that dispatches nothing (no
// data field).
func (b sseBlock) event() (ev sseEvent, ok bool) {
	var data []string
	hasData := false
	for _, line := range b {
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID = value
		case "event":
			ev.Event = value
		case "data":
			data = append(data, value)
			hasData = true
		}
	}
	ev.Data = strings.Join(data, "\n")
	return ev, hasData
}

// sseStream reads an event stream from the wire in a goroutine.
type sseStream struct {
	resp   *http.Response
	cancel context.CancelFunc
	blocks chan sseBlock // closed at the end of the body
	// tail is what followed the last blank line when the body ended;
	// read it only after blocks is closed.
	tail string
	err  error
}

// openStream starts an event stream on track, sending the given headers
// (name, value pairs) besides Accept, and fails unless it is answered
// 200.
func openStream(t *testing.T, client *http.Client, url string, hdr ...string) *sseStream {
	t.Helper()
	s, resp := tryStream(t, client, url, hdr...)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s (event stream) status = %d %q, want 200", url, resp.StatusCode, body)
	}
	s.start()
	return s
}

// tryStream sends a stream request and returns the response unread.
func tryStream(t *testing.T, client *http.Client, url string, hdr ...string) (*sseStream, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s (event stream) error = %v, want a response", url, err)
	}
	s := &sseStream{resp: resp, cancel: cancel, blocks: make(chan sseBlock, 4096)}
	t.Cleanup(s.close)
	return s, resp
}

func (s *sseStream) start() {
	go func() {
		defer close(s.blocks)
		r := bufio.NewReader(s.resp.Body)
		var block sseBlock
		var partial bytes.Buffer
		for {
			line, err := r.ReadString('\n')
			partial.WriteString(line)
			if err != nil {
				s.tail, s.err = partial.String(), err
				return
			}
			text := strings.TrimSuffix(strings.TrimSuffix(partial.String(), "\n"), "\r")
			partial.Reset()
			if text == "" {
				s.blocks <- block
				block = nil
				continue
			}
			block = append(block, text)
		}
	}()
}

// close drops the connection.
func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// nextBlock returns the next block, or fails the test if the stream ends
// or nothing arrives within safety.
func (s *sseStream) nextBlock(t *testing.T) sseBlock {
	t.Helper()
	select {
	case b, ok := <-s.blocks:
		if !ok {
			t.Fatalf("stream ended (%v, tail %q), want another block", s.err, s.tail)
		}
		return b
	case <-time.After(safety):
		t.Fatal("no block within the safety timeout")
	}
	return nil
}

// next returns the next dispatched event, skipping comments and the
// retry block.
func (s *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	for {
		if ev, ok := s.nextBlock(t).event(); ok {
			return ev
		}
	}
}

// wantEnd reads the end event and the end of the body.
func (s *sseStream) wantEnd(t *testing.T) {
	t.Helper()
	ev := s.next(t)
	if want := (sseEvent{Event: "end", Data: "closed"}); ev != want {
		t.Fatalf("event = %+v, want the end event %+v", ev, want)
	}
	s.wantEOF(t)
}

// wantEOF waits for the body to end, with no further block and nothing
// after the last blank line.
func (s *sseStream) wantEOF(t *testing.T) {
	t.Helper()
	select {
	case b, ok := <-s.blocks:
		if ok {
			t.Fatalf("got block %q, want the end of the stream", b)
		}
	case <-time.After(safety):
		t.Fatal("stream still open after the safety timeout, want it ended")
	}
	if s.err != io.EOF || s.tail != "" {
		t.Errorf("stream ended with %v and tail %q, want io.EOF after a blank line", s.err, s.tail)
	}
}

// eventually polls cond until it holds, failing after safety.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(safety)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still false after %v", what, safety)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// streamHandlersRunning reports whether any goroutine is inside the
// stream handler.
func streamHandlersRunning() bool {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Contains(buf[:n], []byte("httpstats.(*Origin).serveStream"))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// wantNoStreams waits until o has no open stream and no goroutine is
// left in a stream handler.
func wantNoStreams(t *testing.T, o *httpstats.Origin) {
	t.Helper()
	eventually(t, "no open streams and no stream handler goroutine", func() bool {
		return o.Streams() == 0 && !streamHandlersRunning()
	})
}

// id formats an event id.
func id(group, frame int) string {
	return strconv.Itoa(group) + "." + strconv.Itoa(frame)
}
