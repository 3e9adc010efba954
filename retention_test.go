package moqstats_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/internal/wiretest"
	"github.com/moqstats/moqstats/memorigin"
)

// fieldsNeverDecrease fails t if any counter of any key went down between
// two frames that show the key.
func fieldsNeverDecrease[V any](t *testing.T, frames []map[string]V) {
	t.Helper()
	last := map[string]V{}
	for i, f := range frames {
		for k, v := range f {
			if prev, ok := last[k]; ok {
				pv, cv := reflect.ValueOf(prev), reflect.ValueOf(v)
				for j := range pv.NumField() {
					if cv.Field(j).Uint() < pv.Field(j).Uint() {
						t.Fatalf("frame %d: %s.%s went from %d to %d within retention", i, k, pv.Type().Field(j).Name, pv.Field(j).Uint(), cv.Field(j).Uint())
					}
				}
			}
			last[k] = v
		}
	}
}

// Retention: 8 goroutines open, bump and close guards on 8 paths (and 8
// roots) that nothing else holds, while passes run every millisecond, so
// entries are collected and re-created all the time. Every counter a frame
// shows only grows, and after Close the last value emitted for each path
// is exactly what was bumped on it.
func TestRetentionCountersContinueAcrossCollection(t *testing.T) {
	const workers = 8
	o := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pub := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
	sess := frames[SessionSnapshot](t, o, s, moqstats.TrackSessions)
	h := s.Tier(moqstats.External)
	var want [workers]Snapshot
	var wantSessions [workers]uint64
	deadline := time.Now().Add(700 * time.Millisecond)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			path := fmt.Sprint("path/", w)
			root := fmt.Sprint("root/", w)
			for i := 0; time.Now().Before(deadline); i++ {
				g := h.Broadcast(path).Publisher()
				tr := g.Track("v")
				tr.Bytes(uint64(i%1500 + 1))
				tr.Frame()
				if i%5 == 0 {
					tr.Group()
					want[w].Groups++
				}
				tr.Close()
				g.Close()
				h.Session(root).Close()
				want[w].Announced++
				want[w].AnnouncedClosed++
				want[w].Subscriptions++
				want[w].SubscriptionsClosed++
				want[w].Bytes += uint64(i%1500 + 1)
				want[w].Frames++
				wantSessions[w]++
				if i%50 == 0 {
					time.Sleep(time.Millisecond) // let passes collect between rounds
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	all, allSess := pub(), sess()
	fieldsNeverDecrease(t, all)
	fieldsNeverDecrease(t, allSess)
	last := map[string]Snapshot{}
	for _, f := range all {
		for k, v := range f {
			last[k] = v
		}
	}
	lastSess := map[string]SessionSnapshot{}
	for _, f := range allSess {
		for k, v := range f {
			lastSess[k] = v
		}
	}
	for w := range workers {
		if got := last[fmt.Sprint("path/", w)]; got != want[w] {
			t.Errorf("path/%d last emitted %+v, want %+v", w, got, want[w])
		}
		if got := lastSess[fmt.Sprint("root/", w)]; got.Sessions != wantSessions[w] || got.SessionsClosed != wantSessions[w] {
			t.Errorf("root/%d last emitted %+v, want %d sessions", w, got, wantSessions[w])
		}
	}
	if len(all) < 10 {
		t.Fatalf("only %d frames written: passes did not interleave with the churn", len(all))
	}
}

// A retained key stays out of the frames (the live-or-changed rule is
// unchanged) until it moves again, and then shows its continued counts.
func TestRetainedKeyIsNotInFramesUntilItMoves(t *testing.T) {
	s, o := setup(t)
	h := s.Tier(moqstats.External)
	tr := h.Broadcast("k").PublisherTrack("v")
	tr.Bytes(5)
	tr.Close()
	flush(t, s) // final counts out; collected and retained
	flush(t, s)
	if f := readFrame(t, o, s, moqstats.TrackPublisher); len(f) != 0 {
		t.Fatalf("frame with only a retained key = %v, want {}", f)
	}
	if moqstats.Kept(s) != 1 || moqstats.Entries(s) != 0 {
		t.Fatalf("Kept %d, Entries %d; want the key retained, no entry", moqstats.Kept(s), moqstats.Entries(s))
	}
	g := h.Broadcast("k").Publisher() // back, without traffic on the track slot
	flush(t, s)
	want := Snapshot{Announced: 1, Subscriptions: 1, SubscriptionsClosed: 1, Bytes: 5}
	if got := readFrame(t, o, s, moqstats.TrackPublisher)["k"]; got != want {
		t.Fatalf("k back = %+v, want %+v", got, want)
	}
	if moqstats.Kept(s) != 0 {
		t.Fatalf("Kept = %d after the key came back, want 0", moqstats.Kept(s))
	}
	g.Close()
}

// After the window a retained key is dropped, and a key that comes back
// starts from zero: a decrease, which consumers treat as a new segment.
func TestRetentionExpiresAfterTheWindow(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, Retention: time.Minute})
	var now atomic.Int64
	moqstats.SetClock(s, func() time.Duration { return time.Duration(now.Load()) })
	h := s.Tier(moqstats.External)
	cycle := func(bytes uint64) {
		tr := h.Broadcast("k").PublisherTrack("v")
		tr.Bytes(bytes)
		tr.Close()
		flush(t, s)
	}
	cycle(10) // retained at t=0 until t=1m
	now.Store(int64(59 * time.Second))
	flush(t, s)
	if moqstats.Kept(s) != 1 {
		t.Fatalf("Kept = %d within the window, want 1", moqstats.Kept(s))
	}
	cycle(1) // within: continues
	if got := readFrame(t, o, s, moqstats.TrackPublisher)["k"].Bytes; got != 11 {
		t.Fatalf("bytes within the window = %d, want 11", got)
	}
	now.Store(int64(59*time.Second + time.Minute)) // the second retention ends
	flush(t, s)
	if moqstats.Kept(s) != 0 || moqstats.Held(s) != 0 {
		t.Fatalf("after the window: Kept %d, Held %d; want nothing", moqstats.Kept(s), moqstats.Held(s))
	}
	cycle(2)
	if got := readFrame(t, o, s, moqstats.TrackPublisher)["k"].Bytes; got != 2 {
		t.Fatalf("bytes after the window = %d, want 2 (a new segment)", got)
	}
}

