package promstats

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/moqstats/moqstats/consumer"
)

var t0 = time.Unix(1_700_000_000, 0)

// fleet is an Aggregator fed by hand: two nodes, both tiers, a counter
// reset on one broadcast, and sessions.
func fleet(t *testing.T) *consumer.Aggregator {
	t.Helper()
	agg, err := consumer.New(consumer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		node, track, frame string
		sec                int
	}{
		{"sjc/1", "publisher.json", `{"acme/live/1":{"announced":1,"broadcasts":3,"broadcasts_closed":1,"subscriptions":4,"subscriptions_closed":1,"bytes":1000,"frames":10,"groups":1},"acme/live/2":{"broadcasts":1,"bytes":500}}`, 0},
		{"sjc/1", "publisher.json", `{"acme/live/1":{"announced":1,"broadcasts":1,"subscriptions":1,"bytes":200,"frames":2,"groups":1},"acme/live/2":{"broadcasts":1,"bytes":700}}`, 1}, // acme/live/1 re-created
		{"lhr", "publisher.json", `{"acme/live/1":{"broadcasts":2,"bytes":50},"beta":{"broadcasts":1,"broadcasts_closed":1,"bytes":7}}`, 0},
		{"lhr", "internal/subscriber.json", `{"acme/live/1":{"announced":1,"subscriptions":1,"bytes":60}}`, 0},
		{"sjc/1", "sessions.json", `{"acme":{"sessions":5,"sessions_closed":2}}`, 0},
		{"lhr", "sessions.json", `{"acme":{"sessions":1,"sessions_closed":0}}`, 0},
		{"", "internal/sessions.json", `{"":{"sessions":2,"sessions_closed":1}}`, 0},
	} {
		if err := agg.Observe(f.node, f.track, t0.Add(time.Duration(f.sec)*time.Second), []byte(f.frame)); err != nil {
			t.Fatal(err)
		}
	}
	return agg
}

