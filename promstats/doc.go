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
// and, once the Aggregator expired keys of a track (see Expiry):
//
//	moq_broadcast_<field>_expired_total{tier,role,node}   one per field above
//	moq_broadcast_expired_keys_total{tier,role,node}
//	moq_sessions_expired_total{tier,node}
//	moq_sessions_closed_expired_total{tier,node}
//	moq_sessions_expired_roots_total{tier,node}
//
// tier is "external" (the default tier), "internal", or a newer
// producer's tier label; role is "publisher" (egress) or "subscriber"
// (ingress). Rates are left to PromQL: rate(moq_broadcast_bytes_total[1m]).
//
// # Expiry
//
// With consumer.Config.ExpireAfter, the Aggregator drops keys idle for
// that long and folds their lifetime totals into their track's expired
// totals. Their series disappear (Prometheus marks them stale), which is
// what bounds the series a long-lived aggregator exports, and their
// totals move to the expired families, labelled by what remains of the
// series: tier, role and node. So at every scrape, summed over series,
//
//	sum(moq_broadcast_bytes_total) + (sum(moq_broadcast_bytes_expired_total) or vector(0))
//
// is the exact lifetime total, as consumer.View.Total gives it, and the
// difference of that sum between two instants is the traffic in between.
// The expired families jump by a key's whole total when it expires: read
// them as values, never with rate() or increase(). The live families
// lose nothing to expiry: a key expires only after ExpireAfter without a
// change, so its series had a rate of 0 when it went, and
// sum(rate(moq_broadcast_bytes_total[1m])) is unaffected.
//
// A series that sums several rows (BroadcastSegments, or DropNode)
// must not go down when one of its rows expires while others stay:
// Prometheus would take it for a counter reset, and increase() would
// count the whole series again. So the collector keeps the last total of
// every row it exported, and a row that is gone (or came back lower: it
// expired and a new key took its name) leaves its total in its series,
// which carries it until its last row goes; only then do the expired
// families take it. Such a series never goes down. Per-row series need no
// carrying: an expired row's series just ends. The memory this takes is
// one map entry per row exported (its names, its series' labels and
// twelve counters), and only with BroadcastSegments or DropNode.
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
// Every family has one series per distinct label tuple that has an
// entry: without consumer.Config.ExpireAfter the Aggregator keeps every
// key it saw, so a broadcast that ended keeps its series (with its final
// totals) until the process restarts; with it, a key idle for
// ExpireAfter goes, and its series with it (see Expiry). Two options
// bound the series further: Config.BroadcastSegments cuts the broadcast
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
// a restart (or until they expire, with ExpireAfter); per-customer labels
// add none once every customer was seen. Session families have roots x
// tiers x nodes series (500 x 2 x 20 = 20,000 each; 1,000 without the
// node label).
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
