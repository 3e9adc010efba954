package moqstats_test

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/memorigin"
)

// A flood of 1,000 paths under a cap of 100, plus a 1 MiB path: frames
// hold at most 100 keys and the overflow key, none longer than
// MaxPathLen, and the bytes over all keys add up to what was bumped.
func TestPathFloodFoldsIntoOverflowExactly(t *testing.T) {
	var logs safeBuffer
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, MaxEntries: 100, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	h := s.Tier(moqstats.External)
	var guards []*moqstats.TrackGuard
	var bumped uint64
	for i := range 1000 {
		tr := h.Broadcast(fmt.Sprint("flood/", i)).PublisherTrack("v")
		tr.Bytes(uint64(i + 1))
		bumped += uint64(i + 1)
		guards = append(guards, tr)
	}
	huge := h.Broadcast(strings.Repeat("x", 1<<20)).PublisherTrack("v")
	huge.Bytes(5)
	bumped += 5
	guards = append(guards, huge)
	flush(t, s)
	f := readFrame(t, o, s, moqstats.TrackPublisher)
	if len(f) > 101 {
		t.Fatalf("frame holds %d keys under a cap of 100", len(f))
	}
	var sum uint64
	for k, v := range f {
		if len(k) > moqstats.DefaultMaxPathLen {
			t.Fatalf("key of %d bytes in the frame, over MaxPathLen", len(k))
		}
		sum += v.Bytes
	}
	if sum != bumped {
		t.Fatalf("bytes over all keys = %d, want %d", sum, bumped)
	}
	if over := f[moqstats.OverflowKey]; over.Subscriptions != 901 {
		t.Fatalf("overflow key = %+v, want the 900 folded paths and the huge one (901 subscriptions)", over)
	}
	if n := s.Overflowed(); n != 901 {
		t.Fatalf("Overflowed() = %d, want 901", n)
	}
	if !strings.Contains(logs.String(), "folded into the overflow key") || strings.Count(logs.String(), "folded") > 2 {
		t.Fatalf("overflow not logged once (rate limited):\n%s", logs.String())
	}
	for _, g := range guards {
		g.Close()
	}
	flush(t, s)
	flush(t, s)
	if held := moqstats.Held(s); held > 100 {
		t.Fatalf("Held() = %d after the flood, over the cap", held)
	}
}

// At the cap, retained entries are evicted oldest first before any new
// path is folded.
func TestCapEvictsRetainedOldestFirstBeforeFolding(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, MaxEntries: 3})
	h := s.Tier(moqstats.External)
	for _, p := range []string{"a", "b", "c"} {
		tr := h.Broadcast(p).PublisherTrack("v")
		tr.Bytes(10)
		tr.Close()
		flush(t, s) // each retained in turn: a oldest
	}
	if moqstats.Kept(s) != 3 {
		t.Fatalf("Kept = %d, want 3", moqstats.Kept(s))
	}
	d := h.Broadcast("d").PublisherTrack("v") // evicts a
	defer d.Close()
	a := h.Broadcast("a").PublisherTrack("v") // a is gone: new, evicts b
	defer a.Close()
	c := h.Broadcast("c").PublisherTrack("v") // still retained: continues
	defer c.Close()
	e := h.Broadcast("e").PublisherTrack("v") // nothing left to evict: folded
	defer e.Close()
	flush(t, s)
	f := readFrame(t, o, s, moqstats.TrackPublisher)
	if got := f["a"].Bytes; got != 0 {
		t.Fatalf("a after eviction shows %d bytes, want a fresh entry", got)
	}
	if got := f["c"].Bytes; got != 10 {
		t.Fatalf("c shows %d bytes, want its retained 10", got)
	}
	if _, ok := f["e"]; ok || f[moqstats.OverflowKey].Subscriptions != 1 {
		t.Fatalf("e not folded: frame %v", keysOf(f))
	}
	if s.Overflowed() != 1 {
		t.Fatalf("Overflowed() = %d, want 1", s.Overflowed())
	}
}

// Session roots are capped per tier, and long roots folded, the same way.
func TestSessionRootsCappedPerTier(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, MaxEntries: 2, MaxPathLen: 8})
	var guards []*moqstats.SessionGuard
	for _, tier := range []moqstats.Tier{moqstats.External, moqstats.Internal} {
		h := s.Tier(tier)
		for _, root := range []string{"r1", "r2", "r3", "r4", "a-very-long-root"} {
			guards = append(guards, h.Session(root))
		}
	}
	flush(t, s)
	for _, track := range []string{moqstats.TrackSessions, moqstats.TrackInternalSessions} {
		f := readSessionFrame(t, o, s, track)
		if len(f) != 3 || f["r1"].Sessions != 1 || f["r2"].Sessions != 1 || f[moqstats.OverflowKey].Sessions != 3 {
			t.Fatalf("%s = %v, want r1, r2 and 3 sessions folded", track, f)
		}
	}
	if s.Overflowed() != 6 {
		t.Fatalf("Overflowed() = %d, want 6", s.Overflowed())
	}
	for _, g := range guards {
		g.Close()
	}
}

// The overflow key is reserved: no path spells it.
func TestOverflowKeyIsNoPathsKey(t *testing.T) {
	s, o := setup(t)
	g := s.Tier(moqstats.External).Broadcast(moqstats.OverflowKey).Publisher()
	defer g.Close()
	flush(t, s)
	f := readFrame(t, o, s, moqstats.TrackPublisher)
	if _, ok := f[moqstats.OverflowKey]; ok || f["overflow"].Announced != 1 {
		t.Fatalf("path %q keyed as %v, want the normalized key \"overflow\"", moqstats.OverflowKey, keysOf(f))
	}
}

