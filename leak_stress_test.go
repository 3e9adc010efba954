package moqstats_test

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
)

// Guard kinds in TestStressLeakCheck.
const (
	kindTrack = iota
	kindAnnounce
	kindView
	kindSession
	kindFetch // a track guard that closes no subscription
	kinds
)

// leakCount is what the workers did with one kind of guard on one key.
type leakCount struct{ opened, closed, dropped, kept uint64 }

// leakLedger is what the workers of TestStressLeakCheck did, by kind and
// key, and the bytes bumped per key.
type leakLedger struct {
	mu      sync.Mutex
	n       [kinds]map[string]*leakCount
	bytes   map[string]uint64
	dropped uint64
}

func newLeakLedger() *leakLedger {
	l := &leakLedger{bytes: map[string]uint64{}}
	for i := range l.n {
		l.n[i] = map[string]*leakCount{}
	}
	return l
}

func (l *leakLedger) count(kind int, key string, f func(c *leakCount)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.n[kind][key]
	if c == nil {
		c = &leakCount{}
		l.n[kind][key] = c
	}
	f(c)
}

func (l *leakLedger) get(kind int, key string) leakCount {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.n[kind][key]; c != nil {
		return *c
	}
	return leakCount{}
}

// stressGuard is one open guard of any kind, and how to close it.
type stressGuard struct {
	kind  int
	key   string
	close func()
}

// TestStressLeakCheck races guards of every kind that are closed at once,
// closed later by another goroutine (while passes and collections register
// them), or dropped without Close, against runtime.GC, Flush, background
// passes and failing writes, and then Close against the last closes. It
// checks, against a ledger the workers keep, that every dropped guard is
// reclaimed exactly once (Leaked equals the drops, and stays there through
// more collections and Close), that no closed guard is reclaimed, and that
// the frames carry exactly the opens, closes and bytes the ledger holds, a
// reclaimed guard's closes included (and a fetch's none).
func TestStressLeakCheck(t *testing.T) {
	for round := range stressRounds(t) {
		t.Run(fmt.Sprint("round=", round), func(t *testing.T) { leakStressRound(t, uint64(round)) })
	}
}

