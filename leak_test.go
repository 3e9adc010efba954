package moqstats_test

import (
	"bytes"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
)

// dropGuards opens one guard of every kind on "a" (and root "acme") and
// drops them without Close. Not inlined, so nothing of it stays on the
// caller's stack.
//
//go:noinline
func dropGuards(h moqstats.Handle) {
	bs := h.Broadcast("a")
	g := bs.Subscriber()
	tr := bs.PublisherTrack("v")
	tr.Bytes(7)
	h.PublisherBroadcasts().Subscribe("a")
	h.Session("acme")
	_ = g
}

// collectUntil runs garbage collections until cond holds (cleanups run on
// their own goroutine after a collection finds the guards unreachable).
func collectUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second) // a hang guard, not a timing assertion
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached after repeated garbage collections")
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

// A track guard, a broadcast guard, a subscription and a session dropped
// without Close are closed by the garbage collector: counted, their closes
// in the next frame, and the entries then collected.
func TestGuardsDroppedWithoutCloseAreReclaimed(t *testing.T) {
	var logs safeBuffer
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	dropGuards(s.Tier(moqstats.External))
	flush(t, s)
	if f := readFrame(t, o, s, moqstats.TrackPublisher)["a"]; !f.Live() {
		t.Fatalf("a = %+v before reclaim, want live", f)
	}
	collectUntil(t, func() bool { return s.Leaked() == 4 })
	runtime.GC() // more collections must not reclaim anything twice
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	if n := s.Leaked(); n != 4 {
		t.Fatalf("Leaked() = %d, want 4", n)
	}
	flush(t, s)
	want := Snapshot{Broadcasts: 1, BroadcastsClosed: 1, Subscriptions: 1, SubscriptionsClosed: 1, Bytes: 7}
	if got := readFrame(t, o, s, moqstats.TrackPublisher)["a"]; got != want {
		t.Fatalf("publisher a after reclaim = %+v, want %+v", got, want)
	}
	if got := readFrame(t, o, s, moqstats.TrackSubscriber)["a"]; got != (Snapshot{Announced: 1, AnnouncedClosed: 1}) {
		t.Fatalf("subscriber a after reclaim = %+v, want the announce closed", got)
	}
	if got := readSessionFrame(t, o, s, moqstats.TrackSessions)["acme"]; got != (SessionSnapshot{Sessions: 1, SessionsClosed: 1}) {
		t.Fatalf("acme after reclaim = %+v, want {1 1}", got)
	}
	flush(t, s)
	for _, tr := range []string{moqstats.TrackPublisher, moqstats.TrackSubscriber, moqstats.TrackSessions} {
		if f := string(latest(t, o, s, tr)); f != "{}" {
			t.Fatalf("%s after the closes went out = %s, want {}", tr, f)
		}
	}
	if moqstats.Entries(s) != 0 {
		t.Fatalf("%d entries left after reclaim, want 0", moqstats.Entries(s))
	}
	for _, want := range []string{"guard dropped without Close", "key=", "guard="} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
	if n := strings.Count(logs.String(), "guard dropped without Close"); n > 2 {
		t.Errorf("%d leak log lines for 4 leaks at once, want them rate limited", n)
	}
}

// With the check off nothing is reclaimed: the entry stays pinned, and
// Leaked stays 0.
func TestLeakCheckOffReclaimsNothing(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, DisableLeakCheck: true})
	dropGuards(s.Tier(moqstats.External))
	for range 3 {
		runtime.GC()
	}
	time.Sleep(10 * time.Millisecond)
	flush(t, s)
	if s.Leaked() != 0 {
		t.Fatalf("Leaked() = %d with the check off, want 0", s.Leaked())
	}
	if got := readFrame(t, o, s, moqstats.TrackPublisher)["a"]; !got.Live() {
		t.Fatalf("a = %+v, want still live: nothing reclaims it", got)
	}
}

// A guard closed before it is dropped is never closed again by its
// cleanup.
func TestClosedGuardsAreNeverReclaimed(t *testing.T) {
	s, o := setup(t)
	func() {
		h := s.Tier(moqstats.External)
		bs := h.Broadcast("a")
		g := bs.Subscriber()
		tr := g.Track("v")
		tr.Close()
		tr.Close()
		g.Close()
		h.PublisherBroadcasts().Subscribe("a").Close()
		h.Session("acme").Close()
	}()
	for range 3 {
		runtime.GC()
	}
	time.Sleep(10 * time.Millisecond)
	flush(t, s)
	if s.Leaked() != 0 {
		t.Fatalf("Leaked() = %d for closed guards, want 0", s.Leaked())
	}
	if got := readFrame(t, o, s, moqstats.TrackSubscriber)["a"]; got != (Snapshot{Announced: 1, AnnouncedClosed: 1, Subscriptions: 1, SubscriptionsClosed: 1}) {
		t.Fatalf("a = %+v, want each close once", got)
	}
}

// Many guards dropped at once are all reclaimed, counted exactly, while
// passes run; the log is rate limited.
func TestManyDroppedGuardsReclaimedExactly(t *testing.T) {
	var logs safeBuffer
	s, o := setupConfig(t, moqstats.Config{Interval: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	const n = 500
	pub := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
	start := time.Now()
	func() {
		h := s.Tier(moqstats.External)
		for i := range n {
			tr := h.Broadcast("hot").PublisherTrack("v")
			tr.Bytes(uint64(i))
		}
	}()
	collectUntil(t, func() bool { return s.Leaked() == n })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := Snapshot{Subscriptions: n, SubscriptionsClosed: n, Bytes: n * (n - 1) / 2}
	var got Snapshot
	for _, f := range pub() {
		if v, ok := f["hot"]; ok {
			got = v
		}
	}
	if got != want {
		t.Fatalf("hot = %+v, want %+v", got, want)
	}
	if lines, most := strings.Count(logs.String(), "guard dropped without Close"), int(time.Since(start)/time.Second)+1; lines > most {
		t.Fatalf("%d leak log lines in %v, want at most one a second", lines, time.Since(start))
	}
	if !bytes.Contains([]byte(logs.String()), []byte("suppressed=")) {
		t.Fatalf("leak log does not say how many lines it suppressed:\n%s", logs.String())
	}
}

// dropTrack opens a track guard under g and drops it without Close.
//
//go:noinline
func dropTrack(g *moqstats.BroadcastGuard) {
	tr := g.Track("v")
	tr.Bytes(1)
}

// A leaked track guard that held its counters' base cell gives it back when
// reclaimed: the next guard on the entry, alone on it, bumps the base cell
// again instead of inflating the counters into per-CPU cells for good.
func TestReclaimedTrackGuardGivesBackTheBaseCell(t *testing.T) {
	s, _ := setupConfig(t, moqstats.Config{Interval: time.Hour})
	g := s.Tier(moqstats.External).Broadcast("a").Publisher() // pins the entry
	defer g.Close()
	dropTrack(g)
	collectUntil(t, func() bool { return s.Leaked() == 1 })
	tr := g.Track("v")
	defer tr.Close()
	if n := moqstats.TrackShards(tr); n != 0 {
		t.Fatalf("a lone guard after the reclaim made the counters allocate %d cells, want 0: the reclaimed guard kept the base cell", n)
	}
}
