package moqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/internal/memconn"
	"github.com/moqstats/moqstats/moqlite/internal/wire"
)

// dropAtEnd subscribes as @moq/lite 0.2.2 reads a subscription
// (lite/subscriber.js): once it sees the subscribe stream end it closes the
// track, and a frame it has not yet taken from a group stream is dropped.
// Its event loop takes lag to get to each frame a group stream delivers;
// a frame whose lag ends after the subscribe stream's end is dropped, and
// so is the rest of its group. It returns the frames taken per group
// sequence, once the server has ended the subscription and every group
// stream has been read or cut off; first is closed when the first frame
// is taken.
func dropAtEnd(t *testing.T, cs *memconn.Session, track string, groups int, lag time.Duration, first chan<- struct{}) <-chan map[uint64][][]byte {
	f4, _ := wire.Lookup(wire.Lite04)
	st, br := rawSubscribe(t, cs, f4, 0, "x", track)
	ended := make(chan struct{})
	go func() {
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("subscribe stream: %v, want io.EOF", err)
		}
		close(ended)
		st.Close()
	}()
	var (
		mu    sync.Mutex
		taken = map[uint64][][]byte{}
		once  sync.Once
		wg    sync.WaitGroup
	)
	readGroup := func(r io.Reader) {
		defer wg.Done()
		br := bufio.NewReader(r)
		body, err := wire.ReadMessage(br, wire.MaxMessage)
		if err != nil {
			t.Errorf("group header: %v", err)
			return
		}
		h, err := wire.ParseGroup(body)
		if err != nil {
			t.Errorf("group header: %v", err)
			return
		}
		for {
			n, err := wire.ReadVarint(br)
			if err == io.EOF {
				return
			}
			f := make([]byte, n)
			if err == nil {
				_, err = io.ReadFull(br, f)
			}
			if err != nil {
				t.Errorf("group %d: %v", h.Sequence, err)
				return
			}
			time.Sleep(lag)
			select {
			case <-ended:
				return // the track is closed: this frame and the rest are lost
			default:
			}
			mu.Lock()
			taken[h.Sequence] = append(taken[h.Sequence], f)
			mu.Unlock()
			once.Do(func() { close(first) })
		}
	}
	out := make(chan map[uint64][][]byte, 1)
	go func() {
		for range groups {
			us, err := cs.AcceptUni(context.Background())
			if err != nil {
				t.Errorf("accepting a group stream: %v", err)
				break
			}
			var typ [1]byte
			if _, err := io.ReadFull(us, typ[:]); err != nil || typ[0] != wire.UniGroup {
				t.Errorf("group stream type %d, %v", typ[0], err)
				break
			}
			wg.Add(1)
			go readGroup(us)
		}
		wg.Wait()
		<-ended
		out <- taken
	}()
	return out
}

// After Close, the server ends each subscribe stream only EndLinger after
// the subscription's last group stream ended, so a peer that drops what
// it has not read when it sees that end (as @moq/lite does) still gets the
// final frames. Without the linger (the 1ns case) the same peer loses
// them: the model of the peer is strict enough to catch the bug.
func TestEndLingerKeepsTheFinalFramesForAPeerThatDropsAtTheEnd(t *testing.T) {
	const lag = 100 * time.Millisecond // three frames' lag is well under the default EndLinger
	for _, c := range []struct {
		name     string
		linger   time.Duration
		getFinal bool
	}{
		{"default", 0, true},
		{"none", time.Nanosecond, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := moqlite.NewServer(moqlite.ServerConfig{EndLinger: c.linger})
			b, err := srv.PublishBroadcast("x", []string{"y"})
			if err != nil {
				t.Fatal(err)
			}
			// Group 0 exists before the subscription, which so starts at it.
			b.WriteFrame("y", []byte("0.0"))
			cs, _ := raw(t, srv, "moq-lite-04")
			first := make(chan struct{})
			got := dropAtEnd(t, cs, "y", 2, lag, first)
			<-first
			b.AppendFrame("y", []byte("0.1"))
			b.WriteFrame("y", []byte("1.0"))
			b.AppendFrame("y", []byte("1.1"))
			if err := b.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			var taken map[uint64][][]byte
			select {
			case taken = <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("the subscriber did not finish within 10s of Close")
			}
			all := map[uint64][][]byte{0: {[]byte("0.0"), []byte("0.1")}, 1: {[]byte("1.0"), []byte("1.1")}}
			same := len(taken) == len(all)
			for seq, w := range all {
				same = same && slices.EqualFunc(taken[seq], w, bytes.Equal)
			}
			final := len(taken[1]) == 2
			if c.getFinal && !same {
				t.Fatalf("EndLinger %s: the peer took %s, want every frame %s", c.name, fmtGroups(taken), fmtGroups(all))
			}
			if !c.getFinal && final {
				t.Fatalf("with no EndLinger the peer still took the final frame (%s): the model does not drop at the end, so the default case proves nothing", fmtGroups(taken))
			}
		})
	}
}

