package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/follow"
	"github.com/moqstats/moqstats/moqlite/transport"
	"github.com/moqstats/moqstats/moqlite/wsconn"
)

// sentGroup is a group as publish.mjs wrote it, and as a subscriber of
// the relay must read it.
type sentGroup struct {
	Sequence uint64
	Frames   [][]byte
}

// collector reads every group of a subscription, in order, until it ends.
type collector struct {
	mu     sync.Mutex
	groups []sentGroup
	frames int
	err    error // why a group or the subscription ended badly
	done   chan struct{}
}

func collect(ctx context.Context, sub *moqlite.Subscription) *collector {
	c := &collector{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			g, err := sub.NextGroup(ctx)
			if err != nil {
				if err != io.EOF {
					c.setErr(fmt.Errorf("subscription ended with %w", err))
				}
				return
			}
			c.mu.Lock()
			c.groups = append(c.groups, sentGroup{Sequence: g.Sequence})
			c.mu.Unlock()
			for {
				f, err := g.ReadFrame(ctx)
				if err == io.EOF {
					break
				}
				if err != nil {
					c.setErr(fmt.Errorf("group %d cut off: %w", g.Sequence, err))
					break
				}
				c.mu.Lock()
				last := &c.groups[len(c.groups)-1]
				last.Frames = append(last.Frames, f)
				c.frames++
				c.mu.Unlock()
			}
		}
	}()
	return c
}

func (c *collector) setErr(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames
}

func (c *collector) result() ([]sentGroup, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups, c.err
}

// @moq/lite in Node, on every framing and version, publishes a broadcast
// into a moqlite Server with Ingest: a Go client reading the relayed
// broadcast through the server gets every frame, in order, in the groups
// and with the sequences the JavaScript side gave them (several groups,
// one written frame by frame, a sequence skipped, a group after a pause);
// and once the Node side closes its broadcast, or its tracks, the relay
// ends: each subscription after its final frames, and the broadcast is
// unannounced.
func TestNodePublishesIntoTheServer(t *testing.T) {
	argv := requireNode(t)
	for _, c := range cases {
		for _, end := range []string{"closeBroadcast", "closeTrack"} {
			name := c.framing + "/" + strings.TrimPrefix(c.version, "moq-") + "/" + end
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				testNodePublishes(t, argv, c.framing, c.protocol, c.version, end)
			})
		}
	}
}

