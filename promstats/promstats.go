package promstats

import (
	"errors"
	"strings"
	"sync"
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

// Collector is a prometheus.Collector over a consumer.Aggregator: every
// scrape takes a View and sums it into the configured label sets, so the
// same collector serves a relay exporting its own counters and an
// aggregator following many nodes. A Collector is safe for concurrent
// scrapes.
type Collector struct {
	cfg      Config
	counters []family // one per exported Traffic field
	expired  []family // the same fields' expired totals
	viewers  *prometheus.Desc
	sessions *prometheus.Desc
	closed   *prometheus.Desc
	liveSess *prometheus.Desc
	// Expired session totals, and the keys expired.
	sessionsExpired, closedExpired *prometheus.Desc
	expiredKeys, expiredRoots      *prometheus.Desc

	// merges: a series may sum several rows (BroadcastSegments or
	// DropNode), so a row that expires while others of its series stay
	// is carried (see "Expiry" in the package doc).
	merges bool

	// mu makes scrapes one at a time, and guards rows and carry.
	mu sync.Mutex
	// rows holds, with merges, every row of the last scrape: the series
	// it went to and its lifetime total then.
	rows map[rowID]rowTotal
	// carry holds, per series, the totals of its rows that expired while
	// it kept others: they stay in the series, and out of the expired
	// families.
	carry map[series]*counts
}

// counts is a row's or series' counters, indexed by consumer.TrafficField
// (a session series uses consumer.Sessions and consumer.SessionsClosed).
type counts = [consumer.NumTrafficFields]uint64

// rowID names one row of a View: a key on one node's track.
type rowID struct {
	node  string
	track consumer.Track
	key   string
}

type rowTotal struct {
	s     series
	total counts
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
		c.expired = append(c.expired, family{f, prometheus.NewDesc(
			"moq_broadcast_"+f.String()+"_expired_total", help[f]+" Lifetime total of the broadcasts dropped by expiry, whose series are gone: add it to the sum of moq_broadcast_"+f.String()+"_total for exact totals; it jumps at every expiry, so never rate it.",
			node("tier", "role"), nil)})
	}
	c.expiredKeys = prometheus.NewDesc("moq_broadcast_expired_keys_total",
		"Broadcasts dropped by expiry (consumer.Config.ExpireAfter), per track.", node("tier", "role"), nil)
	c.sessionsExpired = prometheus.NewDesc("moq_sessions_expired_total",
		"Sessions connected under the auth roots dropped by expiry, whose series are gone: add it to the sum of moq_sessions_total for exact totals; never rate it.", node("tier"), nil)
	c.closedExpired = prometheus.NewDesc("moq_sessions_closed_expired_total",
		"Sessions disconnected under the auth roots dropped by expiry: add it to the sum of moq_sessions_closed_total; never rate it.", node("tier"), nil)
	c.expiredRoots = prometheus.NewDesc("moq_sessions_expired_roots_total",
		"Auth roots dropped by expiry (consumer.Config.ExpireAfter), per track.", node("tier"), nil)
	if c.merges = cfg.BroadcastSegments > 0 || cfg.DropNode; c.merges {
		c.rows, c.carry = map[rowID]rowTotal{}, map[series]*counts{}
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
	for _, f := range c.expired {
		ch <- f.desc
	}
	ch <- c.expiredKeys
	ch <- c.viewers
	ch <- c.sessions
	ch <- c.closed
	ch <- c.liveSess
	ch <- c.sessionsExpired
	ch <- c.closedExpired
	ch <- c.expiredRoots
}

// series is one label tuple: broadcast (or root), tier, role, node; role
// is "" for a session series, and node "" with DropNode.
type series struct{ key, tier, role, node string }

// group is the tuple of an expired family: series without its key.
func (s series) group() series { return series{tier: s.tier, role: s.role, node: s.node} }

// Collect sends one sample per label tuple and family, summing the
// Aggregator's rows that share a tuple, and the expired totals per track
// tuple (tier, role, node), less what series still carry.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.cfg.Aggregator.View(c.cfg.Now())
	totals := map[series]*counts{} // broadcast and session series
	viewers := map[series]uint64{}
	live := map[series]uint64{} // sessions connected now
	var rows map[rowID]rowTotal
	if c.merges {
		rows = make(map[rowID]rowTotal, len(c.rows))
	}
	add := func(s series, id rowID, total *counts) {
		t := totals[s]
		if t == nil {
			t = new(counts)
			totals[s] = t
		}
		addCounts(t, total)
		if rows != nil {
			rows[id] = rowTotal{s, *total}
		}
	}
	for i := range v.Broadcasts {
		r := &v.Broadcasts[i]
		s := series{key: c.broadcastLabel(r.Broadcast), tier: r.Track.TierName(), role: r.Track.Kind.String(), node: c.node(r.Node)}
		var total counts
		for _, f := range consumer.TrafficFields() {
			total[f] = r.Total.Field(f)
		}
		add(s, rowID{r.Node, r.Track, r.Broadcast}, &total)
		if r.Track.Kind == consumer.Publisher {
			s.role = ""
			viewers[s] = addSat(viewers[s], r.Viewers())
		}
	}
	for i := range v.Sessions {
		r := &v.Sessions[i]
		s := series{key: r.Root, tier: r.Track.TierName(), node: c.node(r.Node)}
		add(s, rowID{r.Node, r.Track, r.Root}, &counts{r.Total.Sessions, r.Total.SessionsClosed})
		live[s] = addSat(live[s], r.Live())
	}
	if c.merges {
		c.carryExpired(rows, totals)
	}

	// The expired families: what the Aggregator folded, per track tuple,
	// less what the series above carry.
	expired := map[series]*counts{}
	keys := map[series]uint64{}
	for i := range v.Tracks {
		tr := &v.Tracks[i]
		if tr.ExpiredKeys == 0 {
			continue
		}
		g := series{tier: tr.Track.TierName(), node: c.node(tr.Node)}
		var folded counts
		if tr.Track.Kind == consumer.SessionsKind {
			folded[consumer.Sessions], folded[consumer.SessionsClosed] = tr.ExpiredSessions.Sessions, tr.ExpiredSessions.SessionsClosed
		} else {
			g.role = tr.Track.Kind.String()
			for _, f := range consumer.TrafficFields() {
				folded[f] = tr.Expired.Field(f)
			}
		}
		e := expired[g]
		if e == nil {
			e = new(counts)
			expired[g] = e
		}
		addCounts(e, &folded)
		keys[g] = addSat(keys[g], uint64(tr.ExpiredKeys))
	}
	for s, carried := range c.carry {
		if e := expired[s.group()]; e != nil {
			for i := range e {
				e[i] -= min(e[i], carried[i])
			}
		}
	}

	for s, t := range totals {
		if s.role == "" {
			c.send(ch, c.sessions, prometheus.CounterValue, t[consumer.Sessions], s.key, s.tier, s.node)
			c.send(ch, c.closed, prometheus.CounterValue, t[consumer.SessionsClosed], s.key, s.tier, s.node)
			c.send(ch, c.liveSess, prometheus.GaugeValue, live[s], s.key, s.tier, s.node)
			continue
		}
		for _, f := range c.counters {
			c.send(ch, f.desc, prometheus.CounterValue, t[f.field], s.key, s.tier, s.role, s.node)
		}
	}
	for s, n := range viewers {
		c.send(ch, c.viewers, prometheus.GaugeValue, n, s.key, s.tier, s.node)
	}
	for g, e := range expired {
		if g.role == "" {
			c.send(ch, c.sessionsExpired, prometheus.CounterValue, e[consumer.Sessions], g.tier, g.node)
			c.send(ch, c.closedExpired, prometheus.CounterValue, e[consumer.SessionsClosed], g.tier, g.node)
			c.send(ch, c.expiredRoots, prometheus.CounterValue, keys[g], g.tier, g.node)
			continue
		}
		for _, f := range c.expired {
			c.send(ch, f.desc, prometheus.CounterValue, e[f.field], g.tier, g.role, g.node)
		}
		c.send(ch, c.expiredKeys, prometheus.CounterValue, keys[g], g.tier, g.role, g.node)
	}
}

