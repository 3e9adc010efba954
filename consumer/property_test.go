package consumer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
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

	// Open guards, by entry: a broadcast path's entry is pinned by every
	// guard on any of its four slots.
	pins     map[string]int
	shown    map[bkey]bool // the slot opened since its entry was last unpinned
	bcast    []openBroadcast
	tracks   []openTrack
	viewers  []openViewer
	trackers map[slot][]*moqstats.SessionBroadcasts
	sessions []openSession
	sessPins map[skey]int
	owners   map[*moqstats.SubscriptionGuard]*moqstats.SessionBroadcasts
	flush    func()
	used     map[bkey]bool // the slot was opened in some life of its entry
	flushes  int
	reopened int // slots opened again after their entry was unpinned and flushed
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
	switch f {
	case consumer.Announced:
		w.Announced += n
	case consumer.AnnouncedClosed:
		w.AnnouncedClosed += n
	case consumer.Broadcasts:
		w.Broadcasts += n
	case consumer.BroadcastsClosed:
		w.BroadcastsClosed += n
	case consumer.Subscriptions:
		w.Subscriptions += n
	case consumer.SubscriptionsClosed:
		w.SubscriptionsClosed += n
	case consumer.Bytes:
		w.Bytes += n
	case consumer.Frames:
		w.Frames += n
	case consumer.Groups:
		w.Groups += n
	}
}

// opened records a guard opening on k. The first open on a slot since
// the entry was last unpinned is flushed at once, so a re-created entry's
// first frame on that track shows one open counter and no closed one:
// below its predecessor's final closed counts, so the reset shows as a
// decrease whether the producer re-created the entry or kept it.
func (m *trafficModel) opened(k bkey) {
	m.pins[k.path]++
	if !m.shown[k] {
		if m.used[k] {
			m.reopened++ // a slot of an entry that was unpinned and flushed
		}
		m.shown[k], m.used[k] = true, true
		m.flush()
	}
}

// closed records a guard on k closing. The close of an entry's last
// guard is flushed at once, so its final state is in a frame, and (with
// no retention) it is collected before anything opens it again.
func (m *trafficModel) closed(k bkey) {
	m.pins[k.path]--
	if m.pins[k.path] == 0 {
		for s := range m.shown {
			if s.path == k.path {
				delete(m.shown, s)
			}
		}
		m.flush()
	}
}

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
		m.add(k, consumer.Announced, 1)
		m.bcast = append(m.bcast, openBroadcast{k, g})
		m.opened(k)
	case op < 14 && len(m.bcast) > 0: // unannounce
		i := m.rng.IntN(len(m.bcast))
		o := m.bcast[i]
		m.bcast = append(m.bcast[:i], m.bcast[i+1:]...)
		o.g.Close()
		m.add(o.k, consumer.AnnouncedClosed, 1)
		m.closed(o.k)
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
		m.opened(k)
	case op < 34 && len(m.tracks) > 0:
		i := m.rng.IntN(len(m.tracks))
		o := m.tracks[i]
		m.tracks = append(m.tracks[:i], m.tracks[i+1:]...)
		o.g.Close()
		m.add(o.k, consumer.SubscriptionsClosed, 1)
		m.closed(o.k)
	case op < 60 && len(m.tracks) > 0: // payload
		o := m.tracks[m.rng.IntN(len(m.tracks))]
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
		m.opened(k)
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
		m.closed(o.k)
	case op < 84: // a session connecting
		k := skey{tier: moqstats.Tier(m.rng.IntN(2)), root: m.roots[m.rng.IntN(len(m.roots))]}
		g := m.stats.Tier(k.tier).Session(k.root)
		m.session(k).Sessions++
		m.sessions = append(m.sessions, openSession{k, g})
		m.sessPins[k]++
		if m.sessPins[k] == 1 {
			m.flush()
		}
	case op < 92 && len(m.sessions) > 0:
		i := m.rng.IntN(len(m.sessions))
		o := m.sessions[i]
		m.sessions = append(m.sessions[:i], m.sessions[i+1:]...)
		o.g.Close()
		m.session(o.k).SessionsClosed++
		m.sessPins[o.k]--
		if m.sessPins[o.k] == 0 {
			m.flush()
		}
	case op >= 92:
		m.flush()
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

