package wsconn_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite/transport"
	"github.com/moqstats/moqstats/moqlite/transport/transporttest"
	"github.com/moqstats/moqstats/moqlite/wsconn"
)

// serve starts a loopback HTTP server whose sessions are handed to the
// returned channel, and returns its ws:// URL.
func serve(t *testing.T, cfg wsconn.Config) (string, <-chan *wsconn.Session) {
	t.Helper()
	ch := make(chan *wsconn.Session, 16)
	srv := httptest.NewServer(wsconn.Handler(cfg, func(s *wsconn.Session, _ *http.Request) {
		ch <- s
		<-s.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), ch
}

func pairFor(cfg wsconn.Config) transporttest.Pair {
	return func(t *testing.T) (transport.Session, transport.Session) {
		url, ch := serve(t, cfg)
		c, err := wsconn.Dial(context.Background(), url, cfg, nil)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		var s *wsconn.Session
		select {
		case s = <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("no server session")
		}
		t.Cleanup(func() { c.CloseWithError(0, ""); s.CloseWithError(0, "") })
		return c, s
	}
}

func TestTransportWebTransportFraming(t *testing.T) {
	transporttest.Run(t, pairFor(wsconn.Config{Protocols: []string{"moq-lite-04"}, Framings: []wsconn.Framing{wsconn.FramingWebTransport}}))
}

func TestTransportQMuxFraming(t *testing.T) {
	transporttest.Run(t, pairFor(wsconn.Config{Protocols: []string{"moq-lite-04"}, Framings: []wsconn.Framing{wsconn.FramingQMux}}))
}

// Small windows make every write wait for credit, so the qmux-00 credit
// loop (MAX_STREAM_DATA, MAX_DATA, MAX_STREAMS) carries the whole suite.
func TestTransportQMuxFramingTinyCredit(t *testing.T) {
	transporttest.Run(t, pairFor(wsconn.Config{
		Framings:           []wsconn.Framing{wsconn.FramingQMux},
		StreamWindow:       3000,
		SessionWindow:      9000,
		MaxIncomingStreams: 4,
	}))
}

// With windows far below what the suite writes, the webtransport framing
// (no credit) must pause reading instead of buffering or failing.
func TestTransportWebTransportFramingTinyWindows(t *testing.T) {
	transporttest.Run(t, pairFor(wsconn.Config{
		Framings:      []wsconn.Framing{wsconn.FramingWebTransport},
		StreamWindow:  3000,
		SessionWindow: 9000,
	}))
}
