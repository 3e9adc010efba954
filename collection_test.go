package moqstats_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/memorigin"
)

// frames subscribes to track and returns a function that returns every
// frame written so far, decoded.
func frames[V any](t *testing.T, o *memorigin.Origin, s *moqstats.Stats, track string) func() []map[string]V {
	t.Helper()
	sub, err := o.Subscribe(s.Path(), track)
	if err != nil {
		t.Fatal(err)
	}
	var all []map[string]V
	return func() []map[string]V {
		for {
			f, ok := sub.TryNext()
			if !ok {
				return all
			}
			all = append(all, decode[V](t, f))
		}
	}
}

// The reference loses an entry whose last guard closes between its
// snapshot pass and its GC pass. Here a pass collects each row right
// before reading it, so guards that open or close while a pass runs are
// never lost.
func TestGuardClosedDuringPassIsNeverLost(t *testing.T) {
	s, o := setup(t)
	all := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
	h := s.Tier(moqstats.External)
	held := h.Broadcast("held").PublisherTrack("v")
	held.Bytes(1)
	var once sync.Once
	defer moqstats.SetHookDuringPass(func() {
		once.Do(func() {
			// While the pass runs: close a pinned entry's last guard,
			// and open and close a brand-new entry.
			held.Bytes(2)
			held.Close()
			fresh := h.Broadcast("fresh").PublisherTrack("v")
			fresh.Bytes(7)
			fresh.Close()
		})
	})()
	flush(t, s)
	flush(t, s)
	flush(t, s)
	var sawHeld, sawFresh bool
	for _, f := range all() {
		sawHeld = sawHeld || f["held"] == Snapshot{Subscriptions: 1, SubscriptionsClosed: 1, Bytes: 3}
		sawFresh = sawFresh || f["fresh"] == Snapshot{Subscriptions: 1, SubscriptionsClosed: 1, Bytes: 7}
	}
	if !sawHeld || !sawFresh {
		t.Fatalf("final states written: held %v, fresh %v; want both; frames %+v", sawHeld, sawFresh, all())
	}
	if moqstats.Rows(s) != 0 {
		t.Fatalf("%d rows left after both entries were emitted and collected", moqstats.Rows(s))
	}
}

// lifetime is a key's lifetime total over the values successive frames
// showed for it: a decrease starts a new segment, and segments add up.
func lifetime(vals []uint64) uint64 {
	var total, last uint64
	for _, v := range vals {
		if v < last {
			total += last
		}
		last = v
	}
	return total + last
}

// valuesOf returns the values frames showed for key, through f.
func valuesOf[V any](frames []map[string]V, key string, f func(V) uint64) []uint64 {
	var vals []uint64
	for _, fr := range frames {
		if v, ok := fr[key]; ok {
			vals = append(vals, f(v))
		}
	}
	return vals
}

// retentions runs f with retention on (the default) and off.
func retentions(t *testing.T, f func(t *testing.T, retention time.Duration)) {
	for _, r := range []time.Duration{0, moqstats.NoRetention} {
		t.Run(fmt.Sprint("retention=", r), func(t *testing.T) { f(t, r) })
	}
}

