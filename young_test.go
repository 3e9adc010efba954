package moqstats_test

import (
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
)

func newLeakStats(t *testing.T) *moqstats.Stats {
	t.Helper()
	s, _ := setupConfig(t, moqstats.Config{Interval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	return s
}

// A guard closed between the registrar adding its cleanup and publishing
// it is closed once, by Close: the registrar finds it closed and stops the
// cleanup, so dropping the guard reclaims nothing. Every guard kind, one at
// a time, so the hook closes the guard being registered.
func TestGuardClosedWhileBeingRegisteredIsNeverReclaimed(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	pub := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
	sub := frames[Snapshot](t, o, s, moqstats.TrackSubscriber)
	sess := frames[SessionSnapshot](t, o, s, moqstats.TrackSessions)
	h := s.Tier(moqstats.External)
	viewer := h.PublisherBroadcasts()
	for _, open := range []func() func(){
		func() func() { return h.Broadcast("a").PublisherTrack("v").Close },
		func() func() { return h.Broadcast("a").Subscriber().Close },
		func() func() { return viewer.Subscribe("a").Close },
		func() func() { return h.Session("acme").Close },
	} {
		closeIt := open()
		raced := 0
		restore := moqstats.SetHookRegistering(func() {
			if raced == 0 {
				closeIt()
			}
			raced++
		})
		err := s.Flush() // drains: registers, and the hook closes
		restore()
		if err != nil {
			t.Fatal(err)
		}
		if raced != 1 {
			t.Fatalf("%d guards registered, want the 1 open", raced)
		}
	}
	wantClosedOnce(t, s, pub, sub, sess, 1, "closed while being registered")
}

// A guard closed and dropped by its owner is held until its cleanup is
// stopped, by its Close or by the registrar that found it closed: Stop
// cannot take back a cleanup the collector already queued. The hook runs a
// collection just before each Stop, once the owner's reference is gone.
func TestClosedGuardIsHeldUntilItsCleanupIsStopped(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	pub := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
	sub := frames[Snapshot](t, o, s, moqstats.TrackSubscriber)
	sess := frames[SessionSnapshot](t, o, s, moqstats.TrackSessions)
	h := s.Tier(moqstats.External)
	viewer := h.PublisherBroadcasts()
	opens := []func() interface{ Close() }{
		func() interface{ Close() } { return h.Broadcast("a").PublisherTrack("v") },
		func() interface{ Close() } { return h.Broadcast("a").PublisherFetch("v") },
		func() interface{ Close() } { return h.Broadcast("a").Subscriber() },
		func() interface{ Close() } { return viewer.Subscribe("a") },
		func() interface{ Close() } { return h.Session("acme") },
	}
	// A collection starts a drain, which may register a guard on its own
	// goroutine: the hooks may run there.
	var stops atomic.Int64
	defer moqstats.SetHookStopping(func() {
		stops.Add(1)
		runtime.GC()
	})()
	var mu sync.Mutex
	var pending interface{ Close() } // closed by whoever registers it
	defer moqstats.SetHookRegistering(func() {
		mu.Lock()
		defer mu.Unlock()
		closeAndDrop(&pending)
	})()
	for _, open := range opens {
		// Registered, then closed: Close stops the cleanup.
		g := open()
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		closeAndDrop(&g)

		// Closed while being registered: the registrar stops it.
		mu.Lock()
		pending = open()
		mu.Unlock()
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		collectUntil(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return pending == nil
		})
	}
	// One Stop per guard, or two when Close and the registrar both saw
	// each other.
	if n, want := stops.Load(), int64(2*len(opens)); n < want {
		t.Fatalf("%d cleanups stopped, want at least %d", n, want)
	}
	wantClosedOnce(t, s, pub, sub, sess, 2, "closed by their owners")
}

// wantClosedOnce checks, after collections, that none of the guards
// (closed, as what says) was reclaimed, and that the frames carry each of
// the n opens of a track guard, a broadcast, a subscription on "a" and a
// session on "acme" closed once.
func wantClosedOnce(t *testing.T, s *moqstats.Stats, pub, sub func() []map[string]Snapshot, sess func() []map[string]SessionSnapshot, n uint64, what string) {
	t.Helper()
	for range 3 {
		runtime.GC()
	}
	time.Sleep(10 * time.Millisecond)
	if got := s.Leaked(); got != 0 {
		t.Fatalf("Leaked() = %d for guards %s, want 0", got, what)
	}
	flush(t, s)
	if got := lastOf(pub(), "a"); got != (Snapshot{Subscriptions: n, SubscriptionsClosed: n, Broadcasts: n, BroadcastsClosed: n}) {
		t.Errorf("publisher a = %+v, want each close once", got)
	}
	if got := lastOf(sub(), "a"); got != (Snapshot{Announced: n, AnnouncedClosed: n}) {
		t.Errorf("subscriber a = %+v, want each close once", got)
	}
	if got := lastOf(sess(), "acme"); got != (SessionSnapshot{Sessions: n, SessionsClosed: n}) {
		t.Errorf("acme = %+v, want each close once", got)
	}
}

// closeAndDrop closes *g and drops the reference: from then on the guard
// is reachable only from the frames of its Close.
//
//go:noinline
func closeAndDrop(g *interface{ Close() }) {
	c := *g
	*g = nil
	if c != nil {
		c.Close()
	}
}

// A young guard is registered by the first drain after each collection,
// with no pass: dropped, it is reclaimed by collections alone.
func TestYoungGuardDroppedIsReclaimedWithoutAPass(t *testing.T) {
	s := newLeakStats(t)
	func() {
		tr := s.Tier(moqstats.External).Broadcast("a").PublisherTrack("v")
		tr.Bytes(1)
	}()
	collectUntil(t, func() bool { return s.Leaked() == 1 })
}

// A guard that closes young never gets a cleanup: the registrar skips it.
func TestGuardClosedYoungIsNeverRegistered(t *testing.T) {
	s := newLeakStats(t)
	registered := 0
	defer moqstats.SetHookRegistering(func() { registered++ })()
	h := s.Tier(moqstats.External)
	for range 3 * moqstats.YoungSlots { // each ring comes round several times
		h.Broadcast("a").PublisherTrack("v").Close()
		h.Broadcast("a").Publisher().Close()
		h.Session("acme").Close()
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if registered != 0 {
		t.Fatalf("%d guards closed young were registered, want 0", registered)
	}
}

// A guard displaced from its ring while still open is registered by the
// guard displacing it, with no pass: a ring never holds more than
// youngSlots young guards.
func TestDisplacedYoungGuardIsRegistered(t *testing.T) {
	s := newLeakStats(t)
	registered := 0
	defer moqstats.SetHookRegistering(func() { registered++ })()
	h := s.Tier(moqstats.External)
	var open []*moqstats.TrackGuard
	for range 4 * moqstats.YoungSlots {
		open = append(open, h.Broadcast("a").PublisherTrack("v"))
	}
	young := 0
	for _, g := range open {
		if moqstats.IsYoung(g) {
			young++
		}
	}
	if max := moqstats.YoungSlots * moqstats.YoungLists(s); young > max {
		t.Fatalf("%d guards young, want at most %d (YoungSlots per ring)", young, max)
	}
	if registered+young != len(open) {
		t.Fatalf("%d registered and %d young of %d open, want every open guard one or the other", registered, young, len(open))
	}
	for _, g := range open {
		g.Close()
	}
}
