package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/fanout"
	"github.com/moqstats/moqstats/httpstats"
	"github.com/moqstats/moqstats/memorigin"
)

// connTracker dials for an http.Transport and can close every connection
// it made, as a network failure would.
type connTracker struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (c *connTracker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		c.mu.Lock()
		c.conns = append(c.conns, conn)
		c.mu.Unlock()
	}
	return conn, err
}

func (c *connTracker) dropAll() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	n := len(c.conns)
	c.conns = nil
	return n
}

// totalsOf lists every row's lifetime total by node, track and key.
func totalsOf(v *consumer.View) map[string]string {
	m := map[string]string{}
	for _, r := range v.Broadcasts {
		m[r.Node+" "+r.Track.Name()+" "+r.Broadcast] = fmt.Sprintf("%+v", r.Total)
	}
	for _, r := range v.Sessions {
		m[r.Node+" "+r.Track.Name()+" "+r.Root] = fmt.Sprintf("%+v", r.Total)
	}
	return m
}

func sameTotals(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// FollowHTTP against the real endpoint: a Stats publishes through fanout
// to memorigin and httpstats, random traffic runs on it, and the totals
// an Aggregator computes over HTTP must equal those computed in-process
// from memorigin's plain frames, and what was bumped: through the
// client's connections being dropped mid-stream (streams resume with
// Last-Event-ID), and through the Stats closing and a new one publishing
// on the same httpstats Origin, a restart, whose counts from zero must be
// new segments, not double counted. No frame may be rejected.
func TestFollowHTTPAgainstTheRealEndpoint(t *testing.T) {
	testFollowHTTPAgainstTheRealEndpoint(t, false)
}

// The same over the compressed tracks: a Stats with Compressed (groups
// rolling at DeltaRatio 1) and a follower with HTTPOptions.Compressed,
// which streams only the ".z" tracks, rebuilds their values from base64
// snapshots and patches, resumes within a group after a drop that fell
// in one, and must compute the plain tracks' totals.
func TestFollowHTTPOnCompressedTracksAgainstTheRealEndpoint(t *testing.T) {
	testFollowHTTPAgainstTheRealEndpoint(t, true)
}

func testFollowHTTPAgainstTheRealEndpoint(t *testing.T, compressed bool) {
	hs, err := httpstats.New(httpstats.Options{Heartbeat: 50 * time.Millisecond, Retry: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var resumed, midGroup atomic.Int64
	var reqMu sync.Mutex
	requested := map[string]int{} // stream requests by path
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("Last-Event-ID"); id != "" {
			resumed.Add(1)
			if _, f, _ := strings.Cut(id, "."); f != "0" {
				midGroup.Add(1)
			}
		}
		if r.URL.Path != "/" {
			reqMu.Lock()
			requested[r.URL.Path]++
			reqMu.Unlock()
		}
		hs.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer hs.Shutdown()

	overHTTP, err := consumer.New(consumer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	inProcess, err := consumer.New(consumer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	conns := &connTracker{}
	var errMu sync.Mutex
	var followErrs []error
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan error, 1)
	go func() {
		followed <- consumer.FollowHTTP(ctx, overHTTP, srv.URL, consumer.HTTPOptions{
			Compressed: compressed,
			Client:     &http.Client{Transport: &http.Transport{DialContext: conns.dial}},
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, IdleTimeout: 10 * time.Second,
			OnError: func(err error) {
				errMu.Lock()
				followErrs = append(followErrs, err)
				errMu.Unlock()
			},
		})
	}()
	defer func() {
		cancel()
		if err := <-followed; !errors.Is(err, context.Canceled) {
			t.Errorf("FollowHTTP returned %v, want context.Canceled", err)
		}
	}()

	// caughtUp waits until the totals over HTTP equal the in-process ones
	// and, if ended, every track over HTTP ended.
	caughtUp := func(stage string, ended bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			hv, mv := overHTTP.View(time.Now()), inProcess.View(time.Now())
			done := sameTotals(totalsOf(hv), totalsOf(mv)) && len(hv.Tracks) == len(moqstats.Tracks())
			for _, tr := range hv.Tracks {
				done = done && (tr.Ended || !ended)
			}
			if done {
				return
			}
			if time.Now().After(deadline) {
				errMu.Lock()
				defer errMu.Unlock()
				t.Fatalf("%s: over HTTP\n %v\nin process\n %v\nfollower errors %v", stage, totalsOf(hv), totalsOf(mv), followErrs)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	mem := memorigin.New()
	m := &trafficModel{
		rng:   rand.New(rand.NewPCG(7, 0x5eed)),
		paths: []string{"acme/live", "acme/vod/1", "beta"}, roots: []string{"acme", ""},
		want: map[bkey]*consumer.Traffic{}, wantSessions: map[skey]*consumer.Presence{},
		pins: map[string]int{}, used: map[string]bool{},
	}
	for life := range 2 {
		stats, err := moqstats.New(moqstats.Config{
			Origin: fanout.New(mem, hs), Node: "edge/1", Interval: time.Hour,
			Logger: slog.New(slog.DiscardHandler), Compressed: compressed, DeltaRatio: 1,
		})
		if err != nil {
			t.Fatalf("life %d: %v", life, err)
		}
		var follows sync.WaitGroup
		for _, track := range moqstats.Tracks() {
			sub, err := mem.Subscribe(stats.Path(), track)
			if err != nil {
				t.Fatal(err)
			}
			follows.Go(func() {
				if err := consumer.Follow(context.Background(), inProcess, "edge/1", track, sub, consumer.FollowOptions{}); err != nil {
					t.Error(err)
				}
			})
		}
		m.stats = stats
		m.trackers = map[slot][]*moqstats.SessionBroadcasts{}
		m.owners = map[*moqstats.SubscriptionGuard]*moqstats.SessionBroadcasts{}
		m.flush = func(bool) {
			if err := stats.Flush(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond) // let streams keep up, mostly
		}
		// A stream starts with its track's latest frame: frames written
		// before the follower connects are lost but for the latest, and
		// a key they showed changing and going idle is missed until it
		// changes again. So traffic starts once the follower has the
		// first frame of every track of this life.
		m.flush(false)
		waitFor(t, fmt.Sprintf("life %d: the follower on every track", life), func() bool {
			v := overHTTP.View(time.Now())
			n := 0
			for _, tr := range v.Tracks {
				if !tr.Ended && tr.Frames > 0 {
					n++
				}
			}
			return n == len(moqstats.Tracks())
		})
		for step := range 400 {
			m.step()
			if step == 200 {
				m.flush(false)
				caughtUp(fmt.Sprintf("life %d, before the drop", life), false)
				before := resumed.Load()
				if n := conns.dropAll(); n == 0 {
					t.Fatalf("life %d: no connection to drop", life)
				}
				// Likewise, traffic goes on once every stream is back.
				waitFor(t, fmt.Sprintf("life %d: every stream resumed", life), func() bool {
					return resumed.Load() >= before+int64(len(moqstats.Tracks()))
				})
				time.Sleep(20 * time.Millisecond)
			}
		}
		m.flush(false)
		caughtUp(fmt.Sprintf("life %d, after the drop", life), false)
		m.closeAll()
		if err := stats.Close(); err != nil {
			t.Fatal(err)
		}
		follows.Wait()
		caughtUp(fmt.Sprintf("life %d, closed", life), true)
	}
	if resumed.Load() == 0 {
		t.Error("no stream request carried Last-Event-ID: the drops did not exercise resuming")
	}
	if compressed && midGroup.Load() == 0 {
		t.Error("no stream resumed after a delta: the drops did not exercise resuming a group")
	}
	errMu.Lock()
	for _, err := range followErrs {
		if errors.Is(err, consumer.ErrInvalidFrame) {
			t.Errorf("follower rejected a frame: %v", err)
		}
	}
	errMu.Unlock()
	reqMu.Lock()
	for path, n := range requested {
		if strings.HasSuffix(path, moqstats.CompressedSuffix) != compressed {
			t.Errorf("%d stream requests for %s, following compressed tracks: %v", n, path, compressed)
		}
	}
	if len(requested) != len(moqstats.Tracks()) {
		t.Errorf("stream requests for %v, want one flavor of each of the %d tracks", requested, len(moqstats.Tracks()))
	}
	reqMu.Unlock()
	// Both equal what was bumped, over both lives.
	for name, agg := range map[string]*consumer.Aggregator{"over HTTP": overHTTP, "in process": inProcess} {
		t.Run(name, func(t *testing.T) {
			res := modelResult{m: m, view: agg.View(time.Now())}
			res.checkKeys(t)
			if newSegments(res.view) == 0 {
				t.Error("no key has a second segment after the restart")
			}
		})
	}
}

// waitFor polls cond until it holds, failing t after a generous timeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
