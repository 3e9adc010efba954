package moqstats

import (
	"strconv"

	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/internal/moqpath"
	"github.com/moqstats/moqstats/internal/registry"
)

// Tier distinguishes traffic classes so one Stats can record customer
// traffic and cluster-peer traffic separately.
type Tier uint8

const (
	// External is customer-facing traffic.
	External Tier = iota
	// Internal is traffic between nodes of the cluster (mTLS peers).
	Internal
)

// String returns "external", "internal", or "Tier(n)" for other values.
func (t Tier) String() string {
	switch t {
	case External:
		return "external"
	case Internal:
		return "internal"
	}
	return "Tier(" + strconv.Itoa(int(t)) + ")"
}

// role is the side of a broadcast a counter set belongs to.
type role uint8

const (
	publisher  role = iota // egress: this node publishes to a peer
	subscriber             // ingress: this node subscribes from a peer
)

// slotIndex indexes broadcastEntry.slots and Stats.tracks.
func slotIndex(t Tier, r role) int { return int(t)*2 + int(r) }

// Handle is a tier-scoped view of a Stats: what a session holds to count
// its traffic. It is a small value, cheap to copy, and pins nothing. The
// zero Handle is a no-op handle for the External tier.
type Handle struct {
	s    *Stats // nil: no-op
	tier Tier
}

// Tier returns the tier the handle bumps into.
func (h Handle) Tier() Tier { return h.tier }

// live returns the handle's Stats if guards may be handed out now.
func (h Handle) live() *Stats {
	if h.s == nil || h.s.closed.Load() {
		return nil
	}
	return h.s
}

// Broadcast returns the per-broadcast view of path on this tier. Paths
// under the Stats prefix get an empty BroadcastStats (see Cycles in the
// package doc), as does everything on a disabled or closed Stats.
func (h Handle) Broadcast(path string) BroadcastStats {
	s := h.live()
	if s == nil {
		return BroadcastStats{}
	}
	key := moqpath.Normalize(path)
	if moqpath.HasPrefix(key, s.prefix) {
		return BroadcastStats{}
	}
	return BroadcastStats{s: s, e: s.broadcastFor(key), tier: h.tier, nameLen: uint64(len(key))}
}

// broadcastFor returns the entry for a normalized path: its own, or the
// overflow entry when the path is longer than MaxPathLen or the entries
// are at MaxEntries.
func (s *Stats) broadcastFor(key string) *bEntry { return entryFor(s, s.broadcasts, key) }

// sessionFor is broadcastFor for an auth root on tier t.
func (s *Stats) sessionFor(t Tier, root string) *sEntry { return entryFor(s, s.sessions[t], root) }

func entryFor[T, R any](s *Stats, m *registry.Map[T, R], key string) *registry.Entry[T] {
	if len(key) > s.maxPathLen {
		e := m.Fold()
		s.logOverflow(key, "MaxPathLen")
		return e
	}
	e := m.Lookup(key)
	if e.Key() == OverflowKey {
		s.logOverflow(key, "MaxEntries")
	}
	return e
}

func (s *Stats) logOverflow(key, limit string) {
	if ok, suppressed := s.overflowLog.allow(); ok {
		s.log.Warn("moqstats: key folded into the overflow key", "key", logKey(key), "limit", limit,
			"overflow_key", OverflowKey, "overflowed", s.Overflowed(), "suppressed", suppressed)
	}
}

// PublisherBroadcasts returns a tracker for one session's egress
// subscriptions: create one per session and call Subscribe for each
// downstream subscription, so that broadcasts - broadcasts_closed counts
// the distinct sessions watching each broadcast. nil (a no-op) when stats
// are disabled.
func (h Handle) PublisherBroadcasts() *SessionBroadcasts { return h.sessionBroadcasts(publisher) }

// SubscriberBroadcasts is the ingress counterpart of PublisherBroadcasts.
func (h Handle) SubscriberBroadcasts() *SessionBroadcasts { return h.sessionBroadcasts(subscriber) }

