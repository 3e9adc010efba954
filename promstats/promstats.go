package promstats

import (
	"errors"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moqstats/moqstats/consumer"
)

// Config configures New.
type Config struct {
	// Aggregator is what the collector reads at every scrape; required.
	Aggregator *consumer.Aggregator
	// BroadcastSegments, when > 0, cuts the broadcast label to the first
	// N segments of the path and sums the broadcasts that share them: 1
	// turns "acme/live/cam1" into "acme", per customer instead of per
	// broadcast. A path with fewer segments keeps them all.
	BroadcastSegments int
	// DropNode removes the node label from every family, summing over
	// nodes.
	DropNode bool
	// NewerFields also exports announced_bytes, fetches and datagrams,
	// which newer producers write (moqstats writes none of them, so they
	// would always read 0).
	NewerFields bool
	// Now returns the time a scrape reads the Aggregator at; default
	// time.Now.
	Now func() time.Time
}

// Collector is a prometheus.Collector over a consumer.Aggregator. It holds
// no state of its own: every scrape takes a View and sums it into the
// configured label sets, so the same collector serves a relay exporting
// its own counters and an aggregator following many nodes.
type Collector struct {
	cfg      Config
	counters []family // one per exported Traffic field
	viewers  *prometheus.Desc
	sessions *prometheus.Desc
	closed   *prometheus.Desc
	liveSess *prometheus.Desc
}

type family struct {
	field consumer.TrafficField
	desc  *prometheus.Desc
}

// help describes each Traffic field's counter family.
var help = map[consumer.TrafficField]string{
	consumer.Announced:           "Broadcast announces (announce guards opened).",
	consumer.AnnouncedClosed:     "Broadcast unannounces (announce guards closed).",
	consumer.AnnouncedBytes:      "Bytes of broadcast names announced and unannounced (newer producers).",
	consumer.Broadcasts:          "Sessions that started subscribing to the broadcast (a session's first live subscription).",
	consumer.BroadcastsClosed:    "Sessions that stopped subscribing to the broadcast (a session's last subscription closing).",
	consumer.Subscriptions:       "Track subscriptions opened.",
	consumer.SubscriptionsClosed: "Track subscriptions closed.",
	consumer.Fetches:             "Group fetches requested (newer producers).",
	consumer.Bytes:               "Payload bytes.",
	consumer.Frames:              "Payload frames.",
	consumer.Groups:              "Payload groups.",
	consumer.Datagrams:           "Groups carried as datagrams (newer producers).",
}

// ErrNoAggregator is returned by New without a Config.Aggregator.
var ErrNoAggregator = errors.New("promstats: Config.Aggregator is nil")

// New returns a Collector; register it with a prometheus.Registerer.
func New(cfg Config) (*Collector, error) {
	if cfg.Aggregator == nil {
		return nil, ErrNoAggregator
	}
	if cfg.BroadcastSegments < 0 {
		return nil, errors.New("promstats: negative Config.BroadcastSegments")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Collector{cfg: cfg}
	node := func(labels ...string) []string {
		if cfg.DropNode {
			return labels
		}
		return append(labels, "node")
	}
	for _, f := range consumer.TrafficFields() {
		if !cfg.NewerFields && (f == consumer.AnnouncedBytes || f == consumer.Fetches || f == consumer.Datagrams) {
			continue
		}
		c.counters = append(c.counters, family{f, prometheus.NewDesc(
			"moq_broadcast_"+f.String()+"_total", help[f]+" Lifetime total over counter resets.",
			node("broadcast", "tier", "role"), nil)})
	}
	c.viewers = prometheus.NewDesc("moq_broadcast_viewers",
		"Sessions subscribed to the broadcast now (broadcasts - broadcasts_closed on the egress side).",
		node("broadcast", "tier"), nil)
	c.sessions = prometheus.NewDesc("moq_sessions_total",
		"Sessions connected under the auth root. Lifetime total over counter resets.", node("root", "tier"), nil)
	c.closed = prometheus.NewDesc("moq_sessions_closed_total",
		"Sessions disconnected under the auth root. Lifetime total over counter resets.", node("root", "tier"), nil)
	c.liveSess = prometheus.NewDesc("moq_sessions_live",
		"Sessions connected under the auth root now.", node("root", "tier"), nil)
	return c, nil
}

// Describe sends the descriptors of every family.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.counters {
		ch <- f.desc
	}
	ch <- c.viewers
	ch <- c.sessions
	ch <- c.closed
	ch <- c.liveSess
}

