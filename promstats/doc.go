// Package promstats exports what a consumer.Aggregator computes from
// moqstats frames as Prometheus metrics: a prometheus.Collector that reads
// the Aggregator at every scrape.
//
// The same collector serves in process and across a fleet. In a relay,
// feed an Aggregator from the Stats' own writes (consumer.NewOrigin wraps
// the relay's origin) and register the collector with the relay's
// registry. In an aggregator, follow every node (consumer.FollowHTTP, or
// consumer.Follow over subscriptions) into one Aggregator and register one
// collector.
//
// # Families
//
// Counters are lifetime totals: the Aggregator sums the last value of
// every segment, so they never go down when a producer collects and
// re-creates an entry or restarts.
//
//	moq_broadcast_announced_total{broadcast,tier,role,node}
//	moq_broadcast_announced_closed_total{...}
//	moq_broadcast_broadcasts_total{...}
//	moq_broadcast_broadcasts_closed_total{...}
//	moq_broadcast_subscriptions_total{...}
//	moq_broadcast_subscriptions_closed_total{...}
//	moq_broadcast_bytes_total{...}
//	moq_broadcast_frames_total{...}
//	moq_broadcast_groups_total{...}
//	moq_broadcast_announced_bytes_total, _fetches_total, _datagrams_total
//	    {...} with Config.NewerFields (newer producers only)
//	moq_broadcast_viewers{broadcast,tier,node}     gauge, egress side
//	moq_sessions_total{root,tier,node}
//	moq_sessions_closed_total{root,tier,node}
//	moq_sessions_live{root,tier,node}               gauge
//
// tier is "external" (the default tier), "internal", or a newer
// producer's tier label; role is "publisher" (egress) or "subscriber"
// (ingress). Rates are left to PromQL: rate(moq_broadcast_bytes_total[1m]).
//
// # Label values
//
// Broadcast paths, roots and nodes are label values as the producer
// normalized them: valid UTF-8 (the decoder rejects anything else), with
// no leading, trailing or doubled '/'. Two cases to know: a path that
// normalizes to empty, and a node that publishes without a node name,
// get the label value "", which Prometheus treats as the label being
// absent (match them with broadcast="" or node=""); and a newer
// producer's tier literally named "external" shares the default tier's
// value.
//
// # Cardinality
//
// Every family has one series per distinct label tuple that ever had an
// entry: the Aggregator keeps every key it saw, so a broadcast that ended
// keeps its series (with its final totals) until the process restarts.
// Two options bound that: Config.BroadcastSegments cuts the broadcast
// label to its first N path segments (1: per customer instead of per
// broadcast) and Config.DropNode sums over nodes.
//
// Series per broadcast family, for an example fleet of 20 nodes, 500
// customers (first path segment) and 10,000 broadcasts, each seen in 7
// (tier, role, node) places (ingress on its origin node, egress on 3
// edges, internal egress on the origin and internal ingress on 2 edges)
// and in 4 (tier, role) pairs:
//
//	labels                          series per family     example
//	broadcast, tier, role, node     broadcasts x places   70,000
//	broadcast, tier, role           broadcasts x pairs    40,000
//	customer, tier, role, node      customers x places*   10,000 (at most 40,000)
//	customer, tier, role            customers x pairs      2,000
//
// (*: the (tier, role, node) places a customer's broadcasts use, at most
// 4 x 20 = 80; 20 in the example.) Multiply by 9 families (12 with
// NewerFields); the viewers gauge has the publisher half of the places.
// Broadcasts that come and go add series: with 50,000 distinct broadcasts
// a day, per-broadcast labels add 350,000 series per family per day until
// a restart; per-customer labels add none once every customer was seen.
// Session families have roots x tiers x nodes series (500 x 2 x 20 =
// 20,000 each; 1,000 without the node label).
//
// # Restarts
//
// The collector's counters start with the Aggregator. An in-process
// collector starts with its Stats, so its totals are exact. An aggregator
// that restarts reads the current counts of every entry live at that
// moment, history included, as its new starting values: Prometheus sees a
// counter reset, and increase() over the restart counts that history a
// second time. Keep an aggregator for billing long-lived.
package promstats