func fmtGroups(m map[uint64][][]byte) string {
	var s []string
	for seq := range uint64(len(m) + 2) {
		if g, ok := m[seq]; ok {
			s = append(s, fmt.Sprintf("%d:%q", seq, g))
		}
	}
	return fmt.Sprint(s)
}

// An EndLinger past CloseTimeout is cut at CloseTimeout: Close returns
// then, with ErrTimeout for the subscriptions it cut, and they still got
// every frame.
func TestEndLingerEndsWithinCloseTimeout(t *testing.T) {
	srv := moqlite.NewServer(moqlite.ServerConfig{EndLinger: time.Hour, CloseTimeout: 200 * time.Millisecond})
	b, err := srv.PublishBroadcast("x", []string{"y"})
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := connect(t, srv, "moq-lite-04")
	sub, err := c.Subscribe("x", "y")
	if err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t, 10*time.Second)
	got := collect(ctx, sub)
	b.WriteFrame("y", []byte("final"))
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-closed:
		if !errors.Is(err, moqlite.ErrTimeout) {
			t.Fatalf("Close with an EndLinger past CloseTimeout: %v, want ErrTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited out EndLinger (an hour), not CloseTimeout")
	}
	<-got.done
	if got.err != nil || len(got.groups) != 1 || string(got.groups[0][0]) != "final" {
		t.Fatalf("got %q, %v; want the final frame", got.groups, got.err)
	}
}

// A subscription that never got a group has nothing to linger for: Close
// returns once its peer ends its half, not after EndLinger.
func TestEndLingerSkipsSubscriptionsWithoutGroups(t *testing.T) {
	srv := moqlite.NewServer(moqlite.ServerConfig{EndLinger: time.Hour, CloseTimeout: time.Hour})
	b, err := srv.PublishBroadcast("x", []string{"y"})
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := connect(t, srv, "moq-lite-04")
	sub, err := c.Subscribe("x", "y")
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close lingered for a subscription that never got a group")
	}
	if g, err := sub.NextGroup(timeout(t, 10*time.Second)); err != io.EOF {
		t.Fatalf("NextGroup after Close: %v, %v; want io.EOF", g, err)
	}
}

// Shutdown closes its broadcasts at once, so their lingers overlap: with
// n broadcasts it takes about one EndLinger, never the n a close in turn
// would take at the least, and every subscriber gets its final frame.
func TestShutdownLingersOnceForAllBroadcasts(t *testing.T) {
	const n, linger = 4, time.Second
	srv := moqlite.NewServer(moqlite.ServerConfig{EndLinger: linger})
	c, _, _ := connect(t, srv, "moq-lite-04")
	ctx := timeout(t, 30*time.Second)
	var subs []*received
	for i := range n {
		path := fmt.Sprint("b", i)
		b, err := srv.PublishBroadcast(path, []string{"y"})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := c.Subscribe(path, "y")
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, collect(ctx, sub))
		b.WriteFrame("y", []byte(path))
	}
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= n*linger {
		t.Fatalf("Shutdown took %v with %d broadcasts and EndLinger %v: it closed them in turn", d, n, linger)
	}
	for i, r := range subs {
		<-r.done
		if r.err != nil || len(r.groups) != 1 || string(r.groups[0][0]) != fmt.Sprint("b", i) {
			t.Fatalf("subscriber %d got %q, %v; want its final frame", i, r.groups, r.err)
		}
	}
}
