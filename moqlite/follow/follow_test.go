package follow_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/follow"
	"github.com/moqstats/moqstats/moqlite/internal/memconn"
	"github.com/moqstats/moqstats/moqlite/quicconn"
	"github.com/moqstats/moqstats/moqlite/transport"
	"github.com/moqstats/moqstats/moqlite/wsconn"
)

// sessions remembers every session a dialer made, so a test can cut them
// all as a network failure would.
type sessions struct {
	mu    sync.Mutex
	open  []transport.Session
	dials atomic.Int64
}

func (s *sessions) add(sess transport.Session) transport.Session {
	s.mu.Lock()
	s.open = append(s.open, sess)
	s.mu.Unlock()
	s.dials.Add(1)
	return sess
}

func (s *sessions) cutAll() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.open {
		sess.CloseWithError(0x1, "cut by the test")
	}
	n := len(s.open)
	s.open = nil
	return n
}

// dialerFor starts srv behind transport name and returns a Dialer to it.
func dialerFor(t *testing.T, name string, srv *moqlite.Server, ss *sessions) follow.Dialer {
	switch name {
	case "memconn":
		return func(ctx context.Context) (transport.Session, error) {
			cs, sv := memconn.Pair(context.Background(), "moq-lite-04")
			go srv.ServeSession(context.Background(), sv, moqlite.ConnInfo{Transport: "memconn"})
			return ss.add(cs), nil
		}
	case "websocket":
		hs := httptest.NewServer(srv.WebSocketHandler())
		t.Cleanup(hs.Close)
		url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/"
		return func(ctx context.Context) (transport.Session, error) {
			s, err := wsconn.Dial(ctx, url, wsconn.Config{Protocols: []string{"moq-lite-03"}}, nil)
			if err != nil {
				return nil, err
			}
			return ss.add(s), nil
		}
	case "quic", "webtransport":
		c, h, err := quicconn.SelfSignedCert([]string{"127.0.0.1"}, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{c}}
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		if name == "quic" {
			ln, err := quicconn.Listen("", pc, tc, quicconn.Config{Protocols: moqlite.Protocols})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			go srv.ServeQUIC(ln)
			return func(ctx context.Context) (transport.Session, error) {
				s, err := quicconn.Dial(ctx, ln.Addr().String(), quicconn.PinnedClientTLS(h), quicconn.Config{Protocols: []string{"moq-lite-04"}})
				if err != nil {
					return nil, err
				}
				return ss.add(s), nil
			}
		}
		wt := srv.WebTransportServer(quicconn.WebTransportConfig{TLSConfig: tc, Path: "/moq"})
		go wt.Serve(pc)
		t.Cleanup(func() { wt.Close() })
		return func(ctx context.Context) (transport.Session, error) {
			s, err := quicconn.DialWebTransport(ctx, "https://"+pc.LocalAddr().String()+"/moq", quicconn.PinnedClientTLS(h), quicconn.Config{Protocols: []string{"moq-lite-04"}})
			if err != nil {
				return nil, err
			}
			return ss.add(s), nil
		}
	}
	t.Fatalf("no transport %q", name)
	return nil
}

// flakyOrigin is the server as the Stats' Origin, failing every write while
// failing is set, as a relay whose origin refuses frames would.
type flakyOrigin struct {
	srv     *moqlite.Server
	failing atomic.Bool
	failed  atomic.Int64
}

var errPlanted = errors.New("planted write failure")

func (o *flakyOrigin) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	b, err := o.srv.Publish(path, tracks)
	if err != nil {
		return nil, err
	}
	return &flakyBroadcast{o: o, b: b.(*moqlite.Broadcast)}, nil
}

type flakyBroadcast struct {
	o *flakyOrigin
	b *moqlite.Broadcast
}

func (f *flakyBroadcast) fail() error {
	if f.o.failing.Load() {
		f.o.failed.Add(1)
		return errPlanted
	}
	return nil
}

func (f *flakyBroadcast) WriteFrame(track string, frame []byte) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.b.WriteFrame(track, frame)
}

func (f *flakyBroadcast) AppendFrame(track string, frame []byte) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.b.AppendFrame(track, frame)
}

func (f *flakyBroadcast) Close() error { return f.b.Close() }

// ledger is what the test bumped, per node and broadcast, on the external
// publisher track.
type ledger map[[2]string]*consumer.Traffic

