package moqlite_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/internal/memconn"
	"github.com/moqstats/moqstats/moqlite/internal/wire"
)

// raw serves a session whose client end the test drives byte by byte.
func raw(t *testing.T, srv *moqlite.Server, protocol string) (*memconn.Session, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cs, ss := memconn.Pair(ctx, protocol)
	served := make(chan error, 1)
	go func() { served <- srv.ServeSession(ctx, ss, moqlite.ConnInfo{Transport: "memconn"}) }()
	return cs, served
}

// closedWith waits for the session to end and checks the code it carries.
func closedWith(t *testing.T, cs *memconn.Session, served <-chan error, code uint64) error {
	t.Helper()
	var err error
	select {
	case err = <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("session still open after 10s")
	}
	var se *memconn.SessionError
	if !errors.As(cs.Err(), &se) || se.Code != code {
		t.Fatalf("session ended with %v (ServeSession: %v), want code %d", cs.Err(), err, code)
	}
	return err
}

func send(t *testing.T, w io.Writer, b []byte) {
	t.Helper()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
}

func msg(typ wire.StreamType, body []byte) []byte {
	return wire.AppendMessage(wire.AppendVarint(nil, uint64(typ)), body)
}

// Malformed input from a peer closes its session with CodeProtocol and an
// error wrapping wire.ErrProtocol, counted; it never panics and never
// touches other sessions.
func TestMalformedInputClosesTheSession(t *testing.T) {
	f4, _ := wire.Lookup(wire.Lite04)
	cases := []struct {
		name, protocol string
		uni            bool
		bytes          []byte
	}{
		{"bad varint (cut short)", "moq-lite-04", false, []byte{0x80, 0x01}},
		{"unknown bidi stream type", "moq-lite-04", false, []byte{0x09}},
		{"session stream after the handshake", "moq-lite-03", false, []byte{0x00}},
		{"probe on lite-02", "moql", false, []byte{0x04}},
		{"over-long length", "moq-lite-04", false, append([]byte{0x02}, wire.AppendVarint(nil, 1<<40)...)},
		{"message past the cap", "moq-lite-03", false, append(append([]byte{0x02}, wire.AppendVarint(nil, wire.MaxMessage+1)...), make([]byte, 100)...)},
		{"message cut short", "moq-lite-04", false, append([]byte{0x02, 0x0a}, 1, 2, 3)},
		{"malformed body", "moq-lite-04", false, msg(wire.StreamSubscribe, []byte{0, 1, 0xff, 0, 0})},
		{"trailing bytes in a body", "moq-lite-04", false, msg(wire.StreamSubscribe, append(wire.AppendSubscribe(nil, wire.Subscribe{Broadcast: "x", Track: "y"}, f4), 0))},
		{"data after ANNOUNCE_INTEREST", "moq-lite-04", false, append(msg(wire.StreamAnnounce, wire.AppendAnnounceInterest(nil, wire.AnnounceInterest{}, f4)), 7)},
		{"unknown uni stream type", "moq-lite-04", true, []byte{0x07}},
		{"SETUP stream of the wrong type", "moql", false, []byte{0x02}},
		{"SETUP offering no lite-02", "moql", false, wire.AppendSetupMessage([]byte{0x20}, wire.AppendClientSetup(nil, wire.ClientSetup{Versions: []wire.Version{wire.Lite04}}))},
		{"SETUP body malformed", "moql", false, wire.AppendSetupMessage([]byte{0x20}, []byte{0x05})},
		{"unknown application protocol", "moq-transport-14", false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := moqlite.NewServer(moqlite.ServerConfig{EndLinger: quickLinger})
			if _, err := srv.PublishBroadcast("x", []string{"y"}); err != nil {
				t.Fatal(err)
			}
			other, _, _ := connect(t, srv, "moq-lite-04")
			cs, served := raw(t, srv, c.protocol)
			ctx := timeout(t, 10*time.Second)
			if c.protocol == "moql" && !strings.HasPrefix(c.name, "SETUP") {
				handshake02(t, cs)
			}
			if c.bytes != nil {
				if c.uni {
					st, err := cs.OpenUni(ctx)
					if err != nil {
						t.Fatal(err)
					}
					send(t, st, c.bytes)
					st.Close()
				} else {
					st, err := cs.OpenBidi(ctx)
					if err != nil {
						t.Fatal(err)
					}
					send(t, st, c.bytes)
					st.Close()
				}
			}
			err := closedWith(t, cs, served, moqlite.CodeProtocol)
			if !errors.Is(err, wire.ErrProtocol) {
				t.Fatalf("ServeSession returned %v, want an error wrapping wire.ErrProtocol", err)
			}
			if got := srv.Stats().Refusals.ProtocolErrors; got != 1 {
				t.Fatalf("ProtocolErrors = %d, want 1", got)
			}
			if _, err := other.Subscribe("x", "y"); err != nil {
				t.Fatalf("another session was disturbed: %v", err)
			}
		})
	}
}