func testNodePublishes(t *testing.T, argv []string, framing, protocol, version, end string) {
	const (
		prefix    = "nodes"
		broadcast = "nodes/js"
	)
	tracks := []string{"a.json", "b.json"}
	srv := moqlite.NewServer(moqlite.ServerConfig{
		// The server also asks for a track the Node side does not
		// publish, which @moq/lite can refuse only by resetting the
		// subscription after SUBSCRIBE_OK: that track ends, not the
		// broadcast.
		Ingest: &moqlite.IngestConfig{Prefix: prefix, Tracks: append(tracks[:len(tracks):len(tracks)], "absent.json")},
	})
	mux := http.NewServeMux()
	mux.Handle("/moq", srv.WebSocketHandler())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	t.Cleanup(func() { srv.Close() })
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/moq"

	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	t.Cleanup(cancel)

	// The reader: a Go client of the server, over WebSocket too.
	sess, err := wsconn.Dial(ctx, url, wsconn.Config{Protocols: []string{"moq-lite-04"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := moqlite.NewClient(ctx, sess, moqlite.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	ann, err := reader.Announced(prefix)
	if err != nil {
		t.Fatal(err)
	}

	node := startPublisher(t, argv, url, framing, protocol, version, broadcast, tracks)

	// The relayed broadcast is announced once the server holds its
	// subscriptions; the reader's are in place before any group.
	if a, err := ann.Next(ctx); err != nil || a.Path != broadcast || !a.Active {
		t.Fatalf("announce %+v, %v; want %s active", a, err, broadcast)
	}
	readers := map[string]*collector{}
	for _, name := range tracks {
		sub, err := reader.Subscribe(broadcast, name)
		if err != nil {
			t.Fatalf("subscribing to the relayed %s: %v", name, err)
		}
		readers[name] = collect(ctx, sub)
	}

	sent := map[string][]sentGroup{}
	frameNo := 0
	frames := func(track string, seq uint64, n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i], _ = json.Marshal(map[string]any{"track": track, "group": seq, "n": frameNo})
			frameNo++
		}
		return out
	}
	do := func(cmd map[string]any) {
		t.Helper()
		node.send(cmd)
		node.expect("done")
	}
	// group writes a group of n frames, left open when open is set.
	group := func(track string, seq uint64, n int, open bool) {
		t.Helper()
		f := frames(track, seq, n)
		sent[track] = append(sent[track], sentGroup{Sequence: seq, Frames: f})
		do(map[string]any{"op": "group", "track": track, "sequence": seq, "frames": f, "open": open})
	}
	// appendFrames adds n frames to the track's open group.
	appendFrames := func(track string, n int, close bool) {
		t.Helper()
		g := &sent[track][len(sent[track])-1]
		f := frames(track, g.Sequence, n)
		g.Frames = append(g.Frames, f...)
		do(map[string]any{"op": "append", "track": track, "frames": f, "close": close})
	}
	caughtUp := func() {
		t.Helper()
		for _, name := range tracks {
			want := 0
			for _, g := range sent[name] {
				want += len(g.Frames)
			}
			deadline := time.Now().Add(nodeTimeout)
			for readers[name].count() < want {
				if time.Now().After(deadline) {
					got, err := readers[name].result()
					t.Fatalf("%s: the reader has %v (%v), want %d frames\nnode's stderr:\n%s", name, got, err, want, node.stderr)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}

	// A burst: groups of one and of several frames, back to back.
	group("a.json", 0, 1, false)
	group("b.json", 0, 3, false)
	group("a.json", 1, 4, false)
	group("a.json", 2, 2, false)
	group("b.json", 1, 1, false)
	// A group written frame by frame while the other track goes on.
	group("a.json", 3, 1, true)
	group("b.json", 2, 2, false)
	appendFrames("a.json", 2, false)
	appendFrames("a.json", 1, true)
	caughtUp()
	// After a pause, a late group, with sequences skipped as the
	// publisher numbered them.
	time.Sleep(100 * time.Millisecond)
	group("a.json", 7, 3, false)
	group("b.json", 5, 1, false)
	caughtUp()
	// The final groups, and the end right after them.
	group("a.json", 8, 2, false)
	group("b.json", 6, 1, true)
	appendFrames("b.json", 2, true)
	switch end {
	case "closeBroadcast":
		do(map[string]any{"op": "closeBroadcast"})
	case "closeTrack":
		for _, name := range tracks {
			do(map[string]any{"op": "closeTrack", "track": name})
		}
	}

	// Every step takes well under a second; the end takes EndLinger twice
	// (the server's relay, then its subscription to the reader).
	endBy := time.After(10 * time.Second)
	for _, name := range tracks {
		r := readers[name]
		select {
		case <-r.done:
		case <-endBy:
			got, _ := r.result()
			t.Fatalf("%s: the relayed subscription did not end after the Node side's %s; it holds %d groups\nnode's stderr:\n%s", name, end, len(got), node.stderr)
		}
		got, err := r.result()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, sent[name]) {
			t.Errorf("%s: the reader got\n%s\nwant what @moq/lite sent\n%s", name, dump(got), dump(sent[name]))
		}
	}
	if a, err := ann.Next(ctx); err != nil || a.Path != broadcast || a.Active {
		t.Fatalf("announce %+v, %v; want %s ended after the Node side's %s", a, err, broadcast, end)
	}
	if st := srv.Stats(); st.Refusals != (moqlite.Refusals{}) {
		t.Errorf("the server refused %+v, want nothing", st.Refusals)
	}
	node.send(map[string]string{"op": "exit"})
	node.expect("done")
}

// startPublisher runs publish.mjs, publishing broadcast with tracks at
// url, and returns once the server subscribed to each track.
func startPublisher(t *testing.T, argv []string, url, framing, protocol, version, broadcast string, tracks []string) *nodeProc {
	t.Helper()
	node := startNode(t, argv, "publish.mjs")
	node.send(map[string]any{"url": url, "framing": framing, "protocol": protocol, "broadcast": broadcast, "tracks": tracks})
	if got := node.expect("connected").Version; got != version {
		t.Fatalf("@moq/lite negotiated %q, want %q", got, version)
	}
	requested := map[string]int{}
	for range tracks {
		requested[node.expect("requested").Track]++
	}
	for _, name := range tracks {
		if requested[name] != 1 {
			t.Fatalf("the server subscribed %v, want each of %q once", requested, tracks)
		}
	}
	return node
}

func dump(gs []sentGroup) string {
	var b strings.Builder
	for _, g := range gs {
		fmt.Fprintf(&b, "  group %d:", g.Sequence)
		for _, f := range g.Frames {
			fmt.Fprintf(&b, " %s", f)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Stats frames published by @moq/lite into a Server with Ingest at its
// defaults (every plain track and its ".z" sibling, which the Node side
// does not publish and so refuses) reach a follow.Cluster on that server:
// its Aggregator's totals for the node are the traffic the frames counted,
// and once the Node side closes its broadcast, the node's tracks end.
func TestNodePublishedStatsReachAFollower(t *testing.T) {
	argv := requireNode(t)
	// The framings and versions are TestNodePublishesIntoTheServer's
	// concern; here the two ends of the list.
	for _, c := range []int{0, len(cases) - 1} {
		c := cases[c]
		t.Run(c.framing+"/"+strings.TrimPrefix(c.version, "moq-"), func(t *testing.T) {
			t.Parallel()
			testStatsToFollower(t, argv, c.framing, c.protocol, c.version)
		})
	}
}

func testStatsToFollower(t *testing.T, argv []string, framing, protocol, version string) {
	// The frames: a node's Stats, its groups recorded as written.
	rec := &tee{srv: moqlite.NewServer(moqlite.ServerConfig{}), written: map[string][][][]byte{}}
	t.Cleanup(func() { rec.srv.Close() })
	stats, err := moqstats.New(moqstats.Config{Origin: rec, Node: "js", Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stats.Close() })
	track := stats.Tier(moqstats.External).Broadcast("live/a").PublisherTrack("video")
	var want consumer.Traffic
	for i := range uint64(5) {
		track.Bytes(100 * (i + 1))
		track.Frame()
		want.Bytes += 100 * (i + 1)
		want.Frames++
		if i%2 == 0 {
			track.Group()
			want.Groups++
		}
		if err := stats.Flush(); err != nil {
			t.Fatal(err)
		}
	}

	srv := moqlite.NewServer(moqlite.ServerConfig{Ingest: &moqlite.IngestConfig{}})
	hs := httptest.NewServer(srv.WebSocketHandler())
	t.Cleanup(hs.Close)
	t.Cleanup(func() { srv.Close() })
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/"

	agg, err := consumer.New(consumer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan error, 1)
	go func() {
		followed <- follow.Cluster(ctx, agg, func(ctx context.Context) (transport.Session, error) {
			return wsconn.Dial(ctx, url, wsconn.Config{Protocols: []string{"moq-lite-04"}}, nil)
		}, follow.Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		<-followed
	})

	node := startPublisher(t, argv, url, framing, protocol, version, stats.Path(), stats.Tracks())
	for _, name := range stats.Tracks() {
		for seq, frames := range rec.groups(name) {
			// The sequences the node's Server gave them, from 0.
			node.send(map[string]any{"op": "group", "track": name, "sequence": seq, "frames": frames})
			node.expect("done")
		}
	}

	// row is the node's publisher row for live/a, and whether its track
	// ended.
	row := func() (consumer.Traffic, bool) {
		v := agg.View(time.Now())
		var total consumer.Traffic
		for _, r := range v.Broadcasts {
			if r.Node == "js" && r.Broadcast == "live/a" && r.Track.Name() == moqstats.TrackPublisher {
				total = r.Total
			}
		}
		for _, tr := range v.Tracks {
			if tr.Node == "js" && tr.Track.Name() == moqstats.TrackPublisher {
				return total, tr.Ended
			}
		}
		return total, false
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				got, ended := row()
				t.Fatalf("%s: the follower has %+v (ended %v), want %+v\nnode's stderr:\n%s", what, got, ended, want, node.stderr)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	same := func(got consumer.Traffic) bool {
		return got.Bytes == want.Bytes && got.Frames == want.Frames && got.Groups == want.Groups
	}
	waitFor("the frames published", func() bool { got, _ := row(); return same(got) })
	node.send(map[string]string{"op": "closeBroadcast"})
	node.expect("done")
	waitFor("the broadcast closed", func() bool { got, ended := row(); return ended && same(got) })
	node.send(map[string]string{"op": "exit"})
	node.expect("done")
}