func collector(t *testing.T, cfg Config) *Collector {
	t.Helper()
	cfg.Now = func() time.Time { return t0.Add(time.Second) }
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestExpositionPerBroadcastAndNode(t *testing.T) {
	c := collector(t, Config{Aggregator: fleet(t)})
	want := `
# HELP moq_broadcast_bytes_total Payload bytes. Lifetime total over counter resets.
# TYPE moq_broadcast_bytes_total counter
moq_broadcast_bytes_total{broadcast="acme/live/1",node="lhr",role="publisher",tier="external"} 50
moq_broadcast_bytes_total{broadcast="acme/live/1",node="lhr",role="subscriber",tier="internal"} 60
moq_broadcast_bytes_total{broadcast="acme/live/1",node="sjc/1",role="publisher",tier="external"} 1200
moq_broadcast_bytes_total{broadcast="acme/live/2",node="sjc/1",role="publisher",tier="external"} 700
moq_broadcast_bytes_total{broadcast="beta",node="lhr",role="publisher",tier="external"} 7
# HELP moq_broadcast_viewers Sessions subscribed to the broadcast now (broadcasts - broadcasts_closed on the egress side).
# TYPE moq_broadcast_viewers gauge
moq_broadcast_viewers{broadcast="acme/live/1",node="lhr",tier="external"} 2
moq_broadcast_viewers{broadcast="acme/live/1",node="sjc/1",tier="external"} 1
moq_broadcast_viewers{broadcast="acme/live/2",node="sjc/1",tier="external"} 1
moq_broadcast_viewers{broadcast="beta",node="lhr",tier="external"} 0
# HELP moq_sessions_live Sessions connected under the auth root now.
# TYPE moq_sessions_live gauge
moq_sessions_live{node="",root="",tier="internal"} 1
moq_sessions_live{node="lhr",root="acme",tier="external"} 1
moq_sessions_live{node="sjc/1",root="acme",tier="external"} 3
# HELP moq_sessions_total Sessions connected under the auth root. Lifetime total over counter resets.
# TYPE moq_sessions_total counter
moq_sessions_total{node="",root="",tier="internal"} 2
moq_sessions_total{node="lhr",root="acme",tier="external"} 1
moq_sessions_total{node="sjc/1",root="acme",tier="external"} 5
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"moq_broadcast_bytes_total", "moq_broadcast_viewers", "moq_sessions_total", "moq_sessions_live"); err != nil {
		t.Fatal(err)
	}
	// 9 counter families x 5 (broadcast, tier, role, node) tuples, 4
	// viewer tuples, 3 session families x 3 tuples.
	if got, want := testutil.CollectAndCount(c), 9*5+4+3*3; got != want {
		t.Fatalf("%d series, want %d", got, want)
	}
}

func TestExpositionPerCustomerWithoutNode(t *testing.T) {
	c := collector(t, Config{Aggregator: fleet(t), BroadcastSegments: 1, DropNode: true})
	want := `
# HELP moq_broadcast_bytes_total Payload bytes. Lifetime total over counter resets.
# TYPE moq_broadcast_bytes_total counter
moq_broadcast_bytes_total{broadcast="acme",role="publisher",tier="external"} 1950
moq_broadcast_bytes_total{broadcast="acme",role="subscriber",tier="internal"} 60
moq_broadcast_bytes_total{broadcast="beta",role="publisher",tier="external"} 7
# HELP moq_broadcast_viewers Sessions subscribed to the broadcast now (broadcasts - broadcasts_closed on the egress side).
# TYPE moq_broadcast_viewers gauge
moq_broadcast_viewers{broadcast="acme",tier="external"} 4
moq_broadcast_viewers{broadcast="beta",tier="external"} 0
# HELP moq_sessions_closed_total Sessions disconnected under the auth root. Lifetime total over counter resets.
# TYPE moq_sessions_closed_total counter
moq_sessions_closed_total{root="",tier="internal"} 1
moq_sessions_closed_total{root="acme",tier="external"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"moq_broadcast_bytes_total", "moq_broadcast_viewers", "moq_sessions_closed_total"); err != nil {
		t.Fatal(err)
	}
}

func TestBroadcastSegments(t *testing.T) {
	for _, tc := range []struct {
		n          int
		path, want string
	}{
		{0, "a/b/c", "a/b/c"}, {1, "a/b/c", "a"}, {2, "a/b/c", "a/b"}, {3, "a/b/c", "a/b/c"},
		{5, "a/b/c", "a/b/c"}, {1, "a", "a"}, {1, "", ""}, {2, "é/ü/x", "é/ü"},
	} {
		c := &Collector{cfg: Config{BroadcastSegments: tc.n}}
		if got := c.broadcastLabel(tc.path); got != tc.want {
			t.Errorf("first %d segments of %q: %q, want %q", tc.n, tc.path, got, tc.want)
		}
	}
}

func TestNewerFieldsAreOptIn(t *testing.T) {
	agg := fleet(t)
	if err := agg.Observe("new", "publisher.json", t0, []byte(`{"x":{"announced_bytes":8,"fetches":2,"datagrams":1}}`)); err != nil {
		t.Fatal(err)
	}
	off := collector(t, Config{Aggregator: agg})
	on := collector(t, Config{Aggregator: agg, NewerFields: true})
	if n := testutil.CollectAndCount(off, "moq_broadcast_fetches_total"); n != 0 {
		t.Fatalf("fetches exported without NewerFields: %d series", n)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(on)
	if got := value(t, reg, "moq_broadcast_datagrams_total", map[string]string{"broadcast": "x", "node": "new", "role": "publisher", "tier": "external"}); got != 1 {
		t.Fatalf("datagrams of x: %v, want 1", got)
	}
	if got := value(t, reg, "moq_broadcast_announced_bytes_total", map[string]string{"broadcast": "x", "node": "new", "role": "publisher", "tier": "external"}); got != 8 {
		t.Fatalf("announced bytes of x: %v, want 8", got)
	}
	if got := testutil.CollectAndCount(on, "moq_broadcast_datagrams_total"); got != 6 {
		t.Fatalf("%d datagrams series, want 6 (the fleet's five and x)", got)
	}
}

func TestCollectorLints(t *testing.T) {
	for _, cfg := range []Config{{}, {NewerFields: true}, {DropNode: true, BroadcastSegments: 1}} {
		cfg.Aggregator = fleet(t)
		problems, err := testutil.CollectAndLint(collector(t, cfg))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%+v: lint: %s: %s", cfg, p.Metric, p.Text)
		}
	}
}

func TestCountersNeverGoDownAcrossResets(t *testing.T) {
	agg, _ := consumer.New(consumer.Config{})
	c := collector(t, Config{Aggregator: agg, DropNode: true})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	last := 0.0
	for i, bytes := range []int{100, 300, 20, 50, 10, 400} {
		frame := `{"k":{"subscriptions":1,"bytes":` + strconv.Itoa(bytes) + `}}`
		if err := agg.Observe("n", "publisher.json", t0.Add(time.Duration(i)*time.Second), []byte(frame)); err != nil {
			t.Fatal(err)
		}
		got, err := testutil.GatherAndCount(reg, "moq_broadcast_bytes_total")
		if err != nil || got != 1 {
			t.Fatalf("gather: %d series, %v", got, err)
		}
		v := sumFamily(t, reg, "moq_broadcast_bytes_total")
		if v < last {
			t.Fatalf("frame %d: counter went from %v to %v", i, last, v)
		}
		last = v
	}
	if last != 300+50+400 {
		t.Fatalf("final counter %v, want 750", last)
	}
}

func TestNewNeedsAnAggregator(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrNoAggregator) {
		t.Fatalf("New without an aggregator: %v", err)
	}
	agg, _ := consumer.New(consumer.Config{})
	if _, err := New(Config{Aggregator: agg, BroadcastSegments: -1}); err == nil {
		t.Fatal("negative BroadcastSegments accepted")
	}
}

func sumFamily(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// value returns the sample of family name with exactly these labels.
func value(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}
