package consumer_test

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/memorigin"
)

// slot is a (tier, role) of a broadcast entry; role 0 is publisher.
type slot struct {
	tier moqstats.Tier
	role int
}

func (s slot) track() consumer.Track {
	tr := consumer.Track{Kind: consumer.Publisher}
	if s.role == 1 {
		tr.Kind = consumer.Subscriber
	}
	if s.tier == moqstats.Internal {
		tr.Tier = "internal"
	}
	return tr
}

type bkey struct {
	slot slot
	path string
}

type skey struct {
	tier moqstats.Tier
	root string
}

// trafficModel drives a real Stats at random and keeps, beside it, what
// every bump added: the totals the consumer must compute from the frames.
type trafficModel struct {
	rng   *rand.Rand
	stats *moqstats.Stats
	paths []string
	roots []string

	want         map[bkey]*consumer.Traffic
	wantSessions map[skey]*consumer.Presence

	bcast    []openBroadcast
	tracks   []openTrack
	viewers  []openViewer
	trackers map[slot][]*moqstats.SessionBroadcasts
	sessions []openSession
	owners   map[*moqstats.SubscriptionGuard]*moqstats.SessionBroadcasts

	// flush runs a pass; mayFail lets the write hook fail its writes.
	flush func(mayFail bool)
	// newer: the Stats writes the twelve fields (Config.NewerCounters),
	// so the model counts announced_bytes, and also runs fetches and
	// datagrams.
	newer bool
	// flushOnOpen flushes after every guard open: see
	// TestLifetimeTotalsWithoutRetention for why.
	flushOnOpen bool
	pins        map[string]int // open guards by path
	used        map[string]bool
	flushes     int
	reopened    int // opens on a path some guard used before, with none open
}

type openBroadcast struct {
	k bkey
	g *moqstats.BroadcastGuard
}

type openTrack struct {
	k bkey
	g *moqstats.TrackGuard
}

type openViewer struct {
	k bkey
	g *moqstats.SubscriptionGuard
}

type openSession struct {
	k skey
	g *moqstats.SessionGuard
}

func (m *trafficModel) add(k bkey, f consumer.TrafficField, n uint64) {
	w := m.want[k]
	if w == nil {
		w = new(consumer.Traffic)
		m.want[k] = w
	}
	if (f == consumer.AnnouncedBytes || f == consumer.Fetches || f == consumer.Datagrams) && !m.newer {
		return // bumped, but not written
	}
	*fieldPtr(w, f) += n
}

// announce counts an announce guard opening or closing on k.
func (m *trafficModel) announce(k bkey, f consumer.TrafficField) {
	m.add(k, f, 1)
	m.add(k, consumer.AnnouncedBytes, uint64(len(k.path)))
}

// opened records a guard opening on path.
func (m *trafficModel) opened(path string) {
	if m.pins[path] == 0 && m.used[path] {
		m.reopened++
	}
	m.pins[path]++
	m.used[path] = true
	if m.flushOnOpen {
		m.flush(false)
	}
}

func (m *trafficModel) closed(path string) { m.pins[path]-- }

func (m *trafficModel) randomKey() bkey {
	return bkey{
		slot: slot{tier: moqstats.Tier(m.rng.IntN(2)), role: m.rng.IntN(2)},
		path: m.paths[m.rng.IntN(len(m.paths))],
	}
}