// series is one label tuple: broadcast (or root), tier, role, node.
type series struct{ key, tier, role, node string }

// Collect sends one sample per label tuple and family, summing the
// Aggregator's rows that share a tuple.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	v := c.cfg.Aggregator.View(c.cfg.Now())
	traffic := map[series]*consumer.Traffic{}
	viewers := map[series]uint64{}
	for i := range v.Broadcasts {
		r := &v.Broadcasts[i]
		s := series{key: c.broadcastLabel(r.Broadcast), tier: r.Track.TierName(), role: r.Track.Kind.String(), node: r.Node}
		if c.cfg.DropNode {
			s.node = ""
		}
		t := traffic[s]
		if t == nil {
			t = new(consumer.Traffic)
			traffic[s] = t
		}
		addTraffic(t, &r.Total)
		if r.Track.Kind == consumer.Publisher {
			s.role = ""
			viewers[s] = addSat(viewers[s], r.Viewers())
		}
	}
	for s, t := range traffic {
		for _, f := range c.counters {
			c.send(ch, f.desc, prometheus.CounterValue, t.Field(f.field), s.key, s.tier, s.role, s.node)
		}
	}
	for s, n := range viewers {
		c.send(ch, c.viewers, prometheus.GaugeValue, n, s.key, s.tier, s.node)
	}

	sessions := map[series]*[3]uint64{} // opened, closed, live
	for i := range v.Sessions {
		r := &v.Sessions[i]
		s := series{key: r.Root, tier: r.Track.TierName(), node: r.Node}
		if c.cfg.DropNode {
			s.node = ""
		}
		p := sessions[s]
		if p == nil {
			p = new([3]uint64)
			sessions[s] = p
		}
		p[0] = addSat(p[0], r.Total.Sessions)
		p[1] = addSat(p[1], r.Total.SessionsClosed)
		p[2] = addSat(p[2], r.Live())
	}
	for s, p := range sessions {
		c.send(ch, c.sessions, prometheus.CounterValue, p[0], s.key, s.tier, s.node)
		c.send(ch, c.closed, prometheus.CounterValue, p[1], s.key, s.tier, s.node)
		c.send(ch, c.liveSess, prometheus.GaugeValue, p[2], s.key, s.tier, s.node)
	}
}

// send sends one sample. labels end with the node, which is cut off when
// the node label is dropped.
func (c *Collector) send(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v uint64, labels ...string) {
	if c.cfg.DropNode {
		labels = labels[:len(labels)-1]
	}
	m, err := prometheus.NewConstMetric(d, t, float64(v), labels...)
	if err != nil {
		// Label values are valid UTF-8 (the decoder rejects anything
		// else), so this is a bug; report it as the registry would.
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}

// broadcastLabel cuts a broadcast path to its first BroadcastSegments
// segments.
func (c *Collector) broadcastLabel(path string) string {
	n := c.cfg.BroadcastSegments
	if n <= 0 {
		return path
	}
	i := 0
	for range n {
		j := strings.IndexByte(path[i:], '/')
		if j < 0 {
			return path
		}
		i += j + 1
	}
	return path[:i-1]
}

func addTraffic(dst, src *consumer.Traffic) {
	dst.Announced = addSat(dst.Announced, src.Announced)
	dst.AnnouncedClosed = addSat(dst.AnnouncedClosed, src.AnnouncedClosed)
	dst.AnnouncedBytes = addSat(dst.AnnouncedBytes, src.AnnouncedBytes)
	dst.Broadcasts = addSat(dst.Broadcasts, src.Broadcasts)
	dst.BroadcastsClosed = addSat(dst.BroadcastsClosed, src.BroadcastsClosed)
	dst.Subscriptions = addSat(dst.Subscriptions, src.Subscriptions)
	dst.SubscriptionsClosed = addSat(dst.SubscriptionsClosed, src.SubscriptionsClosed)
	dst.Fetches = addSat(dst.Fetches, src.Fetches)
	dst.Bytes = addSat(dst.Bytes, src.Bytes)
	dst.Frames = addSat(dst.Frames, src.Frames)
	dst.Groups = addSat(dst.Groups, src.Groups)
	dst.Datagrams = addSat(dst.Datagrams, src.Datagrams)
}

func addSat(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<64 - 1
}
