package moqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/internal/memconn"
)

// versions are the application protocols a session can start with, one per
// moq-lite version: "moql" has SETUP choose lite-02.
var versions = []struct{ name, protocol string }{
	{"lite-02", "moql"},
	{"lite-03", "moq-lite-03"},
	{"lite-04", "moq-lite-04"},
}

// connect serves a memconn session on srv and returns a client on it,
// with the error ServeSession returned arriving on served.
func connect(t *testing.T, srv *moqlite.Server, protocol string) (*moqlite.Client, *memconn.Session, <-chan error) {
	t.Helper()
	return connectWith(t, srv, protocol, moqlite.ClientConfig{HandshakeTimeout: 5 * time.Second})
}

// connectWith is connect with the client configured by cfg.
func connectWith(t *testing.T, srv *moqlite.Server, protocol string, cfg moqlite.ClientConfig) (*moqlite.Client, *memconn.Session, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cs, ss := memconn.Pair(ctx, protocol)
	served := make(chan error, 1)
	go func() { served <- srv.ServeSession(ctx, ss, moqlite.ConnInfo{Transport: "memconn"}) }()
	c, err := moqlite.NewClient(ctx, cs, cfg)
	if err != nil {
		t.Fatalf("NewClient over %q: %v", protocol, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, cs, served
}

// readGroup reads every frame of g until its end.
func readGroup(ctx context.Context, g *moqlite.Group) ([][]byte, error) {
	var frames [][]byte
	for {
		f, err := g.ReadFrame(ctx)
		if err != nil {
			return frames, err
		}
		frames = append(frames, f)
	}
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// quickLinger is the EndLinger of tests whose subscribers are the Go
// client, which takes group streams after the end itself
// (ClientConfig.EndLinger), or read every group before the end: the
// server's linger protects peers that do not, and would only slow these
// tests down. TestEndLingerKeepsTheFinalFramesForAPeerThatDropsAtTheEnd
// and the interop package run with the default.
const quickLinger = 10 * time.Millisecond
