package moqstats_test

import (
	"log/slog"
	"runtime"
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
	for range 3 {
		runtime.GC()
	}
	time.Sleep(10 * time.Millisecond)
	if n := s.Leaked(); n != 0 {
		t.Fatalf("Leaked() = %d for guards closed while being registered, want 0", n)
	}
	flush(t, s)
	if got := lastOf(pub(), "a"); got != (Snapshot{Subscriptions: 1, SubscriptionsClosed: 1, Broadcasts: 1, BroadcastsClosed: 1}) {
		t.Errorf("publisher a = %+v, want each close once", got)
	}
	if got := lastOf(sub(), "a"); got != (Snapshot{Announced: 1, AnnouncedClosed: 1}) {
		t.Errorf("subscriber a = %+v, want the close once", got)
	}
	if got := lastOf(sess(), "acme"); got != (SessionSnapshot{Sessions: 1, SessionsClosed: 1}) {
		t.Errorf("acme = %+v, want the close once", got)
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
