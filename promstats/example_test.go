package promstats_test

import (
	"fmt"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/memorigin"
	"github.com/moqstats/moqstats/promstats"
)

// A relay exporting its own counters: the Stats writes its frames through
// an Origin that also feeds the Aggregator the collector reads. Serve the
// registry with promhttp.HandlerFor on /metrics.
func Example() {
	agg, err := consumer.New(consumer.Config{})
	if err != nil {
		panic(err)
	}
	relayOrigin := memorigin.New()
	stats, err := moqstats.New(moqstats.Config{Origin: consumer.NewOrigin(relayOrigin, agg, consumer.OriginOptions{}), Node: "sjc/1"})
	if err != nil {
		panic(err)
	}
	defer stats.Close()
	collector, err := promstats.New(promstats.Config{Aggregator: agg, BroadcastSegments: 1})
	if err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector)

	track := stats.Tier(moqstats.External).Broadcast("acme/live/cam1").PublisherTrack("video")
	track.Bytes(1200)
	track.Close()
	if err := stats.Flush(); err != nil {
		panic(err)
	}

	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	var lines []string
	for _, mf := range mfs {
		if mf.GetName() != "moq_broadcast_bytes_total" && mf.GetName() != "moq_broadcast_subscriptions_closed_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() {
				labels += fmt.Sprintf(" %s=%q", l.GetName(), l.GetValue())
			}
			lines = append(lines, fmt.Sprintf("%s%s %v", mf.GetName(), labels, m.GetCounter().GetValue()))
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// moq_broadcast_bytes_total broadcast="acme" node="sjc/1" role="publisher" tier="external" 1200
	// moq_broadcast_subscriptions_closed_total broadcast="acme" node="sjc/1" role="publisher" tier="external" 1
}
