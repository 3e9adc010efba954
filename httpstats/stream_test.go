package httpstats_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats/httpstats"
)

// readExactly reads n bytes from r, failing the test if they do not
// arrive within safety.
func readExactly(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		got <- result{b, err}
	}()
	select {
	case res := <-got:
		if res.err != nil {
			t.Fatalf("reading %d bytes: %v (got %q)", n, res.err, res.b)
		}
		return string(res.b)
	case <-time.After(safety):
		t.Fatalf("reading %d bytes: nothing within the safety timeout", n)
	}
	return ""
}

// TestStreamWireFormat pins the bytes of a stream: the retry hint, one
// block per frame with its id and data, and the end event, each flushed
// as it happens.
func TestStreamWireFormat(t *testing.T) {
	o := newOrigin(t, httpstats.Options{Retry: 1500 * time.Millisecond})
	ts := serve(t, o)
	b := publish(t, o, "p", "internal/publisher.json")
	write(t, b, "internal/publisher.json", `{"a":1}`)

	s, resp := tryStream(t, ts.Client(), ts.URL+"/stats/internal/publisher.json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type":           "text/event-stream",
		"Cache-Control":          "no-cache",
		"Vary":                   "Accept",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if !resp.Close {
		t.Error("HTTP/1 stream response does not close its connection, want Connection: close")
	}
	want := "retry: 1500\n\n" + "id: 1000.0\ndata: {\"a\":1}\n\n"
	if got := readExactly(t, s.resp.Body, len(want)); got != want {
		t.Fatalf("stream start = %q, want %q", got, want)
	}
	write(t, b, "internal/publisher.json", `{"a":2}`)
	want = "id: 1001.0\ndata: {\"a\":2}\n\n"
	if got := readExactly(t, s.resp.Body, len(want)); got != want {
		t.Fatalf("next event = %q, want %q", got, want)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	want = "event: end\ndata: closed\n\n"
	if got := readExactly(t, s.resp.Body, len(want)); got != want {
		t.Fatalf("after Close = %q, want %q", got, want)
	}
	if rest, err := io.ReadAll(s.resp.Body); err != nil || len(rest) != 0 {
		t.Errorf("after the end event: %q, %v; want the end of the body", rest, err)
	}
	wantNoStreams(t, o)
}

// TestStreamStartsWithLatestThenEveryFrame: a reader that keeps up (a
// writer never gets more than StreamBuffer frames ahead of it) receives
// the latest frame and then every frame, in order.
func TestStreamStartsWithLatestThenEveryFrame(t *testing.T) {
	const buffer = 8
	o := newOrigin(t, httpstats.Options{StreamBuffer: buffer})
	ts := serve(t, o)
	b := publish(t, o, "p", "t.json")
	write(t, b, "t.json", `"old"`)
	write(t, b, "t.json", `"latest"`)
	s := openStream(t, ts.Client(), ts.URL+"/stats/t.json")
	if ev := s.next(t); ev != (sseEvent{ID: id(firstGroup+1, 0), Data: `"latest"`}) {
		t.Fatalf("first event %+v, want the latest frame with id %s", ev, id(firstGroup+1, 0))
	}
	n := 0
	for range 20 {
		for range buffer {
			n++
			write(t, b, "t.json", strconv.Itoa(n))
		}
		for k := n - buffer + 1; k <= n; k++ {
			want := sseEvent{ID: id(firstGroup+1+k, 0), Data: strconv.Itoa(k)}
			if ev := s.next(t); ev != want {
				t.Fatalf("event %+v, want %+v", ev, want)
			}
		}
	}
}

func TestStreamBeforeFirstFrameWaitsForIt(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	b := publish(t, o, "p", "t.json", "t.json.z")
	plain := openStream(t, ts.Client(), ts.URL+"/stats/t.json")
	group := openStream(t, ts.Client(), ts.URL+"/stats/t.json.z")
	eventually(t, "both streams open", func() bool { return o.Streams() == 2 })
	write(t, b, "t.json", "{}")
	write(t, b, "t.json.z", "s")
	appendFrame(t, b, "t.json.z", "d")
	if ev := plain.next(t); ev.ID != id(firstGroup, 0) || ev.Data != "{}" {
		t.Errorf("plain stream first event %+v, want %s {}", ev, id(firstGroup, 0))
	}
	for i, f := range []string{"s", "d"} {
		want := sseEvent{ID: id(firstGroup, i), Data: base64.StdEncoding.EncodeToString([]byte(f))}
		if ev := group.next(t); ev != want {
			t.Errorf("group stream event %d = %+v, want %+v", i, ev, want)
		}
	}
}

// TestGroupTrackStream: a ".z" stream starts at frame 0 of the current
// group, carries base64, and numbers frames within groups.
func TestGroupTrackStream(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	b := publish(t, o, "p", "publisher.json.z")
	frames := []string{"\x00snap", "\xffd1", "d2"}
	write(t, b, "publisher.json.z", frames[0])
	appendFrame(t, b, "publisher.json.z", frames[1])
	s := openStream(t, ts.Client(), ts.URL+"/stats/publisher.json.z")
	// Once the stream took its start, later frames are queued for it.
	eventually(t, "the stream took its first events", func() bool { return httpstats.Pending(o) == 0 })
	appendFrame(t, b, "publisher.json.z", frames[2])
	write(t, b, "publisher.json.z", "snap2")
	appendFrame(t, b, "publisher.json.z", "d21")
	want := []sseEvent{
		{ID: id(firstGroup, 0), Data: base64.StdEncoding.EncodeToString([]byte(frames[0]))},
		{ID: id(firstGroup, 1), Data: base64.StdEncoding.EncodeToString([]byte(frames[1]))},
		{ID: id(firstGroup, 2), Data: base64.StdEncoding.EncodeToString([]byte(frames[2]))},
		{ID: id(firstGroup+1, 0), Data: base64.StdEncoding.EncodeToString([]byte("snap2"))},
		{ID: id(firstGroup+1, 1), Data: base64.StdEncoding.EncodeToString([]byte("d21"))},
	}
	for i, w := range want {
		if ev := s.next(t); ev != w {
			t.Fatalf("event %d = %+v, want %+v", i, ev, w)
		}
	}
}

func TestBinaryTrackStreamsBase64(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	b := publish(t, o, "p", "raw")
	write(t, b, "raw", "a\nb\x00")
	s := openStream(t, ts.Client(), ts.URL+"/stats/raw")
	if ev := s.next(t); ev.Data != base64.StdEncoding.EncodeToString([]byte("a\nb\x00")) {
		t.Errorf("binary track event data %q, want std base64 of the frame", ev.Data)
	}
}

// TestLineBreaksInJSONFrameStayInOneEvent: a JSON frame with line breaks
// is sent as several data lines, so it cannot end the event or inject a
// field, and a client reads it back with LF line breaks.
func TestLineBreaksInJSONFrameStayInOneEvent(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	b := publish(t, o, "p", "t.json")
	write(t, b, "t.json", "{\"a\":\r\n1,\r\"b\":\n\nevent: x\n2}\n")
	s := openStream(t, ts.Client(), ts.URL+"/stats/t.json")
	var block sseBlock
	for block == nil || strings.HasPrefix(block[0], "retry:") {
		block = s.nextBlock(t)
	}
	want := sseBlock{"id: 1000.0", `data: {"a":`, "data: 1,", `data: "b":`, "data: ", "data: event: x", "data: 2}", "data: "}
	if fmt.Sprint(block) != fmt.Sprint(want) {
		t.Errorf("block = %q, want %q", block, want)
	}
	ev, _ := block.event()
	if want := "{\"a\":\n1,\n\"b\":\n\nevent: x\n2}\n"; ev.Data != want || ev.Event != "" {
		t.Errorf("event = %+v, want data %q and the default type", ev, want)
	}
}

// TestLastEventIDResume: a Last-Event-ID naming the latest frame sends
// nothing until the next; one naming an earlier frame of the current
// group sends the frames after it; anything else starts afresh.
func TestLastEventIDResume(t *testing.T) {
	g := firstGroup
	for _, tc := range []struct {
		name   string
		track  string
		lastID string
		want   []string // ids before the marker frame written after opening
	}{
		{"plain latest", "t.json", id(g+1, 0), nil},
		{"plain older group", "t.json", id(g, 0), []string{id(g+1, 0)}},
		{"plain future group", "t.json", id(g+9, 0), []string{id(g+1, 0)}},
		{"plain frame past the group", "t.json", id(g+1, 1), []string{id(g+1, 0)}},
		{"plain malformed", "t.json", "1001", []string{id(g+1, 0)}},
		{"plain signed", "t.json", "+1001.0", []string{id(g+1, 0)}},
		{"plain empty", "t.json", "", []string{id(g+1, 0)}},
		{"group latest", "t.z", id(g+1, 2), nil},
		{"group earlier frame", "t.z", id(g+1, 0), []string{id(g+1, 1), id(g+1, 2)}},
		{"group middle frame", "t.z", id(g+1, 1), []string{id(g+1, 2)}},
		{"group older group", "t.z", id(g, 0), []string{id(g+1, 0), id(g+1, 1), id(g+1, 2)}},
		{"group frame past the group", "t.z", id(g+1, 3), []string{id(g+1, 0), id(g+1, 1), id(g+1, 2)}},
		{"group frame past the group cap", "t.z", id(g+1, httpstats.MaxGroupFrames), []string{id(g+1, 0), id(g+1, 1), id(g+1, 2)}},
		{"group overflowing number", "t.z", "18446744073709551616.0", []string{id(g+1, 0), id(g+1, 1), id(g+1, 2)}},
		{"group garbage", "t.z", "a.b", []string{id(g+1, 0), id(g+1, 1), id(g+1, 2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOrigin(t, httpstats.Options{})
			ts := serve(t, o)
			b := publish(t, o, "p", "t.json", "t.z")
			write(t, b, "t.json", "0")
			write(t, b, "t.json", "1")
			write(t, b, "t.z", "old")
			write(t, b, "t.z", "s")
			appendFrame(t, b, "t.z", "d1")
			appendFrame(t, b, "t.z", "d2")

			s := openStream(t, ts.Client(), ts.URL+"/stats/"+tc.track, "Last-Event-ID", tc.lastID)
			// Written after the handler took what was due at once, the
			// marker ends the events the id resumed with.
			eventually(t, "the stream took its first events", func() bool { return httpstats.Pending(o) == 0 })
			var marker string
			if tc.track == "t.json" {
				write(t, b, "t.json", "marker")
				marker = id(g+2, 0)
			} else {
				appendFrame(t, b, "t.z", "marker")
				marker = id(g+1, 3)
			}
			var got []string
			for {
				ev := s.next(t)
				if ev.ID == marker {
					break
				}
				got = append(got, ev.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Last-Event-ID %q: events before the next frame %q, want %q", tc.lastID, got, tc.want)
			}
		})
	}
}

func TestBroadcastCloseEndsStreams(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	b := publish(t, o, "p", "a.json", "b.json.z")
	write(t, b, "a.json", "0")
	write(t, b, "b.json.z", "s")
	sa := openStream(t, ts.Client(), ts.URL+"/stats/a.json")
	sb := openStream(t, ts.Client(), ts.URL+"/stats/b.json.z")
	sa.next(t)
	sb.next(t)
	// Queued before the close: delivered before the end event.
	write(t, b, "a.json", "1")
	write(t, b, "a.json", "2")
	appendFrame(t, b, "b.json.z", "d")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1", "2"} {
		if ev := sa.next(t); ev.Data != want {
			t.Errorf("a.json after Close: event %+v, want data %q", ev, want)
		}
	}
	if ev := sb.next(t); ev.ID != id(firstGroup, 1) {
		t.Errorf("b.json.z after Close: event %+v, want id %s", ev, id(firstGroup, 1))
	}
	sa.wantEnd(t)
	sb.wantEnd(t)
	wantNoStreams(t, o)

	// A stream opened on the next broadcast is not affected by the old one.
	b2 := publish(t, o, "p", "a.json")
	write(t, b2, "a.json", "new")
	s := openStream(t, ts.Client(), ts.URL+"/stats/a.json")
	if ev := s.next(t); ev.Data != "new" {
		t.Errorf("stream on the new broadcast: %+v, want data \"new\"", ev)
	}
	if err := b.Close(); !errors.Is(err, httpstats.ErrClosed) {
		t.Errorf("closing the old broadcast again: %v, want ErrClosed", err)
	}
	write(t, b2, "a.json", "still")
	if ev := s.next(t); ev.Data != "still" {
		t.Errorf("stream after the old broadcast's second Close: %+v, want data \"still\"", ev)
	}
}

// TestShutdownEndsStreams: Shutdown ends open streams without an end
// event (the broadcast did not close), refuses new ones with 503, and
// lets http.Server.Shutdown finish.
func TestShutdownEndsStreams(t *testing.T) {
	o := newOrigin(t, httpstats.Options{Retry: 2500 * time.Millisecond})
	ts := serve(t, o)
	ts.Config.RegisterOnShutdown(o.Shutdown)
	b := publish(t, o, "p", "a.json", "b.json")
	write(t, b, "a.json", "0")
	write(t, b, "b.json", "0")
	// Separate clients: the server will stop accepting connections.
	streams := []*sseStream{
		openStream(t, &http.Client{Transport: &http.Transport{}}, ts.URL+"/stats/a.json"),
		openStream(t, &http.Client{Transport: &http.Transport{}}, ts.URL+"/stats/b.json"),
	}
	for _, s := range streams {
		s.next(t)
	}

	o.Shutdown()
	for _, s := range streams {
		s.wantEOF(t) // and no end event: the broadcast is still open
	}
	wantNoStreams(t, o)

	resp, body := get(t, ts.Client(), "GET", ts.URL+"/stats/a.json", "Accept", "text/event-stream")
	wantJSONError(t, "stream after Shutdown", resp, body, http.StatusServiceUnavailable, "shutting down")
	if got := resp.Header.Get("Retry-After"); got != "3" {
		t.Errorf("Retry-After = %q, want \"3\" (Retry rounded up to seconds)", got)
	}
	write(t, b, "a.json", "1") // writes keep working
	resp, body = get(t, ts.Client(), "GET", ts.URL+"/stats/a.json")
	if resp.StatusCode != http.StatusOK || body != "1" {
		t.Errorf("GET after Shutdown = %d %q, want 200 \"1\"", resp.StatusCode, body)
	}
	o.Shutdown() // idempotent
}

// TestServerShutdownEndsStreamsThroughRegisterOnShutdown: with the
// Origin's Shutdown registered, http.Server.Shutdown returns although a
// stream was open.
func TestServerShutdownEndsStreamsThroughRegisterOnShutdown(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	ts.Config.RegisterOnShutdown(o.Shutdown)
	b := publish(t, o, "p", "a.json")
	write(t, b, "a.json", "0")
	s := openStream(t, ts.Client(), ts.URL+"/stats/a.json")
	s.next(t)
	ctx, cancel := context.WithTimeout(context.Background(), safety)
	defer cancel()
	if err := ts.Config.Shutdown(ctx); err != nil {
		t.Fatalf("http.Server.Shutdown with a stream open: %v, want nil", err)
	}
	s.wantEOF(t)
	wantNoStreams(t, o)
}

func TestStreamCap(t *testing.T) {
	o := newOrigin(t, httpstats.Options{MaxStreams: 2, Retry: 200 * time.Millisecond})
	ts := serve(t, o)
	b := publish(t, o, "p", "t.json")
	write(t, b, "t.json", "0")
	s1 := openStream(t, ts.Client(), ts.URL+"/stats/t.json")
	openStream(t, ts.Client(), ts.URL+"/stats/t.json")
	resp, body := get(t, ts.Client(), "GET", ts.URL+"/stats/t.json", "Accept", "text/event-stream")
	wantJSONError(t, "third stream", resp, body, http.StatusServiceUnavailable, "too many streams")
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want \"1\"", got)
	}
	// Plain GETs are not capped.
	if resp, _ := get(t, ts.Client(), "GET", ts.URL+"/stats/t.json"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET at the stream cap: status %d, want 200", resp.StatusCode)
	}
	s1.close()
	eventually(t, "a slot frees when a client leaves", func() bool { return o.Streams() == 1 })
	s3 := openStream(t, ts.Client(), ts.URL+"/stats/t.json")
	if ev := s3.next(t); ev.Data != "0" {
		t.Errorf("stream after a slot freed: %+v, want data \"0\"", ev)
	}
}

func TestHeartbeat(t *testing.T) {
	o := newOrigin(t, httpstats.Options{Heartbeat: 20 * time.Millisecond})
	ts := serve(t, o)
	publish(t, o, "p", "t.json")
	s := openStream(t, ts.Client(), ts.URL+"/stats/t.json")
	if b := s.nextBlock(t); fmt.Sprint(b) != "[retry: 3000]" {
		t.Fatalf("first block %q, want [retry: 3000]", b)
	}
	for range 3 {
		if b := s.nextBlock(t); fmt.Sprint(b) != "[: ping]" {
			t.Fatalf("block on an idle stream %q, want [: ping]", b)
		}
	}
}

// TestClientDisconnectFreesStream: a client that goes away mid-stream,
// while frames flow, frees its slot and leaves no goroutine behind.
func TestClientDisconnectFreesStream(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	b := publish(t, o, "p", "t.json", "t.z")
	write(t, b, "t.json", "0")
	write(t, b, "t.z", "0")
	stop := make(chan struct{})
	var writer sync.WaitGroup
	writer.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = b.WriteFrame("t.json", []byte(strconv.Itoa(i)))
			_ = b.AppendFrame("t.z", []byte("d"))
			if i%100 == 0 {
				_ = b.WriteFrame("t.z", []byte("s"))
			}
			time.Sleep(100 * time.Microsecond)
		}
	})
	defer func() {
		close(stop)
		writer.Wait()
	}()
	for range 5 {
		for _, track := range []string{"t.json", "t.z"} {
			s := openStream(t, ts.Client(), ts.URL+"/stats/"+track)
			for range 3 {
				s.next(t)
			}
			s.close()
		}
	}
	wantNoStreams(t, o)
}