// NoRetention is the reference's behaviour: a re-created entry starts from
// zero.
func TestNoRetentionRecreatedEntryStartsFromZero(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, Retention: moqstats.NoRetention})
	h := s.Tier(moqstats.External)
	for _, n := range []uint64{10, 3} {
		tr := h.Broadcast("k").PublisherTrack("v")
		tr.Bytes(n)
		tr.Close()
		h.Session("r").Close()
		flush(t, s)
		if got := readFrame(t, o, s, moqstats.TrackPublisher)["k"].Bytes; got != n {
			t.Fatalf("bytes = %d, want %d from a fresh entry", got, n)
		}
		if got := readSessionFrame(t, o, s, moqstats.TrackSessions)["r"].Sessions; got != 1 {
			t.Fatalf("sessions = %d, want 1 from a fresh root", got)
		}
		flush(t, s)
		if moqstats.Kept(s) != 0 || moqstats.Held(s) != 0 || moqstats.SessionsHeld(s, moqstats.External) != 0 {
			t.Fatalf("something held with NoRetention: Kept %d, Held %d", moqstats.Kept(s), moqstats.Held(s))
		}
	}
}

func TestRetainedSessionRootContinues(t *testing.T) {
	s, o := setup(t)
	h := s.Tier(moqstats.Internal)
	h.Session("peer").Close()
	flush(t, s)
	flush(t, s)
	if f := readSessionFrame(t, o, s, moqstats.TrackInternalSessions); len(f) != 0 {
		t.Fatalf("internal sessions with only a retained root = %v, want {}", f)
	}
	g := h.Session("peer")
	flush(t, s)
	if got := readSessionFrame(t, o, s, moqstats.TrackInternalSessions)["peer"]; got != (SessionSnapshot{Sessions: 2, SessionsClosed: 1}) {
		t.Fatalf("peer back = %+v, want {2 1}", got)
	}
	g.Close()
}

// A key re-created while its final frame failed continues every counter,
// the newer three too. (It used to carry only the nine, so fetches,
// datagrams and announced_bytes went back.)
func TestRecreatedKeyContinuesTheNewerCountersToo(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, NewerCounters: true})
	b, _ := o.Lookup(s.Path())
	h := s.Tier(moqstats.External)
	g := h.Broadcast("k").Publisher()
	tr := g.Track("v")
	tr.Datagram(10)
	g.Fetch("v").Close()
	flush(t, s)
	tr.Close()
	g.Close()
	b.SetWriteHook(func(string, []byte) error { return errors.New("link down") })
	if err := s.Flush(); err == nil {
		t.Fatal("Flush with every write failing returned nil")
	}
	b.SetWriteHook(nil)
	g = h.Broadcast("k").Publisher() // folds over its pending predecessor
	defer g.Close()
	flush(t, s)
	got := decode[wiretest.SnapshotAll](t, latest(t, o, s, moqstats.TrackPublisher))["k"]
	want := wiretest.SnapshotAll{Announced: 2, AnnouncedClosed: 1, AnnouncedBytes: 3, Subscriptions: 1, SubscriptionsClosed: 1, Fetches: 1, Bytes: 10, Frames: 1, Groups: 1, Datagrams: 1}
	if got != want {
		t.Fatalf("k = %+v, want %+v", got, want)
	}
}