// node is one relay node's Stats with open tracks to bump.
type node struct {
	name   string
	stats  *moqstats.Stats
	tracks []*moqstats.TrackGuard
	paths  []string
	guards []announced
}

// announced is an open broadcast guard and the path it announced.
type announced struct {
	guard *moqstats.BroadcastGuard
	path  string
}

func (n *node) step(r *rand.Rand, l ledger) {
	paths := []string{"acme/live", "acme/vod/1", "beta", "q\"uote"}
	path := paths[r.IntN(len(paths))]
	tr := l[[2]string{n.name, path}]
	if tr == nil {
		tr = &consumer.Traffic{}
		l[[2]string{n.name, path}] = tr
	}
	switch op := r.IntN(10); {
	case op < 2:
		g := n.stats.Tier(moqstats.External).Broadcast(path).Publisher()
		n.guards = append(n.guards, announced{g, path})
		tr.Announced++
		n.tracks = append(n.tracks, g.Track("video"))
		n.paths = append(n.paths, path)
	case op < 3 && len(n.tracks) > 0:
		i := r.IntN(len(n.tracks))
		n.tracks[i].Close()
		n.tracks = append(n.tracks[:i], n.tracks[i+1:]...)
		n.paths = append(n.paths[:i], n.paths[i+1:]...)
	case len(n.tracks) > 0:
		i := r.IntN(len(n.tracks))
		b := uint64(r.IntN(5000))
		n.tracks[i].Bytes(b)
		n.tracks[i].Frame()
		t := l[[2]string{n.name, n.paths[i]}]
		t.Bytes += b
		t.Frames++
		if r.IntN(4) == 0 {
			n.tracks[i].Group()
			t.Groups++
		}
	}
}

// close closes every guard and then the Stats: its final pass carries the
// closes.
func (n *node) close(t *testing.T, l ledger) {
	for _, tr := range n.tracks {
		tr.Close()
	}
	for _, g := range n.guards {
		g.guard.Close()
		l[[2]string{n.name, g.path}].AnnouncedClosed++
	}
	n.tracks, n.paths, n.guards = nil, nil, nil
	if err := n.stats.Close(); err != nil {
		t.Fatal(err)
	}
}

// matches reports how the View's external publisher totals differ from the
// ledger, or "" if they match.
func matches(v *consumer.View, l ledger) string {
	got := map[[2]string]consumer.Traffic{}
	for _, r := range v.Broadcasts {
		if r.Track.Name() == moqstats.TrackPublisher {
			got[[2]string{r.Node, r.Broadcast}] = r.Total
		}
	}
	var diff []string
	for k, want := range l {
		g := got[k]
		if g.Announced != want.Announced || g.AnnouncedClosed != want.AnnouncedClosed || g.Bytes != want.Bytes || g.Frames != want.Frames || g.Groups != want.Groups {
			diff = append(diff, fmt.Sprintf("%v: got %+v, want %+v", k, g, *want))
		}
	}
	return strings.Join(diff, "\n")
}

