package promstats_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/internal/promtest"
	"github.com/moqstats/moqstats/memorigin"
	"github.com/moqstats/moqstats/promstats"
)

// TestPrometheusScrapesTheCollector runs a real Prometheus server that
// scrapes a /metrics endpoint exposing the collector, fed in process by a
// real Stats with known traffic, and checks PromQL answers against what
// was bumped.
func TestPrometheusScrapesTheCollector(t *testing.T) {
	promtest.Binary(t) // before any work: skips or fails without a server

	// Known traffic on a real Stats, fed to the Aggregator through the
	// in-process Origin, including an entry collected and re-created.
	agg, err := consumer.New(consumer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := moqstats.New(moqstats.Config{
		Origin: consumer.NewOrigin(memorigin.New(), agg, consumer.OriginOptions{}),
		Node:   "sjc/1", Interval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	ext := stats.Tier(moqstats.External)
	var wantBytes uint64
	for i, path := range []string{"acme/live/1", "acme/live/2", "beta/show"} {
		g := ext.Broadcast(path).PublisherTrack("video")
		n := uint64(1000 * (i + 1))
		g.Bytes(n)
		wantBytes += n
		g.Close()
	}
	if err := stats.Flush(); err != nil { // the entries are collected
		t.Fatal(err)
	}
	again := ext.Broadcast("acme/live/1").PublisherTrack("video") // re-created: it continues, within retention
	again.Bytes(7)
	wantBytes += 7
	viewer := ext.PublisherBroadcasts().Subscribe("acme/live/1")
	session := ext.Session("acme")
	if err := stats.Flush(); err != nil {
		t.Fatal(err)
	}
	defer func() { again.Close(); viewer.Close(); session.Close() }()

	c, err := promstats.New(promstats.Config{Aggregator: agg})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer target.Close()

	prom := promtest.Start(t, "moq", target.Listener.Addr().String())
	for _, c := range []struct {
		q    string
		want float64
	}{
		{"sum(moq_broadcast_bytes_total)", float64(wantBytes)},
		{`moq_broadcast_bytes_total{broadcast="acme/live/1",tier="external",role="publisher",node="sjc/1"}`, 1007},
		{`sum(moq_broadcast_viewers{tier="external"})`, 1},
		{`moq_sessions_live{root="acme",node="sjc/1"}`, 1},
	} {
		prom.WaitFor(t, c.q, c.want)
	}
}
