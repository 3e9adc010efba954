package moqstats

import (
	"runtime"
	"sync"
	"unsafe"

	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/internal/moqpath"
)

// SessionBroadcasts turns one peer session's subscriptions into the
// broadcasts / broadcasts_closed sentinel: the session's first live
// subscription to a broadcast bumps broadcasts, its last one closing bumps
// broadcasts_closed. Summed over sessions, broadcasts - broadcasts_closed
// is the number of distinct sessions subscribed.
//
// Create one per session and side (Handle.PublisherBroadcasts,
// Handle.SubscriberBroadcasts) and share it among the session's
// goroutines: it is safe for concurrent use, and everything sharing it
// counts as one session. Methods on a nil *SessionBroadcasts are no-ops.
type SessionBroadcasts struct {
	s    *Stats
	slot int
	mu   sync.Mutex
	subs map[string]*subscription // by normalized path; guarded by mu
}

// subscription is one session's live subscriptions to one broadcast. It
// pins the entry from the first subscription to the last close.
type subscription struct {
	key string
	sl  *slot // the broadcast's slot for the tracker's role and tier
	n   int   // live guards; guarded by SessionBroadcasts.mu
}

// Subscribe registers one subscription of this session to path. Hold the
// guard for the subscription's lifetime and Close it when it ends. Paths
// under the Stats prefix, and any path once the Stats is closed, get a nil
// (no-op) guard.
func (sb *SessionBroadcasts) Subscribe(path string) *SubscriptionGuard {
	if sb == nil || sb.s.closed.Load() {
		return nil
	}
	key := moqpath.Normalize(path)
	if moqpath.HasPrefix(key, sb.s.prefix) {
		return nil
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	sub := sb.subs[key]
	if sub == nil {
		var sl *slot
		e := sb.s.broadcastFor(key)
		sb.s.broadcasts.Pin(e.Key(), e, func(e *bEntry) bool {
			sl = slotOf(e, sb.slot)
			return sl.pin()
		})
		// Under mu, so this session's first-open and last-close bumps are
		// ordered, and broadcasts_closed never overtakes broadcasts.
		sl.Add(counters.Broadcasts, 1)
		sub = &subscription{key: key, sl: sl}
		sb.subs[key] = sub
	}
	sub.n++
	g := &SubscriptionGuard{sb: sb, sub: sub}
	if sb.s.leakCheck {
		sb.s.pushYoung(subscriptionGuard, unsafe.Pointer(g))
	}
	return g
}

// SubscriptionGuard is one live subscription of a session to a broadcast.
// Methods on a nil guard are no-ops.
type SubscriptionGuard struct {
	sb  *SessionBroadcasts
	sub *subscription
	st  guardState
}

func (g *SubscriptionGuard) register(s *Stats) {
	g.st.publish(&registration{runtime.AddCleanup(g, s.reclaim.subscription, subscriptionLeak{g.sb, g.sub})})
}

// subscriptionLeak is what a dropped SubscriptionGuard's cleanup releases.
type subscriptionLeak struct {
	sb  *SessionBroadcasts
	sub *subscription
}

func reclaimSubscription(s *Stats, l subscriptionLeak) {
	l.sb.release(l.sub)
	s.reclaimed(subscriptionGuard, l.sub.key)
}

// Close releases the subscription; when it was the session's last to the
// broadcast, it bumps broadcasts_closed. Only the first call has an effect.
func (g *SubscriptionGuard) Close() {
	if g == nil {
		return
	}
	if g.st.close() {
		g.sb.release(g.sub)
	}
}

// release drops one of sub's live guards.
func (sb *SessionBroadcasts) release(sub *subscription) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	sub.n--
	if sub.n > 0 {
		return
	}
	delete(sb.subs, sub.key)
	sub.sl.Add(counters.BroadcastsClosed, 1)
	sub.sl.Add(counters.Pins, counters.Unpin)
}
