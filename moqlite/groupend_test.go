package moqlite_test

import (
	"io"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/wsconn"
)

// A group written longer than WriteTimeout ago (an idle track, or passes
// further apart than that) still ends whole when the next group starts:
// its stream's write deadline, set for its last frame, must not keep its
// end from being sent. A subscriber that reads groups one after the other
// would otherwise wait on that group forever.
func TestGroupOlderThanWriteTimeoutEndsWhole(t *testing.T) {
	transports := []struct {
		name string
		dial dialer
	}{
		{"websocket", wsDialer(wsconn.FramingWebTransport)},
		{"qmux", wsDialer(wsconn.FramingQMux)},
		{"quic", quicDialer},
		{"webtransport", webTransportDialer},
	}
	const writeTimeout = 100 * time.Millisecond
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			srv := moqlite.NewServer(moqlite.ServerConfig{WriteTimeout: writeTimeout, CloseTimeout: time.Minute})
			defer srv.Close()
			b, err := srv.PublishBroadcast("s", []string{"t"})
			if err != nil {
				t.Fatal(err)
			}
			ctx := timeout(t, 30*time.Second)
			c, err := moqlite.NewClient(ctx, tr.dial(t, srv, "moq-lite-04"), moqlite.ClientConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sub, err := c.Subscribe("s", "t")
			if err != nil {
				t.Fatal(err)
			}
			if err := b.WriteFrame("t", []byte("g0")); err != nil {
				t.Fatal(err)
			}
			g0, err := sub.NextGroup(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if f, err := g0.ReadFrame(ctx); err != nil || string(f) != "g0" {
				t.Fatalf("group 0: got %q, %v; want \"g0\"", f, err)
			}
			time.Sleep(3 * writeTimeout)
			if err := b.WriteFrame("t", []byte("g1")); err != nil {
				t.Fatal(err)
			}
			if f, err := g0.ReadFrame(ctx); err != io.EOF {
				t.Fatalf("group 0 after group 1 started: got %q, %v; want io.EOF, the group whole", f, err)
			}
			g1, err := sub.NextGroup(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if f, err := g1.ReadFrame(ctx); err != nil || string(f) != "g1" {
				t.Fatalf("group 1: got %q, %v; want \"g1\"", f, err)
			}
		})
	}
}