// A key re-created while its predecessor's final frame failed to go out
// continues from it, so Close's one pass publishes everything: a failed
// write delays counts by a pass and never loses them. (A successor used to
// wait behind its pending predecessor, and Close's single pass left it
// unpublished: 10 bytes and 1 session on the wire instead of 13 and 4.)
func TestFailedWriteNeverLosesASuccessorsCounts(t *testing.T) {
	retentions(t, func(t *testing.T, retention time.Duration) {
		o := memorigin.New()
		s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour, Retention: retention})
		if err != nil {
			t.Fatal(err)
		}
		pub := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
		sess := frames[SessionSnapshot](t, o, s, moqstats.TrackSessions)
		b, _ := o.Lookup(s.Path())
		h := s.Tier(moqstats.External)

		g := h.Broadcast("k").PublisherTrack("v")
		g.Bytes(10)
		g.Close()
		h.Session("r").Close()
		b.SetWriteHook(func(track string, _ []byte) error {
			if track == moqstats.TrackPublisher || track == moqstats.TrackSessions {
				return errors.New("link down")
			}
			return nil
		})
		if err := s.Flush(); err == nil {
			t.Fatal("Flush with failing tracks returned nil")
		}
		b.SetWriteHook(nil)
		g = h.Broadcast("k").PublisherTrack("v")
		g.Bytes(3)
		g.Close()
		for range 3 {
			h.Session("r").Close()
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		all := pub()
		if got := lifetime(valuesOf(all, "k", func(v Snapshot) uint64 { return v.Bytes })); got != 13 {
			t.Errorf("k's bytes over every frame add up to %d, want 13; frames %+v", got, all)
		}
		allSess := sess()
		if got := lifetime(valuesOf(allSess, "r", func(v SessionSnapshot) uint64 { return v.Sessions })); got != 4 {
			t.Errorf("r's sessions over every frame add up to %d, want 4; frames %+v", got, allSess)
		}
		if last := all[len(all)-1]["k"]; last != (Snapshot{Subscriptions: 2, SubscriptionsClosed: 2, Bytes: 13}) {
			t.Errorf("k in the last frame = %+v, want the continued final counts", last)
		}
	})
}

// Under steady churn with one failed pass in ten, every pass after a
// failed one catches up completely: the frames never fall behind, however
// many failures came before, and no row waits behind another. With
// retention each key's last value is its total; without, each collected
// incarnation's final counts add up to it.
func TestFailedWritesNeverMakeThePassFallBehind(t *testing.T) {
	retentions(t, func(t *testing.T, retention time.Duration) {
		// The link may still be down at Close: one attempt.
		s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, Retention: retention, CloseTimeout: -1})
		pub := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
		b, _ := o.Lookup(s.Path())
		h := s.Tier(moqstats.External)
		keys := []string{"a", "b", "c"}
		bumped, dropped := map[string]uint64{}, map[string]uint64{}
		defer moqstats.SetHookDropped(func(key string, final *[4]counters.Snapshot) {
			dropped[key] += final[0].Bytes // the pass runs in this goroutine (Flush)
		})()
		var fail atomic.Bool
		b.SetWriteHook(func(track string, _ []byte) error {
			if fail.Load() && track == moqstats.TrackPublisher {
				return errors.New("link down")
			}
			return nil
		})
		// Each key's bytes in the last frame that holds it, from the frames
		// read so far: each pass reads only its own frames.
		last, read := map[string]uint64{}, 0
		// With -short (the arm64 race guest's CI boot, where a pass costs
		// tens of milliseconds), 20 failed passes rather than 100.
		passes := 1000
		if testing.Short() {
			passes = 200
		}
		for pass := range passes {
			k := keys[pass%len(keys)]
			g := h.Broadcast(k).PublisherTrack("v")
			g.Bytes(uint64(pass + 1))
			bumped[k] += uint64(pass + 1)
			g.Close()
			fail.Store(pass%10 == 9)
			err := s.Flush()
			if fail.Load() != (err != nil) {
				t.Fatalf("pass %d: failing %v, Flush error %v", pass, fail.Load(), err)
			}
			if err != nil {
				continue
			}
			all := pub()
			for _, f := range all[read:] {
				for k, v := range f {
					last[k] = v.Bytes
				}
			}
			read = len(all)
			for _, k := range keys {
				got := last[k]
				if retention < 0 {
					got = dropped[k]
				}
				if got != bumped[k] {
					t.Fatalf("pass %d: %s's bytes on the wire come to %d, want %d", pass, k, got, bumped[k])
				}
			}
			if n := moqstats.Rows(s); n != 0 {
				t.Fatalf("pass %d: %d rows held after a clean pass with every guard closed", pass, n)
			}
		}
	})
}

// A BroadcastStats pins nothing: after its entry is collected, opening a
// guard from it reaches a fresh entry, and nothing is lost.
func TestBroadcastStatsOutlivesItsEntry(t *testing.T) {
	s, o := setup(t)
	bs := s.Tier(moqstats.External).Broadcast("b")
	flush(t, s) // collects the unpinned entry Broadcast created
	if moqstats.HasEntry(s, "b") {
		t.Fatalf("unpinned entry not collected")
	}
	tr := bs.PublisherTrack("v")
	defer tr.Close()
	tr.Bytes(4)
	flush(t, s)
	if got := readFrame(t, o, s, moqstats.TrackPublisher)["b"]; got != (Snapshot{Subscriptions: 1, Bytes: 4}) {
		t.Fatalf("b = %+v after reopening through a stale BroadcastStats", got)
	}
}