// carryExpired keeps series that merge rows from going down when some of
// their rows expire: a row of the last scrape that is gone (or came back
// lower, so it expired and a new key took its name) adds its last total
// to its series' carry, and the carry of every series is added to its
// total. A series with no rows left is gone, and so is its carry, which
// the expired families then hold. c.mu must be held.
func (c *Collector) carryExpired(rows map[rowID]rowTotal, totals map[series]*counts) {
	for id, old := range c.rows {
		if now, ok := rows[id]; ok && !below(&now.total, &old.total) {
			continue
		}
		carried := c.carry[old.s]
		if carried == nil {
			carried = new(counts)
			c.carry[old.s] = carried
		}
		addCounts(carried, &old.total)
	}
	for s, carried := range c.carry {
		if t := totals[s]; t != nil {
			addCounts(t, carried)
		} else {
			delete(c.carry, s)
		}
	}
	c.rows = rows
}

// below reports whether a counter of a is below b's.
func below(a, b *counts) bool {
	for i := range a {
		if a[i] < b[i] {
			return true
		}
	}
	return false
}

// node returns the node label value of a row's node.
func (c *Collector) node(n string) string {
	if c.cfg.DropNode {
		return ""
	}
	return n
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

func addCounts(dst, src *counts) {
	for i := range dst {
		dst[i] = addSat(dst[i], src[i])
	}
}

func addSat(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<64 - 1
}