func (h Handle) sessionBroadcasts(r role) *SessionBroadcasts {
	if h.live() == nil {
		return nil
	}
	return &SessionBroadcasts{s: h.s, slot: slotIndex(h.tier, r), subs: map[string]*subscription{}}
}

// Session records a session connected under auth root on this tier: hold
// the guard for the session's lifetime and Close it on disconnect. It
// counts presence whether or not data flows. nil (a no-op) when stats are
// disabled or closed.
func (h Handle) Session(root string) *SessionGuard {
	s := h.live()
	if s == nil {
		return nil
	}
	// Roots are auth scopes, never stats paths: no cycle filter.
	e := s.sessionFor(h.tier, moqpath.Normalize(root))
	e = s.sessions[h.tier].Pin(e.Key(), e, pinSession)
	e.Value.gauge.Add(counters.Sessions, 1)
	return newSessionGuard(s, e)
}

// BroadcastStats is a per-broadcast, tier-scoped view: open guards from it.
// It is a small value and pins nothing; the zero BroadcastStats is empty.
type BroadcastStats struct {
	s       *Stats
	e       *bEntry // unpinned: may have been collected
	tier    Tier
	nameLen uint64 // of the normalized path: announced_bytes
}

// IsEmpty reports whether the view has no counters behind it (a path under
// the Stats prefix, or stats disabled); its guards are all nil.
func (b BroadcastStats) IsEmpty() bool { return b.e == nil }

// Publisher opens a broadcast guard for the publisher (egress) role: it
// bumps announced now and announced_closed on Close. nil when empty.
func (b BroadcastStats) Publisher() *BroadcastGuard { return b.open(publisher) }

// Subscriber opens a broadcast guard for the subscriber (ingress) role.
func (b BroadcastStats) Subscriber() *BroadcastGuard { return b.open(subscriber) }

// live reports whether guards may be opened from b.
func (b BroadcastStats) live() bool { return b.e != nil && !b.s.closed.Load() }

func (b BroadcastStats) open(r role) *BroadcastGuard {
	if !b.live() {
		return nil
	}
	// b.e pins nothing and may have been collected since: Pin moves on to
	// its successor if so.
	var sl *slot
	b.s.broadcasts.Pin(b.e.Key(), b.e, func(e *bEntry) bool {
		sl = slotOf(e, slotIndex(b.tier, r))
		return sl.pin()
	})
	sl.Add(counters.Announced, 1)
	sl.Add(counters.AnnouncedBytes, b.nameLen)
	return newBroadcastGuard(b.s, sl, b.nameLen)
}

// PublisherTrack opens a publisher track guard without a broadcast guard,
// for callers that track the broadcast's lifetime elsewhere. name is not
// recorded (counters are per broadcast); it is there for symmetry with the
// rest of a relay's API.
func (b BroadcastStats) PublisherTrack(name string) *TrackGuard { return b.track(publisher, false) }

// SubscriberTrack is the subscriber counterpart of PublisherTrack.
func (b BroadcastStats) SubscriberTrack(name string) *TrackGuard { return b.track(subscriber, false) }

// PublisherFetch opens a fetch guard without a broadcast guard: see
// BroadcastGuard.Fetch.
func (b BroadcastStats) PublisherFetch(name string) *TrackGuard { return b.track(publisher, true) }

// SubscriberFetch is the subscriber counterpart of PublisherFetch.
func (b BroadcastStats) SubscriberFetch(name string) *TrackGuard { return b.track(subscriber, true) }

func (b BroadcastStats) track(r role, fetch bool) *TrackGuard {
	if !b.live() {
		return nil
	}
	// b.e pins nothing and may have been collected since: move on to its
	// successor if so, as registry.Map.Pin does (a loop here rather than
	// Pin's callback keeps the open free of an indirect call).
	for e := b.e; ; e = b.s.broadcasts.Live(e.Key()) {
		if t := openTrack(b.s, slotOf(e, slotIndex(b.tier, r)), fetch); t != nil {
			return t
		}
	}
}
