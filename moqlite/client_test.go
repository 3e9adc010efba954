package moqlite_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/internal/memconn"
	"github.com/moqstats/moqstats/moqlite/internal/wire"
)

// rawServer answers a Client's first SUBSCRIBE with SUBSCRIBE_OK and hands
// the test the session, to send what it likes.
func rawServer(t *testing.T, cfg moqlite.ClientConfig) (*moqlite.Client, *moqlite.Subscription, *memconn.Session) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cs, ss := memconn.Pair(ctx, "moq-lite-04")
	f, _, _ := wire.ByProtocol("moq-lite-04")
	go func() {
		st, err := ss.AcceptBidi(ctx)
		if err != nil {
			return
		}
		st.Write(wire.AppendSubscribeOk(nil, wire.SubscribeOk{}, f))
	}()
	c, err := moqlite.NewClient(ctx, cs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sub, err := c.Subscribe("b", "t")
	if err != nil {
		t.Fatal(err)
	}
	return c, sub, ss
}

// A group the reader does not read holds at most MaxGroupBytes (and a
// frame): past it the client stops reading, and the server's writes wait
// on flow control. Read, every frame arrives, in order.
func TestUnreadGroupHoldsAtMostMaxGroupBytes(t *testing.T) {
	const limit, frame, frames = 64 << 10, 16 << 10, 256 // 4 MiB sent
	_, sub, ss := rawServer(t, moqlite.ClientConfig{MaxGroupBytes: limit})
	st, err := ss.OpenUni(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan int, 1)
	go func() {
		n := 0
		defer func() { sent <- n }()
		if _, err := st.Write(wire.AppendGroupStream(nil, wire.Group{Subscribe: 0, Sequence: 0})); err != nil {
			return
		}
		for i := range frames {
			payload := bytes.Repeat([]byte{byte(i)}, frame)
			if _, err := st.Write(append(wire.AppendFrameHeader(nil, frame), payload...)); err != nil {
				return
			}
			n++
		}
		st.Close()
	}()
	ctx := timeout(t, 20*time.Second)
	g, err := sub.NextGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Give the sender every chance to overrun the limit.
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	time.Sleep(200 * time.Millisecond)
	select {
	case n := <-sent:
		t.Fatalf("all %d frames sent to a reader that read none: nothing held the server back", n)
	default:
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
		t.Fatalf("the heap grew %d bytes while a group went unread, want at most about MaxGroupBytes (%d)", grew, limit)
	}
	for i := range frames {
		f, err := g.ReadFrame(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if len(f) != frame || f[0] != byte(i) {
			t.Fatalf("frame %d: %d bytes of %d, want %d of %d", i, len(f), f[0], frame, byte(i))
		}
	}
	if _, err := g.ReadFrame(ctx); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// Stop ends a group for its reader: ReadFrame returns ErrClosed, and the
// server's stream is stopped.
func TestStopEndsAGroup(t *testing.T) {
	_, sub, ss := rawServer(t, moqlite.ClientConfig{})
	st, err := ss.OpenUni(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.Write(wire.AppendGroupStream(nil, wire.Group{Subscribe: 0, Sequence: 3}))
	st.Write(append(wire.AppendFrameHeader(nil, 1), 'x'))
	ctx := timeout(t, 10*time.Second)
	g, err := sub.NextGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g.Stop()
	if _, err := g.ReadFrame(ctx); !errors.Is(err, moqlite.ErrClosed) {
		t.Fatalf("ReadFrame after Stop: %v, want ErrClosed", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := st.Write([]byte{1, 'y'})
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server's stream was not stopped")
		}
		time.Sleep(time.Millisecond)
	}
}

// A server that breaks the protocol toward a client closes the client's
// session with an error: the reader gets an error, never a panic, and no
// frame past MaxFrame.
func TestClientRefusesAHostileServer(t *testing.T) {
	group := func(frames ...[]byte) []byte {
		b := wire.AppendGroupStream(nil, wire.Group{Subscribe: 0, Sequence: 0})
		for _, f := range frames {
			b = append(wire.AppendFrameHeader(b, len(f)), f...)
		}
		return b
	}
	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"a frame past MaxFrame", group(make([]byte, 1025))},
		{"a frame length past any cap", append(wire.AppendGroupStream(nil, wire.Group{}), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
		{"an unknown uni stream type", []byte{0x5, 0x1, 0x0}},
		{"a group header past the message cap", append([]byte{wire.UniGroup}, wire.AppendVarint(nil, wire.MaxMessage+1)...)},
		{"a group header with trailing bytes", []byte{wire.UniGroup, 0x3, 0x0, 0x0, 0x0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, sub, ss := rawServer(t, moqlite.ClientConfig{MaxFrame: 1024})
			st, err := ss.OpenUni(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			st.Write(tc.bytes)
			st.Close()
			ctx := timeout(t, 10*time.Second)
			for {
				g, err := sub.NextGroup(ctx)
				if err != nil {
					if ctx.Err() != nil {
						t.Fatal("the subscription never ended")
					}
					break
				}
				for {
					f, err := g.ReadFrame(ctx)
					if err != nil {
						break
					}
					if len(f) > 1024 {
						t.Fatalf("a frame of %d bytes reached the reader", len(f))
					}
				}
			}
			select {
			case <-ss.Context().Done():
			case <-ctx.Done():
				t.Fatal("the client did not close the session")
			}

		})
	}
}