// waitUntil polls what until it returns "", failing the test with its last
// answer after 30 seconds.
func waitUntil(t *testing.T, what func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		msg := what()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// trackGaps is the Gaps reported per node and track.
type trackGaps map[[2]string]uint64

func gapsOf(agg *consumer.Aggregator) trackGaps {
	g := trackGaps{}
	for _, tr := range agg.View(time.Now()).Tracks {
		g[[2]string{tr.Node, tr.Track.Name()}] = tr.Gaps
	}
	return g
}

// unfollowed lists the tracks of nodes whose subscription was not
// opened yet (opening it reports a Gap).
func unfollowed(agg *consumer.Aggregator, nodes ...*node) string {
	gaps := gapsOf(agg)
	var out []string
	for _, n := range nodes {
		for _, track := range moqstats.Tracks() {
			if gaps[[2]string{n.name, track}] == 0 {
				out = append(out, n.name+" "+track)
			}
		}
	}
	if out == nil {
		return ""
	}
	return "tracks not followed yet: " + strings.Join(out, ", ")
}

// since lists the tracks whose gaps grew from before, with how many.
func (g trackGaps) since(before trackGaps) string {
	var out []string
	for k, n := range g {
		if n != before[k] {
			out = append(out, fmt.Sprintf("%s %s +%d", k[0], k[1], n-before[k]))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func (g trackGaps) total() (n uint64) {
	for _, v := range g {
		n += v
	}
	return n
}

// serverLosses counts the groups the server did not deliver whole.
func serverLosses(srv *moqlite.Server) uint64 {
	st := srv.Stats()
	return st.GroupsSkipped + st.WriteTimeouts
}

// Cluster against live Stats on a moqlite Server, over each transport: two
// nodes found by announce alone, random traffic, write failures, every
// session cut mid-way, a node restarting (a new incarnation) and a node
// leaving. The totals the follower computes must equal the ledger of what
// was bumped, with both lives of the restarted node summed, and it reports
// a Gap where frames could be lost and nowhere else.
func TestClusterTotalsEqualTheLedger(t *testing.T) {
	for _, tr := range []string{"memconn", "websocket", "quic", "webtransport"} {
		for _, compressed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/compressed=%v", tr, compressed), func(t *testing.T) {
				if testing.Short() && tr != "memconn" {
					t.Skip("-short: memconn only")
				}
				testClusterTotals(t, tr, compressed)
			})
		}
	}
}

func testClusterTotals(t *testing.T, transportName string, compressed bool) {
	srv := moqlite.NewServer(moqlite.ServerConfig{})
	defer srv.Close()
	origin := &flakyOrigin{srv: srv}
	ss := &sessions{}
	agg, err := consumer.New(consumer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var errMu sync.Mutex
	var followErrs []error
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- follow.Cluster(ctx, agg, dialerFor(t, transportName, srv, ss), follow.Options{
			Compressed: compressed, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			// The client keeps every group it receives, however far the
			// follower falls behind on a loaded machine: the only losses
			// are then the server's, which the gap check counts.
			Client: moqlite.ClientConfig{MaxBufferedGroups: 1 << 20},
			OnError: func(err error) {
				errMu.Lock()
				followErrs = append(followErrs, err)
				errMu.Unlock()
			},
		})
	}()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Cluster returned %v, want context.Canceled", err)
		}
	}()
	l := ledger{}
	r := rand.New(rand.NewPCG(uint64(len(transportName)), 1))
	open := func(name string) *node {
		s, err := moqstats.New(moqstats.Config{
			Origin: origin, Node: name, Interval: time.Hour, Compressed: compressed, DeltaRatio: 1,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		return &node{name: name, stats: s}
	}
	caughtUp := func(stage string, nodes ...*node) {
		t.Helper()
		for _, n := range nodes {
			// A failed pass leaves its frames to the next one.
			for n.stats.Flush() != nil {
			}
		}
		waitUntil(t, func() string {
			d := matches(agg.View(time.Now()), l)
			if d == "" {
				return ""
			}
			errMu.Lock()
			defer errMu.Unlock()
			return fmt.Sprintf("%s: the follower's totals differ from the ledger:\n%s\nfollower errors: %v", stage, d, followErrs)
		})
	}
	run := func(steps int, nodes ...*node) {
		for range steps {
			n := nodes[r.IntN(len(nodes))]
			n.step(r, l)
			if r.IntN(8) == 0 {
				n.stats.Flush() // may fail while failing is set; nothing is lost
			}
		}
	}

	edge1 := open("edge/1")
	run(1, edge1)
	caughtUp("edge/1 announced", edge1)
	run(150, edge1)
	caughtUp("edge/1 traffic", edge1)

	edge2 := open("edge/2")
	run(150, edge1, edge2)
	caughtUp("edge/2 joined", edge1, edge2)

	// Every Gap reported is real: in a phase where no session is cut, one
	// can only come from a group the server skipped or abandoned. Opening
	// a subscription is a Gap too, and caughtUp waits for the publisher
	// tracks only: the phase starts once every track is followed.
	waitUntil(t, func() string { return unfollowed(agg, edge1, edge2) })
	lossesBefore, gapsBefore := serverLosses(srv), gapsOf(agg)
	origin.failing.Store(true)
	run(100, edge1, edge2)
	origin.failing.Store(false)
	if origin.failed.Load() == 0 {
		t.Fatal("no write failed while failing was set")
	}
	caughtUp("after write failures", edge1, edge2)
	gapsAfter := gapsOf(agg)
	// Over QUIC streams race, and a group that arrives after a newer one
	// is a Gap too (delivered late), so the count is exact on the
	// in-process transport and over WebSocket, whose streams keep their
	// order.
	ordered := transportName == "memconn" || transportName == "websocket"
	if n, losses := gapsAfter.total()-gapsBefore.total(), serverLosses(srv)-lossesBefore; ordered && n > losses {
		t.Fatalf("%d gaps reported while no session was cut and the server dropped %d groups: %s", n, losses, gapsAfter.since(gapsBefore))
	}

	before := ss.dials.Load()
	if ss.cutAll() == 0 {
		t.Fatal("no session to cut")
	}
	run(100, edge1, edge2)
	for ss.dials.Load() == before {
		time.Sleep(time.Millisecond)
	}
	caughtUp("after the sessions were cut", edge1, edge2)
	// ... and every loss is reported: each track followed through the cut
	// is subscribed again, which is a Gap (a track whose values did not
	// change may be subscribed after the totals caught up).
	waitUntil(t, func() string {
		gapsCut := gapsOf(agg)
		for k, n := range gapsAfter {
			if gapsCut[k] <= n {
				return fmt.Sprintf("track %v: %d gaps before the cut and %d after, want more", k, n, gapsCut[k])
			}
		}
		return ""
	})

	// edge/1 restarts: its second life counts from zero again, and the
	// follower must add the lives, not take the second for the first.
	edge1.close(t, l)
	edge1 = open("edge/1")
	run(150, edge1, edge2)
	caughtUp("edge/1 restarted", edge1, edge2)

	// edge/2 leaves: its totals stay, its tracks end.
	edge2.close(t, l)
	edge1.close(t, l)
	caughtUp("both closed")
	waitUntil(t, func() string {
		ended := 0
		v := agg.View(time.Now())
		for _, tr := range v.Tracks {
			if tr.Ended {
				ended++
			}
		}
		if ended == len(v.Tracks) && len(v.Tracks) == 2*len(moqstats.Tracks()) {
			return ""
		}
		return fmt.Sprintf("%d of %d tracks ended, want all %d of both nodes", ended, len(v.Tracks), 2*len(moqstats.Tracks()))
	})
	errMu.Lock()
	defer errMu.Unlock()
	for _, err := range followErrs {
		if errors.Is(err, consumer.ErrInvalidFrame) {
			t.Errorf("the follower rejected a frame: %v", err)
		}
	}
}

// A subscription the server refuses is a cap reached for now (its bound
// on a session's streams not yet read, hit when a follower subscribes to
// every track of many nodes at once): Cluster subscribes again until it
// is let in, so every track is followed, and reports each refusal.
func TestClusterSubscribesAgainAfterARefusal(t *testing.T) {
	for _, compressed := range []bool{false, true} {
		t.Run(fmt.Sprintf("compressed=%v", compressed), func(t *testing.T) {
			const refusals = 2 // per track
			var mu sync.Mutex
			asked := map[string]int{}
			srv := moqlite.NewServer(moqlite.ServerConfig{Authorize: func(_ moqlite.ConnInfo, req moqlite.Request) error {
				if req.Action != moqlite.ActionSubscribe {
					return nil
				}
				mu.Lock()
				defer mu.Unlock()
				asked[req.Track]++
				if asked[req.Track] <= refusals {
					return errors.New("not yet")
				}
				return nil
			}})
			defer srv.Close()
			s, err := moqstats.New(moqstats.Config{
				Origin: srv, Node: "edge/a", Interval: time.Hour, Compressed: compressed,
				Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			agg, err := consumer.New(consumer.Config{})
			if err != nil {
				t.Fatal(err)
			}
			var refused atomic.Int64
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- follow.Cluster(ctx, agg, dialerFor(t, "memconn", srv, &sessions{}), follow.Options{
					Compressed: compressed, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
					OnError: func(err error) {
						if errors.Is(err, moqlite.ErrRefused) {
							refused.Add(1)
						}
					},
				})
			}()
			defer func() {
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Errorf("Cluster returned %v, want context.Canceled", err)
				}
			}()
			deadline := time.Now().Add(30 * time.Second)
			for {
				followed := 0
				for _, tr := range agg.View(time.Now()).Tracks {
					if tr.Node == "edge/a" && tr.Frames > 0 {
						followed++
					}
				}
				if followed == len(moqstats.Tracks()) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d tracks followed after 30s (server: %+v)", followed, len(moqstats.Tracks()), srv.Stats())
				}
				time.Sleep(5 * time.Millisecond)
			}
			want := int64(refusals * len(moqstats.Tracks()))
			if got := refused.Load(); got != want {
				t.Errorf("%d refusals reported, want %d", got, want)
			}
			if got := srv.Stats().Refusals.Auth; got != uint64(want) {
				t.Errorf("the server refused %d subscriptions, want %d", got, want)
			}
		})
	}
}
