package promstats

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/moqstats/moqstats/consumer"
)

// expiringAgg is an Aggregator that drops keys idle for 10s (producers
// without retention, a second of slack).
func expiringAgg(t *testing.T) *consumer.Aggregator {
	t.Helper()
	agg, err := consumer.New(consumer.Config{Retention: consumer.NoRetention, RetentionSlack: time.Second, ExpireAfter: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return agg
}

// clocked returns a Collector over agg whose scrapes read the Aggregator
// at *now.
func clocked(t *testing.T, cfg Config, agg *consumer.Aggregator, now *time.Time) (*Collector, *prometheus.Registry) {
	t.Helper()
	cfg.Aggregator = agg
	cfg.Now = func() time.Time { return *now }
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	return c, reg
}

func observe(t *testing.T, agg *consumer.Aggregator, node, track string, at time.Time, frame string) {
	t.Helper()
	if err := agg.Observe(node, track, at, []byte(frame)); err != nil {
		t.Fatal(err)
	}
}

// With per-broadcast series, an expired key's series disappear, its
// totals reappear in the expired families of its (tier, role, node), and
// the sum over both is what it was.
func TestExpiredKeysLeaveTheirSeriesForTheExpiredFamilies(t *testing.T) {
	agg := expiringAgg(t)
	now := t0
	c, reg := clocked(t, Config{}, agg, &now)
	observe(t, agg, "n", "publisher.json", t0, `{"gone":{"subscriptions":1,"subscriptions_closed":1,"bytes":100},"stays":{"subscriptions":1,"bytes":5}}`)
	observe(t, agg, "n", "sessions.json", t0, `{"r":{"sessions":3,"sessions_closed":3},"s":{"sessions":1}}`)
	before := sumFamily(t, reg, "moq_broadcast_bytes_total")
	if n := testutil.CollectAndCount(c, "moq_broadcast_bytes_expired_total", "moq_sessions_expired_total"); n != 0 {
		t.Fatalf("%d expired series before any key expired, want none", n)
	}

	now = t0.Add(20 * time.Second)
	observe(t, agg, "n", "publisher.json", now, `{"stays":{"subscriptions":1,"bytes":5}}`)
	observe(t, agg, "n", "sessions.json", now, `{"s":{"sessions":1}}`)
	agg.Expire(now) // the frames above may have swept already
	want := `
# HELP moq_broadcast_bytes_expired_total Payload bytes. Lifetime total of the broadcasts dropped by expiry, whose series are gone: add it to the sum of moq_broadcast_bytes_total for exact totals; it jumps at every expiry, so never rate it.
# TYPE moq_broadcast_bytes_expired_total counter
moq_broadcast_bytes_expired_total{node="n",role="publisher",tier="external"} 100
# HELP moq_broadcast_bytes_total Payload bytes. Lifetime total over counter resets.
# TYPE moq_broadcast_bytes_total counter
moq_broadcast_bytes_total{broadcast="stays",node="n",role="publisher",tier="external"} 5
# HELP moq_broadcast_expired_keys_total Broadcasts dropped by expiry (consumer.Config.ExpireAfter), per track.
# TYPE moq_broadcast_expired_keys_total counter
moq_broadcast_expired_keys_total{node="n",role="publisher",tier="external"} 1
# HELP moq_sessions_closed_expired_total Sessions disconnected under the auth roots dropped by expiry: add it to the sum of moq_sessions_closed_total; never rate it.
# TYPE moq_sessions_closed_expired_total counter
moq_sessions_closed_expired_total{node="n",tier="external"} 3
# HELP moq_sessions_expired_roots_total Auth roots dropped by expiry (consumer.Config.ExpireAfter), per track.
# TYPE moq_sessions_expired_roots_total counter
moq_sessions_expired_roots_total{node="n",tier="external"} 1
# HELP moq_sessions_expired_total Sessions connected under the auth roots dropped by expiry, whose series are gone: add it to the sum of moq_sessions_total for exact totals; never rate it.
# TYPE moq_sessions_expired_total counter
moq_sessions_expired_total{node="n",tier="external"} 3
# HELP moq_sessions_total Sessions connected under the auth root. Lifetime total over counter resets.
# TYPE moq_sessions_total counter
moq_sessions_total{node="n",root="s",tier="external"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"moq_broadcast_bytes_total", "moq_broadcast_bytes_expired_total", "moq_broadcast_expired_keys_total",
		"moq_sessions_total", "moq_sessions_expired_total", "moq_sessions_closed_expired_total", "moq_sessions_expired_roots_total"); err != nil {
		t.Fatal(err)
	}
	if after := sumFamily(t, reg, "moq_broadcast_bytes_total") + sumFamily(t, reg, "moq_broadcast_bytes_expired_total"); after != before {
		t.Fatalf("bytes summed over the live and expired series: %v, was %v", after, before)
	}
	// Every exported field has its expired family, and they lint.
	if n := testutil.CollectAndCount(c, "moq_broadcast_subscriptions_closed_expired_total"); n != 1 {
		t.Fatalf("%d subscriptions_closed expired series, want 1", n)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// A series that sums several rows (per customer here) keeps the totals
// of a row that expires while others remain, so it never goes down (a
// counter reset to Prometheus, whose increase() would count the whole
// series again); once its last row expires the series goes, and the
// expired family takes its totals. A row that expires and comes back as
// a new key between two scrapes is carried too.
func TestMergedSeriesDoNotGoDownWhenARowExpires(t *testing.T) {
	for _, cfg := range []Config{{BroadcastSegments: 1}, {BroadcastSegments: 1, DropNode: true}} {
		t.Run(labelsName(cfg), func(t *testing.T) {
			agg := expiringAgg(t)
			now := t0
			_, reg := clocked(t, cfg, agg, &now)
			labels := map[string]string{"broadcast": "acme", "role": "publisher", "tier": "external"}
			glabels := map[string]string{"role": "publisher", "tier": "external"}
			if !cfg.DropNode {
				labels["node"], glabels["node"] = "n", "n"
			}
			step := func(sec int, frame string, series, expired float64) {
				t.Helper()
				now = t0.Add(time.Duration(sec) * time.Second)
				if frame != "" {
					observe(t, agg, "n", "publisher.json", now, frame)
				}
				agg.Expire(now)
				if got := value(t, reg, "moq_broadcast_bytes_total", labels); got != series {
					t.Fatalf("at %ds: acme bytes %v, want %v", sec, got, series)
				}
				if expired >= 0 {
					if got := value(t, reg, "moq_broadcast_bytes_expired_total", glabels); got != expired {
						t.Fatalf("at %ds: expired bytes %v, want %v", sec, got, expired)
					}
				}
			}
			step(0, `{"acme/a":{"bytes":100},"acme/b":{"subscriptions":1,"bytes":10}}`, 110, -1)
			step(20, `{"acme/b":{"subscriptions":1,"bytes":20}}`, 120, 0) // acme/a expired, carried
			step(25, `{"acme/b":{"subscriptions":1,"bytes":30}}`, 130, 0)
			// acme/b expires and comes back as a new key, from zero,
			// between two scrapes.
			step(45, `{"acme/b":{"subscriptions":1,"subscriptions_closed":1,"bytes":30}}`, 130, 0)
			now = t0.Add(60 * time.Second)
			agg.Expire(now)
			step(61, `{"acme/b":{"subscriptions":1,"bytes":7}}`, 137, 0)
			// The last row goes: the series goes with its carry, which the
			// expired family now holds.
			step(62, `{"acme/b":{"subscriptions":1,"subscriptions_closed":1,"bytes":7}}`, 137, 0)
			now = t0.Add(80 * time.Second)
			agg.Expire(now)
			if n, err := testutil.GatherAndCount(reg, "moq_broadcast_bytes_total"); err != nil || n != 0 {
				t.Fatalf("%d acme series after its last row expired (%v), want none", n, err)
			}
			if got := value(t, reg, "moq_broadcast_bytes_expired_total", glabels); got != 137 {
				t.Fatalf("expired bytes %v, want 137", got)
			}
		})
	}
}

// Random frames from three nodes on both kinds of track, keys coming and
// going, expiry sweeps, scrapes, in every label configuration: at every
// scrape, each field summed over its live and expired series equals the
// Aggregator's lifetime total; no expired series goes down; and no live
// series goes down, but a per-row one whose key expired and came back.
func TestSumsOverSeriesStayExactUnderExpiry(t *testing.T) {
	carried := 0
	for _, cfg := range []Config{{}, {BroadcastSegments: 1}, {DropNode: true}, {BroadcastSegments: 1, DropNode: true}} {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("%s/seed=%d", labelsName(cfg), seed), func(t *testing.T) {
				agg := expiringAgg(t)
				now := t0
				c, reg := clocked(t, cfg, agg, &now)
				r := rand.New(rand.NewPCG(seed, 9))
				nodes := []string{"a", "b", "c"}
				keys := []string{"acme/1", "acme/2", "beta/1", "beta/2/x"}
				tracks := []string{"publisher.json", "internal/subscriber.json", "sessions.json"}
				cur := map[string]uint64{} // the producers' counters by node, track, key
				prev := map[string]float64{}
				prevExpired := 0
				for step := range 300 {
					now = now.Add(time.Duration(r.IntN(4000)) * time.Millisecond)
					node, track := nodes[r.IntN(len(nodes))], tracks[r.IntN(len(tracks))]
					var parts []string
					for _, k := range keys {
						if r.IntN(3) != 0 {
							continue
						}
						id := node + track + k
						if r.IntN(20) == 0 {
							cur[id] = 0 // re-created
						}
						cur[id] += uint64(r.IntN(100))
						live := r.IntN(4) == 0
						if strings.Contains(track, "sessions") {
							closed := cur[id]
							if live {
								closed = 0
							}
							parts = append(parts, fmt.Sprintf("%q:{\"sessions\":%d,\"sessions_closed\":%d}", k, cur[id], closed))
						} else {
							open := 0
							if live {
								open = 1
							}
							parts = append(parts, fmt.Sprintf("%q:{\"subscriptions\":%d,\"bytes\":%d,\"frames\":%d}", k, open, cur[id], cur[id]/3))
						}
					}
					observe(t, agg, node, track, now, "{"+strings.Join(parts, ",")+"}")
					if r.IntN(5) == 0 {
						agg.Expire(now)
					}
					if r.IntN(3) != 0 {
						continue
					}
					v := agg.View(now)
					expiredKeys := 0
					for _, tr := range v.Tracks {
						expiredKeys += tr.ExpiredKeys
					}
					got := gatherAll(t, reg)
					for _, tier := range []string{"", "internal"} {
						tierName := map[string]string{"": "external", "internal": "internal"}[tier]
						for _, kind := range []consumer.Kind{consumer.Publisher, consumer.Subscriber} {
							want := v.Total(tier, kind)
							for _, f := range []consumer.TrafficField{consumer.Bytes, consumer.Frames, consumer.Subscriptions} {
								sum := got.sum("moq_broadcast_"+f.String()+"_total", tierName, kind.String()) +
									got.sum("moq_broadcast_"+f.String()+"_expired_total", tierName, kind.String())
								if sum != float64(want.Field(f)) {
									t.Fatalf("step %d: %s %s %s over live and expired series: %v, want %d", step, tierName, kind, f, sum, want.Field(f))
								}
							}
						}
						want := v.SessionsTotal(tier)
						if sum := got.sum("moq_sessions_total", tierName, "") + got.sum("moq_sessions_expired_total", tierName, ""); sum != float64(want.Sessions) {
							t.Fatalf("step %d: %s sessions over live and expired series: %v, want %d", step, tierName, sum, want.Sessions)
						}
					}
					for id, was := range prev {
						now, ok := got.samples[id]
						if !ok || now >= was {
							continue
						}
						if !c.merges && !strings.Contains(id, "_expired_total") && expiredKeys > prevExpired {
							continue // a per-row series whose key expired and came back
						}
						t.Fatalf("step %d: %s went from %v to %v", step, id, was, now)
					}
					prev, prevExpired = got.samples, expiredKeys
					for _, cv := range c.carry {
						if cv[consumer.Bytes] > 0 {
							carried++
						}
					}
				}
				if prevExpired == 0 {
					t.Fatal("no key expired: the schedule does not exercise expiry")
				}
			})
		}
	}
	if carried == 0 {
		t.Fatal("no merged series ever carried an expired row")
	}
}

func labelsName(cfg Config) string {
	return fmt.Sprintf("segments=%d,dropnode=%v", cfg.BroadcastSegments, cfg.DropNode)
}

// gathered is a scrape: every counter sample by family and labels.
type gathered struct {
	samples map[string]float64
	labels  map[string]map[string]string
}

func gatherAll(t *testing.T, g prometheus.Gatherer) gathered {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := gathered{samples: map[string]float64{}, labels: map[string]map[string]string{}}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetCounter() == nil {
				continue
			}
			ls := map[string]string{}
			id := mf.GetName()
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
				id += fmt.Sprintf(" %s=%q", l.GetName(), l.GetValue())
			}
			out.samples[id] = m.GetCounter().GetValue()
			out.labels[id] = ls
		}
	}
	return out
}

// sum adds the samples of family with this tier and, if role is not "",
// this role.
func (g gathered) sum(family, tier, role string) float64 {
	s := 0.0
	for id, v := range g.samples {
		ls := g.labels[id]
		if strings.SplitN(id, " ", 2)[0] == family && ls["tier"] == tier && (role == "" || ls["role"] == role) {
			s += v
		}
	}
	return s
}
