package consumer

import (
	"cmp"
	"slices"
	"time"
)

// View is a copy of an Aggregator's state at one instant, to query without
// holding the Aggregator. Rows are sorted by node, tier, kind and key.
type View struct {
	// At is the time the View was taken for: rates of tracks quiet for
	// longer than Config.StaleAfter before At read as zero.
	At         time.Time
	Broadcasts []BroadcastRow
	Sessions   []SessionRow
	Tracks     []TrackRow
}

// BroadcastRow is one broadcast on one node's per-broadcast track.
type BroadcastRow struct {
	Node      string
	Track     Track // Tier, and Kind Publisher or Subscriber
	Broadcast string
	// Total is the lifetime total: the last values of every segment,
	// summed. It never goes down.
	Total Traffic
	// Current is the current segment's last values; zero once the track
	// ended.
	Current Traffic
	// Delta is the increase over Interval, normally the time between the
	// track's last two frames; see Rates in the package doc. RateKnown is
	// false when no rate can be told (the key's first frame, say).
	Delta     Traffic
	Interval  time.Duration
	RateKnown bool
	Segments  int
	LastSeen  time.Time // the last frame that carried the key
}

// Rate returns the per-second rate of counter f over the row's interval,
// and false when no rate is known.
func (r BroadcastRow) Rate(f TrafficField) (float64, bool) {
	return rate(r.RateKnown, r.Delta.Field(f), r.Interval)
}

func rate(known bool, delta uint64, interval time.Duration) (float64, bool) {
	switch {
	case !known:
		return 0, false
	case delta == 0:
		return 0, true
	}
	return float64(delta) / interval.Seconds(), true
}

// Viewers returns the live viewers: broadcasts - broadcasts_closed on a
// publisher (egress) track, 0 on a subscriber one.
func (r BroadcastRow) Viewers() uint64 {
	if r.Track.Kind != Publisher {
		return 0
	}
	return r.Current.Viewers()
}

// SessionRow is one auth root on one node's sessions track.
type SessionRow struct {
	Node      string
	Track     Track // Tier, and Kind SessionsKind
	Root      string
	Total     Presence
	Current   Presence
	Delta     Presence
	Interval  time.Duration
	RateKnown bool
	Segments  int
	LastSeen  time.Time
}

// Rate returns the per-second rate of counter f, and false when none is
// known.
func (r SessionRow) Rate(f PresenceField) (float64, bool) {
	return rate(r.RateKnown, r.Delta.Field(f), r.Interval)
}

// Live returns the sessions connected now.
func (r SessionRow) Live() uint64 { return r.Current.Live() }

// TrackRow is the health of one node's track.
type TrackRow struct {
	Node      string
	Track     Track
	Frames    uint64    // frames applied since the track (re)started
	LastFrame time.Time // zero before the first frame and after an end
	Ended     bool      // EndTrack was called and no frame came since
	Keys      int       // keys held
	// Gaps counts the Gaps reported for the track, ever: each is a place
	// where frames may have been lost (a follower reconnected or saw a
	// group skipped or cut), so a rising count is a link worth a look.
	Gaps uint64
	// ExpiredKeys counts the keys dropped by expiry (Config.ExpireAfter);
	// their lifetime totals, summed, are Expired on a per-broadcast track
	// and ExpiredSessions on a sessions track. They never go down.
	ExpiredKeys     int
	Expired         Traffic
	ExpiredSessions Presence
}