func (m *trafficModel) step() {
	switch op := m.rng.IntN(100); {
	case op < 8: // announce
		k := m.randomKey()
		b := m.stats.Tier(k.slot.tier).Broadcast(k.path)
		var g *moqstats.BroadcastGuard
		if k.slot.role == 0 {
			g = b.Publisher()
		} else {
			g = b.Subscriber()
		}
		m.announce(k, consumer.Announced)
		m.bcast = append(m.bcast, openBroadcast{k, g})
		m.opened(k.path)
	case op < 14 && len(m.bcast) > 0: // unannounce
		i := m.rng.IntN(len(m.bcast))
		o := m.bcast[i]
		m.bcast = append(m.bcast[:i], m.bcast[i+1:]...)
		o.g.Close()
		m.announce(o.k, consumer.AnnouncedClosed)
		m.closed(o.k.path)
	case op < 24: // a track subscription, on an open announce or on its own
		var k bkey
		var g *moqstats.TrackGuard
		if len(m.bcast) > 0 && m.rng.IntN(2) == 0 {
			o := m.bcast[m.rng.IntN(len(m.bcast))]
			k, g = o.k, o.g.Track("video")
		} else {
			k = m.randomKey()
			b := m.stats.Tier(k.slot.tier).Broadcast(k.path)
			if k.slot.role == 0 {
				g = b.PublisherTrack("video")
			} else {
				g = b.SubscriberTrack("video")
			}
		}
		m.add(k, consumer.Subscriptions, 1)
		m.tracks = append(m.tracks, openTrack{k, g})
		m.opened(k.path)
	case op < 34 && len(m.tracks) > 0:
		i := m.rng.IntN(len(m.tracks))
		o := m.tracks[i]
		m.tracks = append(m.tracks[:i], m.tracks[i+1:]...)
		o.g.Close()
		m.add(o.k, consumer.SubscriptionsClosed, 1)
		m.closed(o.k.path)
	case op < 60 && m.newer && len(m.bcast) > 0 && m.rng.IntN(4) == 0: // a fetch
		o := m.bcast[m.rng.IntN(len(m.bcast))]
		g := o.g.Fetch("video")
		m.add(o.k, consumer.Fetches, 1)
		m.opened(o.k.path)
		n := uint64(m.rng.IntN(5000))
		g.Bytes(n)
		m.add(o.k, consumer.Bytes, n)
		g.Close()
		m.closed(o.k.path)
	case op < 60 && len(m.tracks) > 0: // payload
		o := m.tracks[m.rng.IntN(len(m.tracks))]
		if m.newer && m.rng.IntN(4) == 0 {
			n := uint64(m.rng.IntN(1200))
			o.g.Datagram(n)
			m.add(o.k, consumer.Datagrams, 1)
			m.add(o.k, consumer.Groups, 1)
			m.add(o.k, consumer.Frames, 1)
			m.add(o.k, consumer.Bytes, n)
			break
		}
		switch m.rng.IntN(3) {
		case 0:
			n := uint64(m.rng.IntN(1 << uint(m.rng.IntN(20))))
			o.g.Bytes(n)
			m.add(o.k, consumer.Bytes, n)
		case 1:
			o.g.Frame()
			m.add(o.k, consumer.Frames, 1)
		case 2:
			o.g.Group()
			m.add(o.k, consumer.Groups, 1)
		}
	case op < 68: // a viewer session subscribing
		k := m.randomKey()
		trackers := m.trackers[k.slot]
		if len(trackers) == 0 || m.rng.IntN(3) == 0 {
			h := m.stats.Tier(k.slot.tier)
			var sb *moqstats.SessionBroadcasts
			if k.slot.role == 0 {
				sb = h.PublisherBroadcasts()
			} else {
				sb = h.SubscriberBroadcasts()
			}
			m.trackers[k.slot] = append(trackers, sb)
			trackers = m.trackers[k.slot]
		}
		sb := trackers[m.rng.IntN(len(trackers))]
		// The sentinel counts the session's first live subscription.
		first := true
		for _, v := range m.viewers {
			if v.k == k && m.owner(v) == sb {
				first = false
			}
		}
		g := sb.Subscribe(k.path)
		if first {
			m.add(k, consumer.Broadcasts, 1)
		}
		m.viewers = append(m.viewers, openViewer{k, g})
		m.owners[g] = sb
		m.opened(k.path)
	case op < 76 && len(m.viewers) > 0:
		i := m.rng.IntN(len(m.viewers))
		o := m.viewers[i]
		m.viewers = append(m.viewers[:i], m.viewers[i+1:]...)
		o.g.Close()
		last := true
		for _, v := range m.viewers {
			if v.k == o.k && m.owner(v) == m.owner(o) {
				last = false
			}
		}
		if last {
			m.add(o.k, consumer.BroadcastsClosed, 1)
		}
		m.closed(o.k.path)
	case op < 84: // a session connecting
		k := skey{tier: moqstats.Tier(m.rng.IntN(2)), root: m.roots[m.rng.IntN(len(m.roots))]}
		g := m.stats.Tier(k.tier).Session(k.root)
		m.session(k).Sessions++
		m.sessions = append(m.sessions, openSession{k, g})
		if m.flushOnOpen {
			m.flush(false)
		}
	case op < 92 && len(m.sessions) > 0:
		i := m.rng.IntN(len(m.sessions))
		o := m.sessions[i]
		m.sessions = append(m.sessions[:i], m.sessions[i+1:]...)
		o.g.Close()
		m.session(o.k).SessionsClosed++
	case op >= 92:
		m.flush(true)
	}
}