// TestConcurrentBumpsExactTotalsNeverClosedAboveOpen runs guard churn,
// bumps and sessions from several goroutines against back-to-back passes,
// checks every frame written for closed <= open, and checks exact totals:
// for the pinned broadcast in its final frame, and for churned broadcasts
// in the last frame that shows them (with retention, where they continue)
// or over every incarnation the passes collected (without).
func TestConcurrentBumpsExactTotalsNeverClosedAboveOpen(t *testing.T) {
	retentions(t, testConcurrentBumps)
}

func testConcurrentBumps(t *testing.T, retention time.Duration) {
	const workers, rounds = 4, 400
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, Retention: retention})
	pubFrames := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
	sessFrames := frames[SessionSnapshot](t, o, s, moqstats.TrackSessions)
	h := s.Tier(moqstats.External)
	pin := h.Broadcast("hot").Publisher()

	var mu sync.Mutex
	collected := map[string]counters.Snapshot{} // summed finals by key
	defer moqstats.SetHookDropped(func(key string, final *[4]counters.Snapshot) {
		mu.Lock()
		defer mu.Unlock()
		c := collected[key]
		c.Subscriptions += final[0].Subscriptions
		c.SubscriptionsClosed += final[0].SubscriptionsClosed
		c.Bytes += final[0].Bytes
		c.Frames += final[0].Frames
		collected[key] = c
	})()

	stop := make(chan struct{})
	var passes sync.WaitGroup
	passes.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.Flush(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 9))
			viewer := h.PublisherBroadcasts()
			churn := fmt.Sprint("churn/", w)
			for range rounds {
				sess := h.Session("acme")
				sub := viewer.Subscribe("hot")
				tr := pin.Track("video")
				tr.Bytes(1200)
				tr.Frame()
				if r.IntN(4) == 0 {
					tr.Group()
				}
				c := h.Broadcast(churn).PublisherTrack("v")
				c.Bytes(3)
				c.Frame()
				if r.IntN(8) == 0 {
					time.Sleep(time.Duration(r.IntN(50)) * time.Microsecond)
				}
				c.Close()
				tr.Close()
				sub.Close()
				sess.Close()
			}
		})
	}
	wg.Wait()
	close(stop)
	passes.Wait()
	flush(t, s)
	flush(t, s)

	all := pubFrames()
	for i, f := range all {
		for k, v := range f {
			if v.ClosedAboveOpen() {
				t.Fatalf("publisher frame %d: %s = %+v shows closed > open", i, k, v)
			}
		}
	}
	for i, f := range sessFrames() {
		for k, v := range f {
			if v.SessionsClosed > v.Sessions {
				t.Fatalf("session frame %d: %s = %+v shows closed > open", i, k, v)
			}
		}
	}

	const n = workers * rounds
	hot := readFrame(t, o, s, moqstats.TrackPublisher)["hot"]
	wantHot := Snapshot{Announced: 1, Broadcasts: n, BroadcastsClosed: n, Subscriptions: n, SubscriptionsClosed: n, Bytes: n * 1200, Frames: n, Groups: hot.Groups}
	if hot != wantHot || hot.Groups == 0 {
		t.Fatalf("hot = %+v, want %+v", hot, wantHot)
	}
	pin.Close()

	want := Snapshot{Subscriptions: rounds, SubscriptionsClosed: rounds, Bytes: 3 * rounds, Frames: rounds}
	mu.Lock()
	defer mu.Unlock()
	for w := range workers {
		key := fmt.Sprint("churn/", w)
		if retention >= 0 {
			var last Snapshot
			for _, f := range all {
				if v, ok := f[key]; ok {
					if v.Bytes < last.Bytes {
						t.Errorf("%s went back within retention: %+v after %+v", key, v, last)
					}
					last = v
				}
			}
			if last != want {
				t.Errorf("%s last emitted = %+v, want %+v", key, last, want)
			}
			continue
		}
		got := collected[key]
		if w := (counters.Snapshot{Subscriptions: want.Subscriptions, SubscriptionsClosed: want.SubscriptionsClosed, Bytes: want.Bytes, Frames: want.Frames}); got != w {
			t.Errorf("%s summed over collected incarnations = %+v, want %+v", key, got, w)
		}
	}
	if moqstats.Entries(s) != 1 { // hot, unpinned only now
		t.Fatalf("%d live entries after every churned guard closed, want 1", moqstats.Entries(s))
	}
}