// View returns the Aggregator's state as of now.
func (a *Aggregator) View(now time.Time) *View {
	v := &View{At: now}
	a.mu.Lock()
	for node, n := range a.nodes {
		for _, ts := range n.tracks {
			tr := TrackRow{Node: node, Track: ts.track, Frames: ts.frames, LastFrame: ts.last, Ended: ts.ended, Keys: len(ts.keys), Gaps: ts.gaps, ExpiredKeys: ts.expiredKeys}
			if ts.track.Kind == SessionsKind {
				tr.ExpiredSessions = presenceOf(&ts.expired)
			} else {
				*tr.Expired.counters() = ts.expired
			}
			v.Tracks = append(v.Tracks, tr)
			for key, ks := range ts.keys {
				var total [NumTrafficFields]uint64
				for i := range total {
					total[i] = addSat(ks.base[i], ks.cur[i])
				}
				delta, interval, known := rateOf(ts, ks, now, a.cfg.StaleAfter)
				if ts.track.Kind == SessionsKind {
					v.Sessions = append(v.Sessions, SessionRow{
						Node: node, Track: ts.track, Root: key,
						Total: presenceOf(&total), Current: presenceOf(&ks.cur), Delta: presenceOf(&delta),
						Interval: interval, RateKnown: known, Segments: ks.segments, LastSeen: ks.seenAt,
					})
					continue
				}
				r := BroadcastRow{Node: node, Track: ts.track, Broadcast: key, Interval: interval, RateKnown: known, Segments: ks.segments, LastSeen: ks.seenAt}
				*r.Total.counters(), *r.Current.counters(), *r.Delta.counters() = total, ks.cur, delta
				v.Broadcasts = append(v.Broadcasts, r)
			}
		}
	}
	a.mu.Unlock()

	slices.SortFunc(v.Broadcasts, func(x, y BroadcastRow) int {
		return cmp.Or(cmp.Compare(x.Node, y.Node), compareTrack(x.Track, y.Track), cmp.Compare(x.Broadcast, y.Broadcast))
	})
	slices.SortFunc(v.Sessions, func(x, y SessionRow) int {
		return cmp.Or(cmp.Compare(x.Node, y.Node), compareTrack(x.Track, y.Track), cmp.Compare(x.Root, y.Root))
	})
	slices.SortFunc(v.Tracks, func(x, y TrackRow) int {
		return cmp.Or(cmp.Compare(x.Node, y.Node), compareTrack(x.Track, y.Track))
	})
	return v
}

// rateOf returns a key's increase over the interval a rate is measured
// on, and whether a rate is known; see Rates in the package doc.
func rateOf(ts *trackState, ks *keyState, now time.Time, staleAfter time.Duration) (delta [NumTrafficFields]uint64, interval time.Duration, known bool) {
	switch {
	case ts.ended:
		return delta, max(now.Sub(ts.endAt), 0), true
	case ts.frames == 0:
		return delta, 0, false
	case now.Sub(ts.last) > staleAfter:
		// Producers write a track whenever it changes, so a quiet track
		// did not change.
		return delta, now.Sub(ts.last), true
	case ks.seenSeq != ts.seq:
		// Absent from the latest frame: neither live nor changed.
		return delta, ts.last.Sub(ts.prev), !ts.prev.IsZero() || ks.ended
	case !ks.hasDelta || ts.prev.IsZero():
		return delta, 0, false
	}
	interval = ts.last.Sub(ts.prev)
	return ks.delta, interval, interval > 0 || ks.delta == [NumTrafficFields]uint64{}
}

func compareTrack(x, y Track) int {
	return cmp.Or(cmp.Compare(x.Tier, y.Tier), cmp.Compare(x.Kind, y.Kind))
}

func presenceOf(v *[NumTrafficFields]uint64) Presence {
	return Presence{Sessions: v[Sessions], SessionsClosed: v[SessionsClosed]}
}

// Total returns the lifetime totals of every broadcast on tier's tracks of
// kind (Publisher or Subscriber), summed over nodes, expired keys
// included. tier is a Track.Tier ("" for the default tier).
func (v *View) Total(tier string, kind Kind) Traffic {
	var t Traffic
	for i := range v.Broadcasts {
		if r := &v.Broadcasts[i]; r.Track.Tier == tier && r.Track.Kind == kind {
			addTraffic(&t, &r.Total)
		}
	}
	for i := range v.Tracks {
		if r := &v.Tracks[i]; r.Track.Tier == tier && r.Track.Kind == kind {
			addTraffic(&t, &r.Expired)
		}
	}
	return t
}