func (m *trafficModel) owner(v openViewer) *moqstats.SessionBroadcasts { return m.owners[v.g] }

func (m *trafficModel) session(k skey) *consumer.Presence {
	p := m.wantSessions[k]
	if p == nil {
		p = new(consumer.Presence)
		m.wantSessions[k] = p
	}
	return p
}

// closeAll closes every open guard, counting what the closes bump.
func (m *trafficModel) closeAll() {
	for _, o := range m.bcast {
		o.g.Close()
		m.announce(o.k, consumer.AnnouncedClosed)
	}
	for _, o := range m.tracks {
		o.g.Close()
		m.add(o.k, consumer.SubscriptionsClosed, 1)
	}
	closedSessions := map[*moqstats.SessionBroadcasts]map[bkey]bool{}
	for _, o := range m.viewers {
		o.g.Close()
		sb := m.owner(o)
		if closedSessions[sb] == nil {
			closedSessions[sb] = map[bkey]bool{}
		}
		if !closedSessions[sb][o.k] {
			closedSessions[sb][o.k] = true
			m.add(o.k, consumer.BroadcastsClosed, 1)
		}
	}
	for _, o := range m.sessions {
		o.g.Close()
		m.session(o.k).SessionsClosed++
	}
	m.bcast, m.tracks, m.viewers, m.sessions = nil, nil, nil, nil
	clear(m.pins)
}

var errInjected = errors.New("injected write failure")

// modelRun is one way of running the model against a real Stats.
type modelRun struct {
	producer moqstats.Config // Origin and Node are set by run
	consumer consumer.Config
	// flushOnOpen: see trafficModel.flushOnOpen.
	flushOnOpen bool
	// clockStep advances the frames' clock by this much per Flush; 0
	// stamps frames with time.Now, for producers whose retention runs on
	// their own clock.
	clockStep time.Duration
	// failures makes about a third of the writes of random flushes fail.
	failures bool
}

// modelResult is what a run leaves for its checks.
type modelResult struct {
	m        *trafficModel
	view     *consumer.View
	failures int64
}

// run drives a real Stats, publishing through a consumer.Origin (so every
// frame that reached memorigin reaches the Aggregator when it is
// written) with steps random operations, then closes every guard and the
// Stats, and returns the Aggregator's View.
func (r modelRun) run(t *testing.T, seed uint64, steps int) modelResult {
	t.Helper()
	agg, err := consumer.New(r.consumer)
	if err != nil {
		t.Fatal(err)
	}
	var clockMu sync.Mutex
	clock := time.Unix(1_700_000_000, 0)
	now := func() time.Time {
		if r.clockStep == 0 {
			return time.Now()
		}
		clockMu.Lock()
		defer clockMu.Unlock()
		return clock
	}
	mem := memorigin.New()
	cfg := r.producer
	cfg.Origin = consumer.NewOrigin(mem, agg, consumer.OriginOptions{Now: now})
	cfg.Node = "edge/1"
	cfg.Logger = slog.New(slog.DiscardHandler)
	stats, err := moqstats.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := mem.Lookup(stats.Path())
	if !ok {
		t.Fatalf("%s not announced", stats.Path())
	}
	var (
		failing  atomic.Bool
		failures atomic.Int64
		hookMu   sync.Mutex
		hookRng  = rand.New(rand.NewPCG(seed, 0xfa11))
	)
	b.SetWriteHook(func(string, []byte) error {
		if !failing.Load() {
			return nil
		}
		hookMu.Lock()
		fail := hookRng.IntN(3) == 0
		hookMu.Unlock()
		if fail {
			failures.Add(1)
			return errInjected
		}
		return nil
	})

	m := &trafficModel{
		rng: rand.New(rand.NewPCG(seed, 0x5eed)), stats: stats,
		paths: []string{"acme/live", "acme/vod/1", "beta", "gamma/x"}, roots: []string{"acme", "", "beta"},
		want: map[bkey]*consumer.Traffic{}, wantSessions: map[skey]*consumer.Presence{},
		pins: map[string]int{}, used: map[string]bool{}, trackers: map[slot][]*moqstats.SessionBroadcasts{},
		owners: map[*moqstats.SubscriptionGuard]*moqstats.SessionBroadcasts{}, flushOnOpen: r.flushOnOpen,
	}
	m.flush = func(mayFail bool) {
		failing.Store(mayFail && r.failures)
		err := stats.Flush()
		failing.Store(false)
		if err != nil && !errors.Is(err, errInjected) {
			t.Fatal(err)
		}
		m.flushes++
		clockMu.Lock()
		clock = clock.Add(r.clockStep)
		clockMu.Unlock()
	}
	for range steps {
		m.step()
	}
	// Close whatever is open, then the Stats: its final pass writes the
	// last frames, and its broadcast closing ends every track.
	m.closeAll()
	b.SetWriteHook(nil)
	if err := stats.Close(); err != nil {
		t.Fatal(err)
	}
	return modelResult{m: m, view: agg.View(now()), failures: failures.Load()}
}