func leakStressRound(t *testing.T, seed uint64) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	pub := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
	sub := frames[Snapshot](t, o, s, moqstats.TrackSubscriber)
	sess := frames[SessionSnapshot](t, o, s, moqstats.TrackSessions)
	b, _ := o.Lookup(s.Path())
	var failing atomic.Bool
	b.SetWriteHook(func(string, []byte) error {
		if failing.Load() {
			return errors.New("injected")
		}
		return nil
	})

	keys := []string{"k0", "k1/x", "k2"}
	l := newLeakLedger()
	h := s.Tier(moqstats.External)
	later := make(chan stressGuard, 64)
	var kept []stressGuard // still open at the end: closed while Close runs
	var keptMu sync.Mutex
	stop := make(chan struct{})
	var bg, workers, closers sync.WaitGroup

	// The background: collections, Flush, failing writes.
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			runtime.GC()
			time.Sleep(50 * time.Microsecond)
		}
	})
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			s.Flush() // errors are the injected ones
			runtime.Gosched()
		}
	})
	bg.Go(func() {
		r := rand.New(rand.NewPCG(seed, 99))
		for {
			select {
			case <-stop:
				failing.Store(false)
				return
			case <-time.After(time.Duration(r.IntN(500)) * time.Microsecond):
				failing.Store(r.IntN(3) == 0)
			}
		}
	})
	// The closers: close guards handed to them, while drains register them.
	for range 2 {
		closers.Go(func() {
			for g := range later {
				g.close()
			}
		})
	}

	const opsPerWorker = 400
	for w := range 4 {
		workers.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			viewer := h.PublisherBroadcasts()
			for range opsPerWorker {
				key := keys[r.IntN(len(keys))]
				g := openStressGuard(r, h, viewer, key, l)
				switch fate := r.IntN(10); {
				case fate < 4:
					g.close()
				case fate < 7:
					later <- g
				case fate < 9:
					l.count(g.kind, g.key, func(c *leakCount) { c.dropped++ })
					l.mu.Lock()
					l.dropped++
					l.mu.Unlock()
					// g goes out of scope here, open.
				default:
					l.count(g.kind, g.key, func(c *leakCount) { c.kept++ })
					keptMu.Lock()
					kept = append(kept, g)
					keptMu.Unlock()
				}
				if r.IntN(50) == 0 {
					runtime.Gosched()
				}
			}
		})
	}
	workers.Wait()
	close(later)
	closers.Wait()
	close(stop)
	bg.Wait()

	collectUntil(t, func() bool { return s.Leaked() >= l.dropped })
	for range 3 { // more collections reclaim nothing twice
		runtime.GC()
	}
	time.Sleep(5 * time.Millisecond)
	if got := s.Leaked(); got != l.dropped {
		t.Fatalf("Leaked() = %d, want the %d guards dropped: a guard was reclaimed twice, or a closed one reclaimed", got, l.dropped)
	}

	// Every guard but the kept ones is closed now, by Close or by its
	// reclaim: the last frame holding each key carries exactly the
	// ledger's counts (retention keeps counters from going back).
	flush(t, s)
	pubFrames, subFrames, sessFrames := pub(), sub(), sess()
	for _, key := range keys {
		p, a, v := lastOf(pubFrames, key), lastOf(subFrames, key), lastOf(sessFrames, key)
		tr, an, vw, se := l.get(kindTrack, key), l.get(kindAnnounce, key), l.get(kindView, key), l.get(kindSession, key)
		if want := (Snapshot{
			Announced: an.opened, AnnouncedClosed: an.closed + an.dropped,
			Subscriptions: tr.opened, SubscriptionsClosed: tr.closed + tr.dropped, Bytes: l.bytes[key],
		}); a.Announced != want.Announced || a.AnnouncedClosed != want.AnnouncedClosed ||
			p.Subscriptions != want.Subscriptions || p.SubscriptionsClosed != want.SubscriptionsClosed || p.Bytes != want.Bytes {
			t.Errorf("%s: announced %d/%d, subscriptions %d/%d, bytes %d; want %d/%d, %d/%d, %d (kept open: %d announces, %d tracks)",
				key, a.Announced, a.AnnouncedClosed, p.Subscriptions, p.SubscriptionsClosed, p.Bytes,
				want.Announced, want.AnnouncedClosed, want.Subscriptions, want.SubscriptionsClosed, want.Bytes, an.kept, tr.kept)
		}
		// Subscriptions of one session count once per broadcast: with
		// none kept open, every session's sentinel is closed.
		if vw.opened > 0 && (p.Broadcasts == 0 || (vw.kept == 0 && p.BroadcastsClosed != p.Broadcasts)) {
			t.Errorf("%s: broadcasts %d, broadcasts_closed %d after %d subscriptions (%d kept open)", key, p.Broadcasts, p.BroadcastsClosed, vw.opened, vw.kept)
		}
		if v.Sessions != se.opened || v.SessionsClosed != se.closed+se.dropped {
			t.Errorf("root %s: sessions %d/%d, want %d/%d", key, v.Sessions, v.SessionsClosed, se.opened, se.closed+se.dropped)
		}
	}

	// Close races the kept guards' closes and a collection; none of them
	// may be reclaimed.
	var closing sync.WaitGroup
	closing.Go(func() {
		for _, g := range kept {
			g.close()
		}
	})
	closing.Go(runtime.GC)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closing.Wait()
	kept = nil
	for range 2 {
		runtime.GC()
	}
	time.Sleep(5 * time.Millisecond)
	if got := s.Leaked(); got != l.dropped {
		t.Fatalf("Leaked() after Close = %d, want %d: a closed guard was reclaimed", got, l.dropped)
	}
}

// lastOf returns key's value in the last frame that holds it.
func lastOf[V any](all []map[string]V, key string) V {
	var v V
	for _, f := range all {
		if x, ok := f[key]; ok {
			v = x
		}
	}
	return v
}

// openStressGuard opens a guard of a random kind on key (a root, for a
// session) and records it in l; its close records the close.
func openStressGuard(r *rand.Rand, h moqstats.Handle, viewer *moqstats.SessionBroadcasts, key string, l *leakLedger) stressGuard {
	kind := r.IntN(kinds)
	l.count(kind, key, func(c *leakCount) { c.opened++ })
	closed := func() { l.count(kind, key, func(c *leakCount) { c.closed++ }) }
	g := stressGuard{kind: kind, key: key}
	switch kind {
	case kindTrack, kindFetch:
		b := h.Broadcast(key)
		var t *moqstats.TrackGuard
		if kind == kindFetch {
			t = b.PublisherFetch("v")
		} else {
			t = b.PublisherTrack("v")
		}
		n := uint64(r.IntN(1000))
		t.Bytes(n)
		l.mu.Lock()
		l.bytes[key] += n
		l.mu.Unlock()
		g.close = func() { t.Close(); closed() }
	case kindAnnounce:
		a := h.Broadcast(key).Subscriber()
		g.close = func() { a.Close(); closed() }
	case kindView:
		v := viewer.Subscribe(key)
		g.close = func() { v.Close(); closed() }
	case kindSession:
		se := h.Session(key)
		g.close = func() { se.Close(); closed() }
	}
	return g
}