// smallBuffers makes the kernel buffer little of a stream, so a client
// that does not read blocks the handler's writes after a few frames.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

func smallBufferClient() *http.Client {
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			return c, err
		},
	}}
}

func serveSmallBuffers(t *testing.T, o *httpstats.Origin) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/stats/", http.StripPrefix("/stats", o))
	ts := httptest.NewUnstartedServer(mux)
	ts.Listener = smallBuffers{ts.Listener}
	ts.Start()
	t.Cleanup(func() {
		o.Shutdown()
		ts.Close()
	})
	return ts
}

// frame returns a JSON frame numbered n, padded to about 2 KiB.
func frame(n int) string {
	return fmt.Sprintf(`{"n":%d,"pad":%q}`, n, strings.Repeat("x", 2048))
}

// frameNumber reads n back from a frame.
func frameNumber(t *testing.T, data string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(data, `{"n":%d,`, &n); err != nil {
		t.Fatalf("event data %.40q...: %v", data, err)
	}
	return n
}

// TestSlowClientNeitherBlocksWriterNorGetsStaleBacklog: with several
// clients reading and one never reading, every write returns at once; the
// readers end at the latest frame; and the slow client, once it reads,
// gets at most what its buffers held and then the latest frame, not the
// hundreds of frames it missed.
func TestSlowClientNeitherBlocksWriterNorGetsStaleBacklog(t *testing.T) {
	const (
		frames = 300
		buffer = 8
	)
	o := newOrigin(t, httpstats.Options{StreamBuffer: buffer, WriteTimeout: time.Minute})
	ts := serveSmallBuffers(t, o)
	b := publish(t, o, "p", "t.json")
	write(t, b, "t.json", frame(0))
	url := ts.URL + "/stats/t.json"

	var readers []*sseStream
	for range 3 {
		s := openStream(t, smallBufferClient(), url)
		if n := frameNumber(t, s.next(t).Data); n != 0 {
			t.Fatalf("reader's first frame %d, want 0", n)
		}
		readers = append(readers, s)
	}
	slow, resp := tryStream(t, smallBufferClient(), url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("slow client: status %d, want 200", resp.StatusCode)
	}

	wrote := make(chan error, 1)
	go func() {
		for i := 1; i < frames; i++ {
			if err := b.WriteFrame("t.json", []byte(frame(i))); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(safety):
		t.Fatal("the writer is blocked by a client that does not read")
	}

	for i, s := range readers {
		prev := 0
		for prev != frames-1 {
			n := frameNumber(t, s.next(t).Data)
			if n <= prev {
				t.Fatalf("reader %d: frame %d after %d, want increasing", i, n, prev)
			}
			prev = n
		}
	}
	if n := o.Streams(); n != 4 {
		t.Errorf("Streams() = %d, want 4: the slow client is still connected", n)
	}

	slow.start()
	got := 0
	prev := -1
	skipped := false
	for prev != frames-1 {
		n := frameNumber(t, slow.next(t).Data)
		if n <= prev {
			t.Fatalf("slow client: frame %d after %d, want increasing", n, prev)
		}
		if n > prev+1 {
			skipped = true
		}
		prev = n
		got++
	}
	// What the slow client gets before the latest frame is what sat in
	// its queue, the socket buffers and the handler's last write: a few
	// dozen 2 KiB frames at most, far below the frames it missed.
	if got > 60 || !skipped {
		t.Errorf("slow client got %d frames (skipped some: %v) before the latest, want at most 60 and a skip to the latest", got, skipped)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	slow.wantEnd(t)
	for _, s := range readers {
		s.wantEnd(t)
	}
	wantNoStreams(t, o)
}

// TestWriteTimeoutEndsStreamOfNonReader: a client that keeps its
// connection open but stops reading loses its stream after WriteTimeout.
func TestWriteTimeoutEndsStreamOfNonReader(t *testing.T) {
	o := newOrigin(t, httpstats.Options{WriteTimeout: 100 * time.Millisecond, StreamBuffer: 4})
	ts := serveSmallBuffers(t, o)
	b := publish(t, o, "p", "t.json")
	write(t, b, "t.json", frame(0))
	_, resp := tryStream(t, smallBufferClient(), ts.URL+"/stats/t.json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	eventually(t, "the stream of a client that stopped reading ends", func() bool {
		_ = b.WriteFrame("t.json", []byte(frame(1)))
		return o.Streams() == 0
	})
	wantNoStreams(t, o)
}

// TestConcurrentWritesStreamsAndGets exercises writes, appends, streams
// opening and closing, GETs, Close and Publish at once, for go test
// -race, and checks every stream's ids: increasing, and on a ".z" track
// every frame after frame 0 directly follows its predecessor.
func TestConcurrentWritesStreamsAndGets(t *testing.T) {
	o := newOrigin(t, httpstats.Options{StreamBuffer: 4})
	ts := serve(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), safety)
	defer cancel()
	var wg sync.WaitGroup
	var rounds sync.WaitGroup
	var checked [2]atomic.Int64 // events checked per track
	rounds.Go(func() {
		for round := range 5 {
			bc, err := o.Publish("p", []string{"t.json", "t.z"})
			if err != nil {
				t.Errorf("Publish round %d: %v", round, err)
				return
			}
			b := bc.(*httpstats.Broadcast)
			for i := range 300 {
				_ = b.WriteFrame("t.json", []byte(strconv.Itoa(i)))
				if i%7 == 0 {
					_ = b.WriteFrame("t.z", []byte("s"))
				} else {
					_ = b.AppendFrame("t.z", []byte("d"))
				}
				if i%20 == 0 {
					time.Sleep(time.Millisecond) // let streams attach
				}
			}
			if err := b.Close(); err != nil {
				t.Errorf("Close round %d: %v", round, err)
			}
		}
	})
	for k := range 4 {
		track := []string{"t.json", "t.z"}[k%2]
		wg.Go(func() {
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, "GET", ts.URL+"/stats/"+track, nil)
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Accept", "text/event-stream")
				resp, err := ts.Client().Do(req)
				if err != nil {
					continue // the context ended
				}
				if resp.StatusCode == http.StatusOK {
					checked[k%2].Add(int64(checkStream(t, track, resp.Body)))
				} else {
					time.Sleep(time.Millisecond) // between broadcasts
				}
				resp.Body.Close()
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			resp, err := ts.Client().Get(ts.URL + "/stats/t.z")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	})
	rounds.Wait()
	cancel()
	wg.Wait()
	wantNoStreams(t, o)
	for i, track := range []string{"t.json", "t.z"} {
		if n := checked[i].Load(); n == 0 {
			t.Errorf("%s: no event checked, want streams to have seen frames", track)
		} else {
			t.Logf("%s: %d events checked", track, n)
		}
	}
}

