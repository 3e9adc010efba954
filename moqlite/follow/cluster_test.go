package follow_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/follow"
	"github.com/moqstats/moqstats/moqlite/transport"
)

// A cluster on one machine: Stats nodes dial one aggregator server and
// publish into it through an Uplink; a follower on the aggregator
// discovers them by announce alone. One node's session is cut (it redials
// and announces again), one leaves and a new one joins, and the cluster's
// totals equal the nodes' ledgers.
func TestClusterPublishesIntoAnAggregator(t *testing.T) {
	for _, tr := range []string{"memconn", "websocket", "quic"} {
		for _, compressed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/compressed=%v", tr, compressed), func(t *testing.T) {
				if testing.Short() && tr != "memconn" {
					t.Skip("-short: memconn only")
				}
				testAggregatorCluster(t, tr, compressed)
			})
		}
	}
}

func testAggregatorCluster(t *testing.T, transportName string, compressed bool) {
	aggSrv := moqlite.NewServer(moqlite.ServerConfig{Ingest: &moqlite.IngestConfig{}})
	defer aggSrv.Close()
	agg, err := consumer.New(consumer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var errMu sync.Mutex
	var errs []error
	report := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	followers := &sessions{}
	go func() {
		done <- follow.Cluster(ctx, agg, dialerFor(t, "memconn", aggSrv, followers), follow.Options{
			Compressed: compressed, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, OnError: report,
		})
	}()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Cluster returned %v, want context.Canceled", err)
		}
	}()

	nodeDial := dialerFor(t, transportName, aggSrv, &sessions{})
	l := ledger{}
	r := rand.New(rand.NewPCG(uint64(len(transportName)), 2))
	type uplinked struct {
		*node
		up   *moqlite.Uplink
		sess *sessions
	}
	open := func(name string) *uplinked {
		ss := &sessions{}
		up, err := moqlite.NewUplink(moqlite.UplinkConfig{
			Dial: func(ctx context.Context) (transport.Session, error) {
				s, err := nodeDial(ctx)
				if err != nil {
					return nil, err
				}
				return ss.add(s), nil
			},
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, OnError: report,
		})
		if err != nil {
			t.Fatal(err)
		}
		s, err := moqstats.New(moqstats.Config{
			Origin: up, Node: name, Interval: time.Hour, Compressed: compressed,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		return &uplinked{node: &node{name: name, stats: s}, up: up, sess: ss}
	}
	leave := func(n *uplinked) {
		n.close(t, l)
		if err := n.up.Close(); err != nil {
			t.Fatalf("%s: Uplink.Close: %v", n.name, err)
		}
	}
	caughtUp := func(stage string, nodes ...*uplinked) {
		t.Helper()
		for _, n := range nodes {
			if err := n.stats.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		waitUntil(t, func() string {
			d := matches(agg.View(time.Now()), l)
			if d == "" {
				return ""
			}
			errMu.Lock()
			defer errMu.Unlock()
			return fmt.Sprintf("%s: the cluster's totals differ from the ledgers:\n%s\nerrors: %v", stage, d, errs)
		})
	}
	run := func(steps int, nodes ...*uplinked) {
		for range steps {
			n := nodes[r.IntN(len(nodes))]
			n.step(r, l)
			if r.IntN(8) == 0 {
				if err := n.stats.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	a, b, c := open("edge/a"), open("edge/b"), open("edge/c")
	run(300, a, b, c)
	caughtUp("three nodes", a, b, c)

	// b's session to the aggregator is cut: it redials and publishes
	// again, and nothing it counted is lost or counted twice.
	before := b.sess.dials.Load()
	if b.sess.cutAll() == 0 {
		t.Fatal("edge/b has no session to cut")
	}
	run(100, a, b, c)
	for b.sess.dials.Load() == before {
		time.Sleep(time.Millisecond)
	}
	caughtUp("edge/b redialed", a, b, c)

	// c leaves, d joins.
	leave(c)
	d := open("edge/d")
	run(300, a, b, d)
	caughtUp("edge/c left, edge/d joined", a, b, d)

	for _, n := range []*uplinked{a, b, d} {
		leave(n)
	}
	caughtUp("all left")
	nodes := map[string]bool{}
	for _, r := range agg.View(time.Now()).Broadcasts {
		nodes[r.Node] = true
	}
	if len(nodes) != 4 {
		t.Fatalf("the follower saw nodes %v, want edge/a, b, c and d", nodes)
	}
	errMu.Lock()
	defer errMu.Unlock()
	for _, err := range errs {
		if errors.Is(err, consumer.ErrInvalidFrame) {
			t.Errorf("the follower rejected a frame: %v", err)
		}
	}
}