// handshake02 runs lite-02's SETUP by hand.
func handshake02(t *testing.T, cs *memconn.Session) {
	t.Helper()
	st, err := cs.OpenBidi(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	send(t, st, wire.AppendSetupMessage([]byte{0x20}, wire.AppendClientSetup(nil, wire.ClientSetup{Versions: []wire.Version{wire.Lite02}})))
	br := bufio.NewReader(st)
	if typ, err := wire.ReadVarint(br); err != nil || typ != 0x21 {
		t.Fatalf("SETUP answer type %#x, %v", typ, err)
	}
	body, err := wire.ReadSetupMessage(br)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := wire.ParseServerSetup(body); err != nil || m.Version != wire.Lite02 {
		t.Fatalf("SERVER_SETUP %+v, %v", m, err)
	}
}

// A peer that does not finish the handshake, or opens a stream and never
// sends its first message, is closed with CodeTimeout after
// HandshakeTimeout, and counted.
func TestHandshakeAndFirstMessageTimeouts(t *testing.T) {
	cases := []struct {
		name, protocol string
		open           []byte // nil: open nothing
	}{
		{"no SETUP stream", "moql", nil},
		{"SETUP stream silent", "moql", []byte{}},
		{"SETUP cut off mid-message", "moql", []byte{0x20, 0x00, 0x10, 0x01}},
		{"stream type never sent", "moq-lite-04", []byte{}},
		{"stream type cut short", "moq-lite-04", []byte{0x40}},
		{"SUBSCRIBE never sent", "moq-lite-03", []byte{0x02}},
		{"SUBSCRIBE never finished", "moq-lite-04", []byte{0x02, 0x20, 0x00}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := moqlite.NewServer(moqlite.ServerConfig{HandshakeTimeout: 50 * time.Millisecond})
			cs, served := raw(t, srv, c.protocol)
			if c.open != nil {
				st, err := cs.OpenBidi(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				send(t, st, c.open)
			}
			err := closedWith(t, cs, served, moqlite.CodeTimeout)
			if !errors.Is(err, moqlite.ErrTimeout) {
				t.Fatalf("ServeSession returned %v, want ErrTimeout", err)
			}
			if got := srv.Stats().Refusals.HandshakeTimeouts; got != 1 {
				t.Fatalf("HandshakeTimeouts = %d, want 1", got)
			}
		})
	}
}

// A session with nothing open for IdleTimeout is closed and counted; one
// with a subscription open is not.
func TestIdleSessionsAreClosed(t *testing.T) {
	srv := moqlite.NewServer(moqlite.ServerConfig{IdleTimeout: 50 * time.Millisecond})
	if _, err := srv.PublishBroadcast("x", []string{"y"}); err != nil {
		t.Fatal(err)
	}
	busy, busyConn, _ := connect(t, srv, "moq-lite-04")
	if _, err := busy.Subscribe("x", "y"); err != nil {
		t.Fatal(err)
	}
	cs, served := raw(t, srv, "moq-lite-03")
	closedWith(t, cs, served, moqlite.CodeTimeout)
	if got := srv.Stats().Refusals.IdleTimeouts; got != 1 {
		t.Fatalf("IdleTimeouts = %d, want 1", got)
	}
	if err := busyConn.Err(); err != nil {
		t.Fatalf("a session with an open subscription was closed: %v", err)
	}
}

// Each cap refuses one past it, with CodeRefused, counts it, and leaves the
// session (or the server) serving what it had.
func TestCapsRefuseAndCount(t *testing.T) {
	srv := moqlite.NewServer(moqlite.ServerConfig{MaxSessions: 1, MaxSubscriptions: 2, MaxAnnounceInterests: 1})
	if _, err := srv.PublishBroadcast("x", []string{"y"}); err != nil {
		t.Fatal(err)
	}
	c, _, _ := connect(t, srv, "moq-lite-04")
	// A subscription served proves the first session is counted.
	if _, err := c.Subscribe("x", "y"); err != nil {
		t.Fatalf("subscription 1 of 2: %v", err)
	}
	cs, served := raw(t, srv, "moq-lite-04")
	if err := closedWith(t, cs, served, moqlite.CodeRefused); !errors.Is(err, moqlite.ErrRefused) {
		t.Fatalf("a session past MaxSessions: %v, want ErrRefused", err)
	}
	if _, err := c.Subscribe("x", "y"); err != nil {
		t.Fatalf("subscription 2 of 2: %v", err)
	}
	if _, err := c.Subscribe("x", "y"); !errors.Is(err, moqlite.ErrRefused) {
		t.Fatalf("a subscription past MaxSubscriptions: %v, want ErrRefused", err)
	}
	a, err := c.Announced("")
	if err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t, 5*time.Second)
	if n, err := a.Next(ctx); err != nil || n.Path != "x" {
		t.Fatalf("first interest: %+v, %v", n, err)
	}
	b, err := c.Announced("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Next(ctx); err == nil {
		t.Fatal("an interest past MaxAnnounceInterests was served")
	}
	st := srv.Stats()
	want := moqlite.Refusals{Sessions: 1, Subscriptions: 1, AnnounceInterests: 1}
	if st.Refusals != want {
		t.Fatalf("Refusals = %+v, want %+v", st.Refusals, want)
	}
	if st.Sessions != 1 {
		t.Fatalf("Sessions = %d, want 1", st.Sessions)
	}
}