func tierName(t moqstats.Tier) string {
	if t == moqstats.Internal {
		return "internal"
	}
	return ""
}

// checkKeys fails t unless every key's lifetime total is what was bumped
// on it, no other key has a row, and the node ended.
func (res modelResult) checkKeys(t *testing.T) {
	t.Helper()
	v := res.view
	rows := 0
	for k, want := range res.m.want {
		tr := k.slot.track()
		if got := v.BroadcastTotal(tr.Tier, tr.Kind, k.path); got != *want {
			t.Errorf("%s %q: consumer totals\n %+v\nwant what was bumped\n %+v", tr.Name(), k.path, got, *want)
		}
		if *want != (consumer.Traffic{}) {
			rows++
		}
	}
	if len(v.Broadcasts) != rows {
		t.Errorf("%d broadcast rows, want %d", len(v.Broadcasts), rows)
	}
	for k, want := range res.m.wantSessions {
		if got := v.SessionTotal(tierName(k.tier), k.root); got != *want {
			t.Errorf("sessions tier %v root %q: got %+v, want %+v", k.tier, k.root, got, *want)
		}
	}
	res.checkEnded(t)
}

func (res modelResult) checkEnded(t *testing.T) {
	t.Helper()
	v := res.view
	for _, tr := range v.Tracks {
		if !tr.Ended {
			t.Errorf("track %s not ended after the Stats closed", tr.Track.Name())
		}
	}
	for _, tier := range []string{"", "internal"} {
		if n := v.TotalViewers(tier); n != 0 {
			t.Errorf("tier %q: %d viewers after the node ended, want 0", tier, n)
		}
		for _, r := range v.Sessions {
			if r.Live() != 0 {
				t.Errorf("root %q: %d live sessions after the node ended", r.Root, r.Live())
			}
		}
	}
}

// newSegments counts the segments after the first, over every row.
func newSegments(v *consumer.View) int {
	n := 0
	for _, r := range v.Broadcasts {
		n += r.Segments - 1
	}
	for _, r := range v.Sessions {
		n += r.Segments - 1
	}
	return n
}

func seeds(short, long int) int {
	if testing.Short() {
		return short
	}
	return long
}

// With retention (moqstats' default window, which this test never
// outlasts) and the consumer assuming the same window, nothing about the
// schedule is restricted: guards open and close at random, passes run
// every millisecond in the background besides random Flushes, so entries
// are collected and re-created at any moment, and a third of the writes
// of the random Flushes fail. A retained key continues from its counts
// and a successor of an entry whose final write failed continues from
// it, so no counter ever goes down: the lifetime totals must equal what
// was bumped exactly, and no row may have a second segment.
func TestLifetimeTotalsUnderRetention(t *testing.T) {
	reopened, failures := 0, int64(0)
	for seed := range uint64(seeds(4, 16)) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			res := modelRun{
				producer: moqstats.Config{Interval: time.Millisecond},
				failures: true,
			}.run(t, seed, 800)
			res.checkKeys(t)
			if n := newSegments(res.view); n != 0 {
				t.Errorf("%d new segments counted within retention, want 0", n)
			}
			reopened += res.m.reopened
			failures += res.failures
		})
	}
	if reopened == 0 || failures == 0 {
		t.Fatalf("%d paths reopened after every guard closed, %d writes failed: the schedule exercises neither", reopened, failures)
	}
}