// checkStream reads one stream to its end, checks its ids and returns
// how many it checked.
func checkStream(t *testing.T, track string, body io.Reader) int {
	r := bufio.NewReader(body)
	var prevG, prevF uint64
	has := false
	n := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return n
		}
		idText, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "id: ")
		if !ok {
			continue
		}
		gs, fs, _ := strings.Cut(idText, ".")
		g, err1 := strconv.ParseUint(gs, 10, 64)
		f, err2 := strconv.ParseUint(fs, 10, 64)
		if err1 != nil || err2 != nil {
			t.Errorf("%s: malformed id %q", track, idText)
			return n
		}
		n++
		switch {
		case track == "t.z" && f > 0 && (!has || g != prevG || f != prevF+1):
			t.Errorf("%s: id %d.%d after %d.%d (seen: %v), want a frame after 0 to follow its predecessor", track, g, f, prevG, prevF, has)
		case has && (g < prevG || g == prevG && f <= prevF):
			t.Errorf("%s: id %d.%d after %d.%d, want increasing", track, g, f, prevG, prevF)
		}
		prevG, prevF, has = g, f, true
	}
}

// TestStreamOverHTTP2: streams work over HTTP/2, share one connection,
// and one ending (its client leaving) leaves the other running.
func TestStreamOverHTTP2(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	mux := http.NewServeMux()
	mux.Handle("/stats/", http.StripPrefix("/stats", o))
	ts := httptest.NewUnstartedServer(mux)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(func() {
		o.Shutdown()
		ts.Close()
	})
	b := publish(t, o, "p", "a.json", "b.json")
	write(t, b, "a.json", "a0")
	write(t, b, "b.json", "b0")
	c := ts.Client()
	sa := openStream(t, c, ts.URL+"/stats/a.json")
	sb := openStream(t, c, ts.URL+"/stats/b.json")
	for _, s := range []*sseStream{sa, sb} {
		if s.resp.ProtoMajor != 2 || s.resp.Close {
			t.Fatalf("stream response: HTTP/%d, Close %v; want HTTP/2 and a connection kept open", s.resp.ProtoMajor, s.resp.Close)
		}
	}
	if ev := sa.next(t); ev.Data != "a0" {
		t.Errorf("a.json first event %+v, want a0", ev)
	}
	if ev := sb.next(t); ev.Data != "b0" {
		t.Errorf("b.json first event %+v, want b0", ev)
	}
	sa.close()
	eventually(t, "the HTTP/2 stream whose client left is freed", func() bool { return o.Streams() == 1 })
	write(t, b, "b.json", "b1")
	if ev := sb.next(t); ev.Data != "b1" {
		t.Errorf("b.json after the other stream ended: %+v, want b1", ev)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	sb.wantEnd(t)
	wantNoStreams(t, o)
}