// A new entry is on the pass's list before any other goroutine can find
// it. Here its creator is paused between the map store and publication
// while another goroutine opens a guard on it, bumps 100 bytes and closes,
// and Stats.Close runs its final pass: the 100 bytes are on the wire.
// (The entry used to be pushed after the store, so that pass missed it.)
func TestEntryFoundBeforeItsCreatorReturnsIsNeverLost(t *testing.T) {
	o := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pub := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
	h := s.Tier(moqstats.External)
	paused, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	defer moqstats.SetHookPublish(func(key string) {
		if key == "k" {
			once.Do(func() { close(paused); <-resume })
		}
	})()
	created := make(chan struct{})
	go func() {
		defer close(created)
		h.Broadcast("k") // the creator: paused inside
	}()
	<-paused
	tr := h.Broadcast("k").PublisherTrack("v") // finds the stored entry
	tr.Bytes(100)
	tr.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	close(resume)
	<-created
	var got Snapshot
	for _, f := range pub() {
		if v, ok := f["k"]; ok {
			got = v
		}
	}
	if want := (Snapshot{Subscriptions: 1, SubscriptionsClosed: 1, Bytes: 100}); got != want {
		t.Fatalf("k on the wire = %+v, want %+v", got, want)
	}
}

// A collected session root whose final frame failed to go out stays until
// a frame carrying it is written.
func TestCollectedRootKeptUntilItsFinalFrameIsWritten(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, Retention: moqstats.NoRetention})
	b, _ := o.Lookup(s.Path())
	h := s.Tier(moqstats.External)
	g := h.Session("acme")
	flush(t, s)
	g.Close()
	b.SetWriteHook(func(track string, _ []byte) error {
		if track == moqstats.TrackSessions {
			return errors.New("link down")
		}
		return nil
	})
	if err := s.Flush(); err == nil {
		t.Fatal("Flush with a failing sessions.json returned nil")
	}
	b.SetWriteHook(nil)
	flush(t, s)
	if got := readSessionFrame(t, o, s, moqstats.TrackSessions)["acme"]; got != (SessionSnapshot{Sessions: 1, SessionsClosed: 1}) {
		t.Fatalf("acme after the retry = %+v, want its final counts {1 1}", got)
	}
}

// A closed track guard stays closed on an inflated set: Group (which
// repins the lane), Bytes and Close again change nothing, and the other
// guard's pin still holds the entry.
func TestClosedTrackGuardStaysClosedOnAnInflatedSet(t *testing.T) {
	s, o := setup(t)
	bs := s.Tier(moqstats.External).Broadcast("b")
	live := bs.PublisherTrack("a")  // takes the base cell
	other := bs.PublisherTrack("b") // a second lane: inflates the set
	other.Bytes(5)
	other.Close()
	before, _ := moqstats.Raw(s, moqstats.External, moqstats.RolePublisher, "b")
	for range 3 {
		other.Group()
		other.Bytes(100)
		other.Frame()
		other.Close()
	}
	after, _ := moqstats.Raw(s, moqstats.External, moqstats.RolePublisher, "b")
	if after != before {
		t.Fatalf("a closed guard changed its counters: %+v, then %+v", before, after)
	}
	flush(t, s)
	flush(t, s)
	if !moqstats.HasEntry(s, "b") {
		t.Fatal("entry collected while a guard is still open: a pin was dropped")
	}
	live.Bytes(1)
	flush(t, s)
	if got := readFrame(t, o, s, moqstats.TrackPublisher)["b"]; got != (Snapshot{Subscriptions: 2, SubscriptionsClosed: 1, Bytes: 6}) {
		t.Fatalf("b = %+v, want the live guard's byte counted on the same entry", got)
	}
	live.Close()
}