// Authorize sees the connection and every path asked for, and what it
// refuses is refused with CodeRefused and counted.
func TestAuthorizeRefusesSessionsAndPaths(t *testing.T) {
	var seen atomic.Value
	srv := moqlite.NewServer(moqlite.ServerConfig{Authorize: func(info moqlite.ConnInfo, req moqlite.Request) error {
		if req.Action != moqlite.ActionConnect {
			seen.Store(req)
		}
		if info.Transport != "memconn" || strings.HasPrefix(req.Path, "secret") {
			return fmt.Errorf("no %s of %q", req.Action, req.Path)
		}
		return nil
	}})
	for _, p := range []string{"open", "secret"} {
		if _, err := srv.PublishBroadcast(p, []string{"t"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs, ss := memconn.Pair(ctx, "moq-lite-04")
	err := srv.ServeSession(ctx, ss, moqlite.ConnInfo{Transport: "stranger"})
	if !errors.Is(err, moqlite.ErrRefused) {
		t.Fatalf("a refused connect: %v, want ErrRefused", err)
	}
	var se *memconn.SessionError
	if !errors.As(cs.Err(), &se) || se.Code != moqlite.CodeRefused {
		t.Fatalf("a refused session ended with %v, want CodeRefused", cs.Err())
	}

	c, _, _ := connect(t, srv, "moq-lite-03")
	if _, err := c.Subscribe("/secret/", "t"); !errors.Is(err, moqlite.ErrRefused) {
		t.Fatalf("a refused subscribe: %v, want ErrRefused", err)
	}
	if got, want := seen.Load(), (moqlite.Request{Action: moqlite.ActionSubscribe, Path: "secret", Track: "t"}); got != want {
		t.Fatalf("Authorize saw %+v, want %+v", got, want)
	}
	if _, err := c.Subscribe("open", "t"); err != nil {
		t.Fatalf("an allowed subscribe: %v", err)
	}
	a, err := c.Announced("secret")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Next(timeout(t, 5*time.Second)); err == nil {
		t.Fatal("a refused announce interest was served")
	}
	if got, want := seen.Load(), (moqlite.Request{Action: moqlite.ActionAnnounced, Path: "secret"}); got != want {
		t.Fatalf("Authorize saw %+v, want %+v", got, want)
	}
	if got := srv.Stats().Refusals.Auth; got != 3 {
		t.Fatalf("Refusals.Auth = %d, want 3", got)
	}
}

// A subscription to an unknown broadcast or track is refused with
// CodeNotFound, and the session goes on.
func TestUnknownBroadcastOrTrackIsNotFound(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			srv := moqlite.NewServer(moqlite.ServerConfig{EndLinger: quickLinger})
			b, err := srv.PublishBroadcast("x", []string{"y"})
			if err != nil {
				t.Fatal(err)
			}
			c, _, _ := connect(t, srv, v.protocol)
			for _, p := range [][2]string{{"nope", "y"}, {"x", "nope"}, {"x/y", "y"}} {
				if _, err := c.Subscribe(p[0], p[1]); !errors.Is(err, moqlite.ErrNotFound) {
					t.Fatalf("subscribe %q %q: %v, want ErrNotFound", p[0], p[1], err)
				}
			}
			sub, err := c.Subscribe("x", "y")
			if err != nil {
				t.Fatalf("the session stopped serving: %v", err)
			}
			b.WriteFrame("y", []byte("f"))
			g, err := sub.NextGroup(timeout(t, 5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if f, err := g.ReadFrame(timeout(t, 5*time.Second)); err != nil || string(f) != "f" {
				t.Fatalf("frame %q, %v", f, err)
			}
			if got := srv.Stats().Refusals.NotFound; got != 3 {
				t.Fatalf("Refusals.NotFound = %d, want 3", got)
			}
		})
	}
}

// A PROBE stream is kept open, never reset: resetting it ends
// @moq/lite's session.
func TestProbeStreamsAreKeptOpen(t *testing.T) {
	for _, proto := range []string{"moq-lite-03", "moq-lite-04"} {
		t.Run(proto, func(t *testing.T) {
			srv := moqlite.NewServer(moqlite.ServerConfig{IdleTimeout: 50 * time.Millisecond})
			cs, served := raw(t, srv, proto)
			st, err := cs.OpenBidi(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			send(t, st, []byte{0x04})
			st.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			var b [1]byte
			if _, err := st.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read on a PROBE stream: %v, want it still open (a deadline)", err)
			}
			select {
			case err := <-served:
				t.Fatalf("a session with a PROBE open ended (idle?): %v", err)
			default:
			}
			st.SetReadDeadline(time.Time{})
			st.Close()
			// The probe ended, so the session is idle now.
			closedWith(t, cs, served, moqlite.CodeTimeout)
		})
	}
}

// A peer opening streams it never writes to is refused past 64 pending
// ones (each reset with CodeRefused and counted), so it cannot hold
// goroutines open without bound; the session goes on.
func TestPendingStreamsAreCapped(t *testing.T) {
	srv := moqlite.NewServer(moqlite.ServerConfig{HandshakeTimeout: time.Minute})
	cs, _ := raw(t, srv, "moq-lite-04")
	ctx := timeout(t, 10*time.Second)
	var refused transportStream
	for range 65 {
		st, err := cs.OpenBidi(ctx)
		if err != nil {
			t.Fatal(err)
		}
		refused = st
	}
	var b [1]byte
	_, err := refused.Read(b[:])
	var se *memconn.StreamError
	if !errors.As(err, &se) || se.Code != moqlite.CodeRefused {
		t.Fatalf("the 65th pending stream: %v, want a reset with CodeRefused", err)
	}
	if got := srv.Stats().Refusals.Streams; got != 1 {
		t.Fatalf("Refusals.Streams = %d, want 1", got)
	}
	if cs.Err() != nil {
		t.Fatalf("the session was closed: %v", cs.Err())
	}
}

type transportStream = interface{ Read([]byte) (int, error) }