// TestLifetimeTotalsEqualWhatWasBumped drives a real Stats with random
// guard churn on a few paths and roots, both tiers and both roles, so
// entries are collected and re-created, feeds every frame of all six
// tracks to an Aggregator, and checks that the lifetime totals it computes
// from the frames alone equal what was bumped, exactly.
func TestLifetimeTotalsEqualWhatWasBumped(t *testing.T) {
	seeds := 24
	if testing.Short() {
		seeds = 4
	}
	reopened := 0
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { reopened += runTrafficModel(t, seed, 600) })
	}
	if reopened == 0 {
		t.Fatal("no slot was reopened after its entry was unpinned: the schedule does not exercise re-created entries")
	}
}

func runTrafficModel(t *testing.T, seed uint64, steps int) (reopened int) {
	origin := memorigin.New()
	stats, err := moqstats.New(moqstats.Config{Origin: origin, Node: "edge/1", Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	agg, err := consumer.New(consumer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(1_700_000_000, 0)
	now := func() time.Time { return clock }
	node, ok := consumer.NodeName("", stats.Path())
	if !ok || node != "edge/1" {
		t.Fatalf("NodeName(%q) = %q, %v", stats.Path(), node, ok)
	}
	subs := map[string]*memorigin.Subscription{}
	for _, track := range moqstats.Tracks() {
		s, err := origin.Subscribe(stats.Path(), track)
		if err != nil {
			t.Fatal(err)
		}
		subs[track] = s
	}
	drain := func() {
		for track, s := range subs {
			for {
				frame, ok := s.TryNext()
				if !ok {
					break
				}
				if err := agg.Observe(node, track, now(), frame); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
			}
		}
	}

	m := &trafficModel{
		rng: rand.New(rand.NewPCG(seed, 0x5eed)), stats: stats,
		paths: []string{"acme/live", "acme/vod/1", "beta"}, roots: []string{"acme", ""},
		want: map[bkey]*consumer.Traffic{}, wantSessions: map[skey]*consumer.Presence{},
		pins: map[string]int{}, shown: map[bkey]bool{}, used: map[bkey]bool{}, trackers: map[slot][]*moqstats.SessionBroadcasts{},
		sessPins: map[skey]int{}, owners: map[*moqstats.SubscriptionGuard]*moqstats.SessionBroadcasts{},
	}
	m.flush = func() {
		if err := stats.Flush(); err != nil {
			t.Fatal(err)
		}
		m.flushes++
		clock = clock.Add(time.Second)
		drain()
	}
	for range steps {
		m.step()
	}
	// Close whatever is open, then the Stats; its final pass writes the
	// last frames, and its broadcast closing ends every track.
	for _, o := range m.bcast {
		o.g.Close()
		m.add(o.k, consumer.AnnouncedClosed, 1)
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
	if err := stats.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for track, s := range subs {
		if err := consumer.Follow(ctx, agg, node, track, s, consumer.FollowOptions{Now: now}); err != nil {
			t.Fatal(err)
		}
	}

	v := agg.View(now())
	rows := 0
	for k, want := range m.want {
		got := v.BroadcastTotal(k.slot.track().Tier, k.slot.track().Kind, k.path)
		if got != *want {
			t.Errorf("seed %d: %s %q: consumer totals\n %+v\nwant what was bumped\n %+v", seed, k.slot.track().Name(), k.path, got, *want)
		}
		if *want != (consumer.Traffic{}) {
			rows++
		}
	}
	if len(v.Broadcasts) != rows {
		t.Errorf("seed %d: %d broadcast rows, want %d", seed, len(v.Broadcasts), rows)
	}
	for k, want := range m.wantSessions {
		tier := ""
		if k.tier == moqstats.Internal {
			tier = "internal"
		}
		if got := v.SessionTotal(tier, k.root); got != *want {
			t.Errorf("seed %d: sessions tier %v root %q: got %+v, want %+v", seed, k.tier, k.root, got, *want)
		}
	}
	for _, tr := range v.Tracks {
		if !tr.Ended {
			t.Errorf("seed %d: track %s not ended after the Stats closed", seed, tr.Track.Name())
		}
	}
	if v.TotalViewers("") != 0 || v.LiveSessions("", "acme") != 0 {
		t.Errorf("seed %d: live gauges not zero after the node ended", seed)
	}
	segments := 0
	for _, r := range v.Broadcasts {
		segments += r.Segments - 1
	}
	// Without retention every reopened slot is a new segment; with it,
	// none is. Either way the totals above must hold.
	t.Logf("seed %d: %d flushes, %d slots reopened after their entry was unpinned, %d new segments seen", seed, m.flushes, m.reopened, segments)
	return m.reopened
}