// Without retention (moqstats.NoRetention) a re-created entry counts from
// zero and the consumer (told so with NoRetention) can tell a new entry
// only by a counter going down or by an absence longer than its slack.
// A new entry that outgrew its predecessor before a frame showed it would
// be undecidable (see the ambiguity band in the package doc), so the
// schedule flushes after every guard open: the first frame of any new
// entry then shows one open counter at 1 and all else at 0, below its
// predecessor's closed counters. Those flushes never fail; random ones
// do, a third of their writes, so an entry's final frame can be lost and
// its successor continue from it. The frames' clock advances a second
// per flush, so keys absent for more than the slack also come back, some
// while their path stayed live on another track (their entry was never
// collected). Lifetime totals must equal what was bumped, exactly.
func TestLifetimeTotalsWithoutRetention(t *testing.T) {
	segments, failures := 0, int64(0)
	for seed := range uint64(seeds(4, 24)) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			res := modelRun{
				producer:    moqstats.Config{Interval: time.Hour, Retention: moqstats.NoRetention},
				consumer:    consumer.Config{Retention: consumer.NoRetention},
				flushOnOpen: true, clockStep: time.Second, failures: true,
			}.run(t, seed, 600)
			res.checkKeys(t)
			segments += newSegments(res.view)
			failures += res.failures
		})
	}
	if segments == 0 || failures == 0 {
		t.Fatalf("%d new segments, %d writes failed: the schedule exercises neither", segments, failures)
	}
}

// With a MaxEntries below the paths and roots in use, keys fold into
// moqstats.OverflowKey and retained keys are evicted for new ones (an
// evicted key comes back from zero). Flushes follow every open, as
// without retention, since an evicted key is re-created. The totals of
// each track, summed over its keys, the overflow key included, must
// equal what was bumped on it.
func TestLifetimeTotalsUnderFolding(t *testing.T) {
	folded := 0
	for seed := range uint64(seeds(4, 16)) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			res := modelRun{
				producer:    moqstats.Config{Interval: time.Hour, MaxEntries: 2},
				flushOnOpen: true, clockStep: 100 * time.Millisecond, failures: true,
			}.run(t, seed, 600)
			v := res.view
			wantTrack := map[consumer.Track]consumer.Traffic{}
			for k, w := range res.m.want {
				tr := k.slot.track()
				got := wantTrack[tr]
				for _, f := range consumer.TrafficFields() {
					*fieldPtr(&got, f) += w.Field(f)
				}
				wantTrack[tr] = got
			}
			for tr, want := range wantTrack {
				if got := v.Total(tr.Tier, tr.Kind); got != want {
					t.Errorf("%s summed over keys:\n %+v\nwant what was bumped\n %+v", tr.Name(), got, want)
				}
			}
			wantTier := map[string]consumer.Presence{}
			for k, w := range res.m.wantSessions {
				p := wantTier[tierName(k.tier)]
				p.Sessions += w.Sessions
				p.SessionsClosed += w.SessionsClosed
				wantTier[tierName(k.tier)] = p
			}
			for tier, want := range wantTier {
				if got := v.SessionsTotal(tier); got != want {
					t.Errorf("sessions of tier %q summed over roots: %+v, want %+v", tier, got, want)
				}
			}
			for _, r := range v.Broadcasts {
				if r.Broadcast == moqstats.OverflowKey {
					folded++
					break
				}
			}
			res.checkEnded(t)
		})
	}
	if folded == 0 {
		t.Fatal("no run folded a key into the overflow key")
	}
}

func fieldPtr(t *consumer.Traffic, f consumer.TrafficField) *uint64 {
	switch f {
	case consumer.Announced:
		return &t.Announced
	case consumer.AnnouncedClosed:
		return &t.AnnouncedClosed
	case consumer.AnnouncedBytes:
		return &t.AnnouncedBytes
	case consumer.Broadcasts:
		return &t.Broadcasts
	case consumer.BroadcastsClosed:
		return &t.BroadcastsClosed
	case consumer.Subscriptions:
		return &t.Subscriptions
	case consumer.SubscriptionsClosed:
		return &t.SubscriptionsClosed
	case consumer.Fetches:
		return &t.Fetches
	case consumer.Bytes:
		return &t.Bytes
	case consumer.Frames:
		return &t.Frames
	case consumer.Groups:
		return &t.Groups
	}
	return &t.Datagrams
}