// A key live again never loses its retained counts to eviction. Here a
// guard opens on "a" while the pass that collected it is forgetting it
// (after its final frame, before the registry lets go of it), and a new key
// then arrives at the cap, which evicts the oldest retained entry that
// nothing claims. "a"'s retained counts are claimed by the guard's entry,
// so they must survive: frames show 100 and then 105, never 5. The same
// for a session root.
func TestRetainedCountsOfAKeyLiveAgainAreNeverEvicted(t *testing.T) {
	for _, sessions := range []bool{false, true} {
		t.Run(fmt.Sprintf("sessions=%v", sessions), func(t *testing.T) {
			s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, MaxEntries: 2})
			h := s.Tier(moqstats.External)
			track := moqstats.TrackPublisher
			if sessions {
				track = moqstats.TrackSessions
			}
			all := frames[map[string]uint64](t, o, s, track)
			field := "bytes"
			// open opens a guard on key and returns its bump and its close.
			open := func(key string) (bump func(uint64), close func()) {
				if sessions {
					g := h.Session(key)
					return func(uint64) {}, g.Close
				}
				tr := h.Broadcast(key).PublisherTrack("v")
				return tr.Bytes, tr.Close
			}
			want := []uint64{100, 105}
			if sessions {
				field = "sessions"
				want = []uint64{1, 2}
			}
			bump, closeA := open("a")
			bump(100)
			closeA()
			var again func(uint64)
			var closeAgain func()
			var once sync.Once
			restore := moqstats.SetHookForget(func(key string) {
				if key != "a" {
					return
				}
				once.Do(func() {
					done := make(chan struct{})
					go func() { // a relay goroutine, while the pass forgets "a"
						defer close(done)
						again, closeAgain = open("a")
					}()
					<-done
				})
			})
			flush(t, s) // writes a's final counts, then forgets it
			restore()
			if again == nil {
				t.Fatal("the pass never forgot a")
			}
			_, closeB := open("b") // at the cap: evicts whatever retained entry nothing claims
			defer closeB()
			again(5)
			closeAgain()
			flush(t, s)
			var got []uint64
			for _, f := range all() {
				if v, ok := f["a"]; ok && (len(got) == 0 || got[len(got)-1] != v[field]) {
					got = append(got, v[field])
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("a.%s across frames: %v, want %v (the retained counts continued)", field, got, want)
			}
			if n := moqstats.Held(s) + moqstats.SessionsHeld(s, moqstats.External); n > 2 {
				t.Fatalf("%d keys held, want at most MaxEntries = 2", n)
			}
		})
	}
}

// A retained key that comes back on another role does not reappear on the
// role it was retained on: its successor starts there from the retained
// counts marked as on the wire, which are in no frame since and unchanged,
// so publisher.json stays {}.
func TestRetainedKeyBackOnAnotherRoleStaysOffTheFirst(t *testing.T) {
	s, o := setup(t)
	b, _ := o.Lookup(s.Path())
	h := s.Tier(moqstats.External)
	tr := h.Broadcast("k").PublisherTrack("v")
	tr.Bytes(10)
	tr.Close()
	flush(t, s) // k's final counts, then k retained
	flush(t, s) // k out of publisher.json
	if f := string(latest(t, o, s, moqstats.TrackPublisher)); f != "{}" || moqstats.Kept(s) != 1 {
		t.Fatalf("publisher.json = %s with %d retained, want {} with k retained", f, moqstats.Kept(s))
	}
	writes := b.Writes(moqstats.TrackPublisher)
	in := h.Broadcast("k").SubscriberTrack("v")
	defer in.Close()
	in.Bytes(3)
	flush(t, s)
	if f := string(latest(t, o, s, moqstats.TrackPublisher)); f != "{}" || b.Writes(moqstats.TrackPublisher) != writes {
		t.Fatalf("publisher.json = %s after k came back on the subscriber role only (%d new writes), want {} and none", f, b.Writes(moqstats.TrackPublisher)-writes)
	}
	if got := readFrame(t, o, s, moqstats.TrackSubscriber)["k"]; got != (Snapshot{Subscriptions: 1, Bytes: 3}) {
		t.Fatalf("subscriber.json k = %+v, want the new guard's counts", got)
	}
}

// A retained key's final counts survive their compact encoding exactly,
// from zero to the largest uint64, in every field.
func TestRetainedCountsRoundTripExactly(t *testing.T) {
	for _, v := range []counters.Snapshot{
		{},
		{Announced: 1, Subscriptions: 3, SubscriptionsClosed: 3, Bytes: 1200},
		{Announced: ^uint64(0), AnnouncedClosed: 1 << 63, Broadcasts: 127, BroadcastsClosed: 128, Subscriptions: 1 << 35,
			SubscriptionsClosed: 1<<35 - 1, Bytes: ^uint64(0) - 1, Frames: 1 << 56, Groups: 300, AnnouncedBytes: 16383, Fetches: 16384, Datagrams: ^uint64(0)},
	} {
		if got := moqstats.KeptRoundTrip(v); got != v {
			t.Errorf("kept %+v, got back %+v", v, got)
		}
	}
}