// BroadcastTotal returns broadcast's lifetime totals on tier's tracks of
// kind, summed over nodes. A broadcast's expired segments are in its
// tracks' Expired totals, not here.
func (v *View) BroadcastTotal(tier string, kind Kind, broadcast string) Traffic {
	var t Traffic
	for i := range v.Broadcasts {
		if r := &v.Broadcasts[i]; r.Track.Tier == tier && r.Track.Kind == kind && r.Broadcast == broadcast {
			addTraffic(&t, &r.Total)
		}
	}
	return t
}

// Rate returns broadcast's per-second rate of counter f on tier's tracks of
// kind, summed over nodes; rows with no known rate add nothing.
func (v *View) Rate(tier string, kind Kind, broadcast string, f TrafficField) float64 {
	var sum float64
	for i := range v.Broadcasts {
		if r := &v.Broadcasts[i]; r.Track.Tier == tier && r.Track.Kind == kind && r.Broadcast == broadcast {
			if x, ok := r.Rate(f); ok {
				sum += x
			}
		}
	}
	return sum
}

// Viewers returns broadcast's live viewers on tier, summed over nodes.
func (v *View) Viewers(tier, broadcast string) uint64 {
	var n uint64
	for i := range v.Broadcasts {
		if r := &v.Broadcasts[i]; r.Track.Tier == tier && r.Broadcast == broadcast {
			n = addSat(n, r.Viewers())
		}
	}
	return n
}

// TotalViewers returns the live viewers of every broadcast on tier, summed
// over nodes.
func (v *View) TotalViewers(tier string) uint64 {
	var n uint64
	for i := range v.Broadcasts {
		if r := &v.Broadcasts[i]; r.Track.Tier == tier {
			n = addSat(n, r.Viewers())
		}
	}
	return n
}

// LiveSessions returns the sessions connected now under root on tier,
// summed over nodes.
func (v *View) LiveSessions(tier, root string) uint64 {
	var n uint64
	for i := range v.Sessions {
		if r := &v.Sessions[i]; r.Track.Tier == tier && r.Root == root {
			n = addSat(n, r.Live())
		}
	}
	return n
}

// SessionTotal returns root's lifetime session counters on tier, summed
// over nodes.
func (v *View) SessionTotal(tier, root string) Presence {
	var p Presence
	for i := range v.Sessions {
		if r := &v.Sessions[i]; r.Track.Tier == tier && r.Root == root {
			p.Sessions = addSat(p.Sessions, r.Total.Sessions)
			p.SessionsClosed = addSat(p.SessionsClosed, r.Total.SessionsClosed)
		}
	}
	return p
}

// SessionsTotal returns the lifetime session counters of every root on
// tier, summed over roots and nodes, expired roots included.
func (v *View) SessionsTotal(tier string) Presence {
	var p Presence
	add := func(q *Presence) {
		p.Sessions = addSat(p.Sessions, q.Sessions)
		p.SessionsClosed = addSat(p.SessionsClosed, q.SessionsClosed)
	}
	for i := range v.Sessions {
		if r := &v.Sessions[i]; r.Track.Tier == tier {
			add(&r.Total)
		}
	}
	for i := range v.Tracks {
		if r := &v.Tracks[i]; r.Track.Tier == tier && r.Track.Kind == SessionsKind {
			add(&r.ExpiredSessions)
		}
	}
	return p
}

func addTraffic(dst, src *Traffic) {
	d, s := dst.counters(), src.counters()
	for i := range d {
		d[i] = addSat(d[i], s[i])
	}
}

// addSat is a + b, saturating at the largest uint64: totals of a hostile
// producer's counters must not wrap around and go down.
func addSat(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<64 - 1
}