func TestNegativeLimitsAreConfigErrors(t *testing.T) {
	for _, cfg := range []moqstats.Config{{MaxEntries: -1}, {MaxPathLen: -1}} {
		if _, err := moqstats.New(cfg); !errors.Is(err, moqstats.ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

// GOMAXPROCS raised and lowered while guards churn and passes run: every
// count is still exact.
func TestGOMAXPROCSChangingMidRunKeepsCountsExact(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	s, o := setupConfig(t, moqstats.Config{Interval: time.Millisecond})
	pub := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
	h := s.Tier(moqstats.External)
	pin := h.Broadcast("hot").Publisher()
	const workers, rounds = 4, 300
	stop := make(chan struct{})
	var procs sync.WaitGroup
	procs.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			runtime.GOMAXPROCS(1 + i%9)
			time.Sleep(100 * time.Microsecond)
		}
	})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				tr := pin.Track("v")
				tr.Bytes(10)
				tr.Frame()
				tr.Group()
				tr.Close()
			}
		})
	}
	wg.Wait()
	close(stop)
	procs.Wait()
	pin.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var got Snapshot
	for _, f := range pub() {
		if v, ok := f["hot"]; ok {
			got = v
		}
	}
	const n = workers * rounds
	if want := (Snapshot{Announced: 1, AnnouncedClosed: 1, Subscriptions: n, SubscriptionsClosed: n, Bytes: 10 * n, Frames: n, Groups: n}); got != want {
		t.Fatalf("hot = %+v, want %+v", got, want)
	}
}

// Keys churning through collection, retention and eviction at every tick,
// at a small cap: no frame ever holds more than MaxEntries keys plus the
// overflow key, and the registry never holds more than MaxEntries keys,
// not at any instant and not after Close. A successor created while its
// predecessor is being forgotten must take over the predecessor's hold,
// never add one past the cap.
func TestCapHoldsWhileKeysChurnThroughCollection(t *testing.T) {
	const maxEntries = 8
	d := time.Second
	if testing.Short() {
		d = 250 * time.Millisecond
	}
	for _, retention := range []time.Duration{0, moqstats.NoRetention} {
		for _, sessions := range []bool{false, true} {
			t.Run(fmt.Sprintf("retention=%v/sessions=%v", retention, sessions), func(t *testing.T) {
				o := memorigin.New()
				s, err := moqstats.New(moqstats.Config{Origin: o, Interval: 200 * time.Microsecond, MaxEntries: maxEntries, Retention: retention,
					Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				track := moqstats.TrackPublisher
				held := moqstats.Held
				if sessions {
					track = moqstats.TrackSessions
					held = func(s *moqstats.Stats) int { return moqstats.SessionsHeld(s, moqstats.External) }
				}
				all := frames[map[string]uint64](t, o, s, track)
				h := s.Tier(moqstats.External)
				deadline := time.Now().Add(d)
				var maxHeld atomic.Int64
				var wg sync.WaitGroup
				for w := range 4 {
					wg.Go(func() {
						r := rand.New(rand.NewPCG(uint64(w), 15))
						for time.Now().Before(deadline) {
							key := fmt.Sprint("k", r.IntN(64))
							if sessions {
								h.Session(key).Close()
							} else {
								tr := h.Broadcast(key).PublisherTrack("v")
								tr.Bytes(1)
								tr.Close()
							}
						}
					})
				}
				wg.Go(func() { // samples the count the cap applies to
					for time.Now().Before(deadline) {
						if n := int64(held(s)); n > maxHeld.Load() {
							maxHeld.Store(n)
						}
					}
				})
				most := 0
				for time.Now().Before(deadline) {
					for _, f := range all() {
						most = max(most, len(f))
					}
					time.Sleep(time.Millisecond)
				}
				wg.Wait()
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				for _, f := range all() {
					most = max(most, len(f))
				}
				if most > maxEntries+1 {
					t.Errorf("a frame held %d keys, want at most MaxEntries+1 = %d", most, maxEntries+1)
				}
				if n := maxHeld.Load(); n > maxEntries {
					t.Errorf("%d keys held at once, want at most MaxEntries = %d", n, maxEntries)
				}
				if n := held(s); n > maxEntries {
					t.Errorf("%d keys held after Close, want at most MaxEntries = %d", n, maxEntries)
				}
			})
		}
	}
}

// MaxPathLen is inclusive: a path or root of exactly MaxPathLen bytes is
// its own key, one byte more folds into the overflow key.
func TestMaxPathLenKeepsExactlyThatManyBytes(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, MaxPathLen: 8})
	h := s.Tier(moqstats.External)
	fits, over := "abcd/efg", "abcd/efgh" // 8 and 9 bytes
	for _, p := range []string{fits, over} {
		tr := h.Broadcast(p).PublisherTrack("v")
		defer tr.Close()
		g := h.Session(p)
		defer g.Close()
	}
	flush(t, s)
	f := readFrame(t, o, s, moqstats.TrackPublisher)
	if _, ok := f[fits]; !ok || f[moqstats.OverflowKey].Subscriptions != 1 || len(f) != 2 {
		t.Fatalf("publisher.json keys %v, want %q and the overflow key holding %q", keysOf(f), fits, over)
	}
	sf := readSessionFrame(t, o, s, moqstats.TrackSessions)
	if sf[fits].Sessions != 1 || sf[moqstats.OverflowKey].Sessions != 1 || len(sf) != 2 {
		t.Fatalf("sessions.json = %v, want %q and the overflow key holding %q", sf, fits, over)
	}
	if n := s.Overflowed(); n != 2 {
		t.Fatalf("Overflowed() = %d, want 2", n)
	}
}
