package main

import (
	"strings"
	"testing"
	"time"

	"github.com/moqstats/moqstats/internal/promtest"
)

// TestPrometheusScrapesTheDemo runs a real Prometheus server scraping the
// demo's /metrics on 127.0.0.1, lets the simulated traffic run and stop,
// and checks PromQL answers against what the simulation bumped: bytes
// sent and ingested, in total and for one broadcast, viewers and sessions
// that joined, and nobody left connected.
func TestPrometheusScrapesTheDemo(t *testing.T) {
	promtest.Binary(t) // before any work: skips or fails without a server

	bumped := make(chan ledger, 1)
	o := testOptions()
	o.trafficFor = 2 * time.Second
	o.trafficDone = func(l ledger) { bumped <- l }
	d := startDemo(t, o)

	prom := promtest.Start(t, "demo", strings.TrimPrefix(d.base, "http://"))

	var l1 ledger
	select {
	case l1 = <-bumped:
	case <-time.After(hangGuard):
		t.Fatal("the traffic did not stop")
	}
	sum := func(m map[string]uint64) float64 {
		var n uint64
		for _, v := range m {
			n += v
		}
		return float64(n)
	}
	for _, c := range []struct {
		q    string
		want float64
	}{
		{`up{job="demo"}`, 1},
		{`sum(moq_broadcast_bytes_total{tier="external",role="publisher"})`, sum(l1.Egress)},
		{`sum(moq_broadcast_bytes_total{tier="internal",role="subscriber"})`, sum(l1.Ingress)},
		{`moq_broadcast_bytes_total{broadcast="acme/live/main",tier="external",role="publisher",node="test"}`, float64(l1.Egress["acme/live/main"])},
		{`sum(moq_broadcast_broadcasts_total{tier="external"})`, sum(l1.Joined)},
		{`sum(moq_sessions_total{tier="external"})`, sum(l1.Sessions)},
		{`sum(moq_broadcast_viewers{tier="external"})`, 0},
		{`sum(moq_sessions_live{tier="external"})`, 0},
	} {
		prom.WaitFor(t, c.q, c.want)
	}
	if sum(l1.Egress) == 0 || sum(l1.Joined) == 0 {
		t.Errorf("the simulation bumped nothing to check: %+v", l1)
	}
}
