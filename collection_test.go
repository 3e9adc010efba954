package moqstats_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
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

// A successor created while its collected predecessor's final frame is
// pending (here, because writing it failed) waits one pass: the frame never
// carries a key twice, and the predecessor's final counts come before the
// successor's reset.
func TestSuccessorWaitsForPredecessorFinalFrame(t *testing.T) {
	s, o := setup(t)
	all := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
	b, _ := o.Lookup(s.Path())
	h := s.Tier(moqstats.External)
	old := h.Broadcast("k").PublisherTrack("v")
	old.Bytes(10)
	flush(t, s)
	old.Close()
	b.SetWriteHook(func(track string, _ []byte) error {
		if track == moqstats.TrackPublisher {
			return errors.New("link down")
		}
		return nil
	})
	if err := s.Flush(); err == nil {
		t.Fatal("Flush with a failing track returned nil")
	}
	// The old entry is collected, its final frame pending: a new guard
	// creates a successor.
	succ := h.Broadcast("k").PublisherTrack("v")
	defer succ.Close()
	succ.Bytes(3)
	b.SetWriteHook(nil)
	flush(t, s)
	flush(t, s)
	var got []Snapshot
	for _, f := range all() {
		if v, ok := f["k"]; ok {
			got = append(got, v)
		}
	}
	want := []Snapshot{
		{Subscriptions: 1, Bytes: 10},
		{Subscriptions: 1, SubscriptionsClosed: 1, Bytes: 10},
		{Subscriptions: 1, Bytes: 3},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("k over frames = %+v, want %+v", got, want)
	}
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
// over every incarnation the passes collected plus the live one.
func TestConcurrentBumpsExactTotalsNeverClosedAboveOpen(t *testing.T) {
	const workers, rounds = 4, 400
	s, o := setup(t)
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

	for i, f := range pubFrames() {
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

	mu.Lock()
	defer mu.Unlock()
	for w := range workers {
		key := fmt.Sprint("churn/", w)
		got := collected[key]
		want := counters.Snapshot{Subscriptions: rounds, SubscriptionsClosed: rounds, Bytes: 3 * rounds, Frames: rounds}
		if got != want {
			t.Errorf("%s summed over collected incarnations = %+v, want %+v", key, got, want)
		}
	}
	if moqstats.Entries(s) != 1 { // hot, unpinned only now
		t.Fatalf("%d live entries after every churned guard closed, want 1", moqstats.Entries(s))
	}
}
