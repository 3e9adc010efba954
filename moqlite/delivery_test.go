package moqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/internal/memconn"
	"github.com/moqstats/moqstats/moqlite/internal/wire"
	"github.com/moqstats/moqstats/moqlite/transport"
)

// rawSubscribe subscribes by hand and reads SUBSCRIBE_OK, leaving the
// group streams to the test.
func rawSubscribe(t *testing.T, cs *memconn.Session, f wire.Features, id uint64, broadcast, track string) (transport.BidiStream, *bufio.Reader) {
	t.Helper()
	st, err := cs.OpenBidi(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	send(t, st, msg(wire.StreamSubscribe, wire.AppendSubscribe(nil, wire.Subscribe{ID: id, Broadcast: broadcast, Track: track}, f)))
	br := bufio.NewReader(st)
	if f.TypedSubscribeResponse {
		if typ, err := wire.ReadVarint(br); err != nil || typ != wire.ResponseOk {
			t.Fatalf("response type %d, %v", typ, err)
		}
	}
	if _, err := wire.ReadMessage(br, wire.MaxMessage); err != nil {
		t.Fatal(err)
	}
	return st, br
}

// rawGroup reads one group stream: its header and frames until its end.
func rawGroup(st io.Reader) (wire.Group, [][]byte, error) {
	br := bufio.NewReader(st)
	if b, err := br.ReadByte(); err != nil || b != wire.UniGroup {
		if err == nil {
			err = fmt.Errorf("stream type %d", b)
		}
		return wire.Group{}, nil, err
	}
	body, err := wire.ReadMessage(br, wire.MaxMessage)
	if err != nil {
		return wire.Group{}, nil, err
	}
	h, err := wire.ParseGroup(body)
	if err != nil {
		return h, nil, err
	}
	var frames [][]byte
	for {
		n, err := wire.ReadVarint(br)
		if err == io.EOF {
			return h, frames, nil
		}
		if err != nil {
			return h, frames, err
		}
		f := make([]byte, n)
		if _, err := io.ReadFull(br, f); err != nil {
			return h, frames, err
		}
		frames = append(frames, f)
	}
}

// A subscriber that stops reading never blocks the producer or another
// subscriber: past MaxQueuedBytes it skips to the latest group, and when
// it reads again it gets that group whole, then the final one.
func TestSlowSubscriberSkipsToTheLatestGroupWithoutBlocking(t *testing.T) {
	const frameSize = 16 << 10
	srv := moqlite.NewServer(moqlite.ServerConfig{MaxQueuedBytes: 4 * frameSize, EndLinger: quickLinger})
	b, err := srv.PublishBroadcast("x", []string{"y"})
	if err != nil {
		t.Fatal(err)
	}
	f4, _ := wire.Lookup(wire.Lite04)
	slow, _ := raw(t, srv, "moq-lite-04")
	slowSt, slowBr := rawSubscribe(t, slow, f4, 9, "x", "y")
	fast, _, _ := connect(t, srv, "moq-lite-04")
	fastSub, err := fast.Subscribe("x", "y")
	if err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t, 20*time.Second)

	// 200 groups of 3 frames, 9.6 MB: far past the slow peer's window
	// (memconn.Window) and its MaxQueuedBytes. Every write returns.
	frame := func(g, i int) []byte {
		f := bytes.Repeat([]byte{byte(g)}, frameSize)
		copy(f, fmt.Sprintf("%d/%d", g, i))
		return f
	}
	// The fast subscriber reads each group as it is written: it is never
	// held up by the slow one.
	var want [][][]byte
	var prev *moqlite.Group
	for g := range 200 {
		var group [][]byte
		for i := range 3 {
			f := frame(g, i)
			group = append(group, f)
			write := b.AppendFrame
			if i == 0 {
				write = b.WriteFrame
			}
			if err := write("y", f); err != nil {
				t.Fatal(err)
			}
		}
		want = append(want, group)
		if prev != nil {
			if _, err := prev.ReadFrame(ctx); err != io.EOF {
				t.Fatalf("fast subscriber: group %d ended with %v, want io.EOF", prev.Sequence, err)
			}
		}
		fg, err := fastSub.NextGroup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fg.Sequence != uint64(g) {
			t.Fatalf("fast subscriber: group %d, want %d", fg.Sequence, g)
		}
		for i := range 3 {
			f, err := fg.ReadFrame(ctx)
			if err != nil || !bytes.Equal(f, group[i]) {
				t.Fatalf("fast subscriber: group %d frame %d differs (%v)", g, i, err)
			}
		}
		prev = fg
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()

	// The slow peer reads now: a few groups, the last of them the final
	// one, whole; the ones cut off were reset, not ended as if complete.
	var seqs []uint64
	for {
		st, err := slow.AcceptUni(ctx)
		if err != nil {
			t.Fatal(err)
		}
		h, frames, err := rawGroup(st)
		if err != nil {
			var se *memconn.StreamError
			if !errors.As(err, &se) || se.Code != moqlite.CodeSkipped {
				t.Fatalf("group %d cut off with %v, want a reset with CodeSkipped", h.Sequence, err)
			}
			continue
		}
		seqs = append(seqs, h.Sequence)
		if h.Sequence > 199 || !slices.EqualFunc(frames, want[h.Sequence], bytes.Equal) {
			t.Fatalf("group %d arrived with %d frames that differ from those written", h.Sequence, len(frames))
		}
		if h.Sequence == 199 {
			break
		}
	}
	// The server ends the subscription after the final group; the peer
	// ends its half, which Close waits for.
	if _, err := slowBr.ReadByte(); err != io.EOF {
		t.Fatalf("subscribe stream after the final group: %v, want io.EOF", err)
	}
	slowSt.Close()
	if len(seqs) > 20 {
		t.Fatalf("the slow subscriber got %d whole groups of 200, want it to skip", len(seqs))
	}
	if _, err := prev.ReadFrame(ctx); err != io.EOF {
		t.Fatalf("fast subscriber: the final group ended with %v, want io.EOF", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Counted when the writer skips: once its blocked write returns.
	if srv.Stats().GroupsSkipped == 0 {
		t.Fatal("no group skipped for a subscriber that read nothing")
	}
}

// Close waits for each subscriber to be sent the final frames and to end
// its half, within CloseTimeout: a peer that never does costs Close at
// most that, reported as ErrTimeout, while the others get everything.
func TestCloseWaitsForSubscribersWithinCloseTimeout(t *testing.T) {
	srv := moqlite.NewServer(moqlite.ServerConfig{CloseTimeout: 300 * time.Millisecond, EndLinger: quickLinger})
	b, err := srv.PublishBroadcast("x", []string{"y"})
	if err != nil {
		t.Fatal(err)
	}
	f3, _ := wire.Lookup(wire.Lite03)
	stuck, _ := raw(t, srv, "moq-lite-03")
	rawSubscribe(t, stuck, f3, 0, "x", "y")
	var subs []*received
	ctx := timeout(t, 10*time.Second)
	for _, v := range versions {
		c, _, _ := connect(t, srv, v.protocol)
		sub, err := c.Subscribe("x", "y")
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, collect(ctx, sub))
	}
	b.WriteFrame("y", []byte("first"))
	b.AppendFrame("y", []byte("final"))
	err = b.Close()
	if !errors.Is(err, moqlite.ErrTimeout) {
		t.Fatalf("Close with a peer that never ends its half: %v, want ErrTimeout", err)
	}
	for i, r := range subs {
		<-r.done
		if r.err != nil {
			t.Fatal(r.err)
		}
		if len(r.groups) != 1 || string(r.groups[0][1]) != "final" {
			t.Fatalf("subscriber %d got %q, want the final frame", i, r.groups)
		}
	}
}

// Shutdown closes the broadcasts still published (their subscribers get
// the final frames), then the sessions, and refuses new sessions.
func TestShutdownDeliversFinalFramesThenClosesSessions(t *testing.T) {
	srv := moqlite.NewServer(moqlite.ServerConfig{EndLinger: quickLinger})
	b, err := srv.PublishBroadcast("x", []string{"y"})
	if err != nil {
		t.Fatal(err)
	}
	c, cs, served := connect(t, srv, "moq-lite-04")
	sub, err := c.Subscribe("x", "y")
	if err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t, 10*time.Second)
	got := collect(ctx, sub)
	b.WriteFrame("y", []byte("last"))
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-got.done
	if got.err != nil || len(got.groups) != 1 || string(got.groups[0][0]) != "last" {
		t.Fatalf("got %q, %v; want the last frame", got.groups, got.err)
	}
	closedWith(t, cs, served, moqlite.CodeShutdown)
	late, lateServed := raw(t, srv, "moq-lite-04")
	if err := closedWith(t, late, lateServed, moqlite.CodeShutdown); !errors.Is(err, moqlite.ErrServerClosed) {
		t.Fatalf("a session after Shutdown: %v, want ErrServerClosed", err)
	}
	if _, err := srv.Publish("z", []string{"y"}); !errors.Is(err, moqlite.ErrServerClosed) {
		t.Fatalf("Publish after Shutdown: %v, want ErrServerClosed", err)
	}
}

// An announce interest gets every broadcast under its prefix (by whole
// segments), the publish of later ones and the unannounce of closed ones,
// on every version.
func TestAnnounceInterestFollowsBroadcastsUnderItsPrefix(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			srv := moqlite.NewServer(moqlite.ServerConfig{EndLinger: quickLinger})
			pub := func(p string) *moqlite.Broadcast {
				b, err := srv.PublishBroadcast(p, []string{"t"})
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			a1, a2 := pub("a/1"), pub("a/2")
			pub("ab/3")
			pub("b")
			c, _, _ := connect(t, srv, v.protocol)
			ann, err := c.Announced("/a/")
			if err != nil {
				t.Fatal(err)
			}
			ctx := timeout(t, 10*time.Second)
			next := func() moqlite.Announcement {
				t.Helper()
				n, err := ann.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			if got := []moqlite.Announcement{next(), next()}; !slices.Equal(got, []moqlite.Announcement{{"a/1", true}, {"a/2", true}}) {
				t.Fatalf("initial announces %+v", got)
			}
			pub("a/3/deep")
			pub("c")
			a1.Close()
			a2.Close()
			want := []moqlite.Announcement{{"a/3/deep", true}, {"a/1", false}, {"a/2", false}}
			for _, w := range want {
				if got := next(); got != w {
					t.Fatalf("announce %+v, want %+v", got, w)
				}
			}
		})
	}
}
