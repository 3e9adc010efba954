package moqstats_test

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/memorigin"
)

// stressRounds is how many randomized rounds TestStress runs:
// MOQSTATS_STRESS_ROUNDS, or a few by default.
func stressRounds(t *testing.T) int {
	if v := os.Getenv("MOQSTATS_STRESS_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("MOQSTATS_STRESS_ROUNDS=%q: %v", v, err)
		}
		return n
	}
	return 6
}

// ledger counts, per key, what workers bumped in guard cycles that ended
// before Close began (must reach the wire) and in cycles that overlapped
// it (may).
type ledger struct {
	mu        sync.Mutex
	must, may map[string]uint64
}

func (l *ledger) add(key string, n uint64, beforeClose bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if beforeClose {
		l.must[key] += n
	} else {
		l.may[key] += n
	}
}

// TestStressChurnAgainstFlushCloseAndFailedWrites races guard churn on a
// few keys (track guards, broadcast guards, subscriptions, sessions)
// against background passes, Flush from another goroutine, failing writes
// on random tracks, and Close at a random moment, with and without
// retention. A ledger kept by the workers bounds what must be on the
// wire: everything bumped in a guard cycle that ended before Close began,
// and nothing beyond what was bumped at all. Every frame must parse with
// closed <= open, and with retention no counter may go back. With
// compressed siblings, each one's frames must add up, after Close, to the
// last plain frame of its track.
func TestStressChurnAgainstFlushCloseAndFailedWrites(t *testing.T) {
	for round := range stressRounds(t) {
		for _, retention := range []time.Duration{0, moqstats.NoRetention} {
			for _, compressed := range []bool{false, true} {
				t.Run(fmt.Sprintf("round=%d/retention=%v/compressed=%v", round, retention, compressed), func(t *testing.T) {
					stressRound(t, uint64(round), retention, compressed)
				})
			}
		}
	}
}

func stressRound(t *testing.T, seed uint64, retention time.Duration, compressed bool) {
	o := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Millisecond, Retention: retention, Compressed: compressed, DeltaRatio: 2})
	if err != nil {
		t.Fatal(err)
	}
	pub := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
	sess := frames[SessionSnapshot](t, o, s, moqstats.TrackSessions)
	b, _ := o.Lookup(s.Path())
	var failing atomic.Int32 // 1 + index of the failing track, 0 for none
	tracks := s.Tracks()
	var zs []*zReader
	if compressed {
		for _, name := range moqstats.Tracks() {
			sub, err := o.Subscribe(s.Path(), name+moqstats.CompressedSuffix)
			if err != nil {
				t.Fatal(err)
			}
			// Failed writes make resync snapshots that repeat the value.
			zs = append(zs, &zReader{t: t, name: name + moqstats.CompressedSuffix, sub: sub, anyFailed: true})
		}
	}
	b.SetWriteHook(func(track string, _ []byte) error {
		if i := failing.Load(); i > 0 && tracks[i-1] == track {
			return errors.New("injected")
		}
		return nil
	})
	// NoRetention: each forgotten incarnation's final bytes, and how many
	// publisher frames were written when the key's last one was forgotten
	// (its final frame is among them; a later incarnation's are not).
	var dropMu sync.Mutex
	dropped, droppedAt := map[string]uint64{}, map[string]int{}
	defer moqstats.SetHookDropped(func(key string, final *[4]counters.Snapshot) {
		dropMu.Lock()
		dropped[key] += final[0].Bytes
		droppedAt[key] = b.Writes(moqstats.TrackPublisher)
		dropMu.Unlock()
	})()

	keys := []string{"k0", "k1/x", "k2"}
	bytes := &ledger{must: map[string]uint64{}, may: map[string]uint64{}}
	sessions := &ledger{must: map[string]uint64{}, may: map[string]uint64{}}
	var closing atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	h := s.Tier(moqstats.External)
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			viewer := h.PublisherBroadcasts()
			for {
				select {
				case <-stop:
					return
				default:
				}
				key := keys[r.IntN(len(keys))]
				switch r.IntN(4) {
				case 0, 1: // a track, sometimes under a broadcast guard
					var g *moqstats.BroadcastGuard
					var tr *moqstats.TrackGuard
					if r.IntN(2) == 0 {
						g = h.Broadcast(key).Publisher()
						tr = g.Track("v")
					} else {
						tr = h.Broadcast(key).PublisherTrack("v")
					}
					n := uint64(r.IntN(1000) + 1)
					tr.Bytes(n)
					tr.Frame()
					if r.IntN(10) == 0 {
						time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
					}
					tr.Close()
					g.Close()
					if tr != nil {
						bytes.add(key, n, !closing.Load())
					}
				case 2:
					sub := viewer.Subscribe(key)
					sub.Close()
				case 3:
					g := h.Session(key)
					g.Close()
					if g != nil {
						sessions.add(key, 1, !closing.Load())
					}
				}
			}
		})
	}
	var chaos sync.WaitGroup
	stopChaos := make(chan struct{})
	chaos.Go(func() {
		r := rand.New(rand.NewPCG(seed, 99))
		for {
			select {
			case <-stopChaos:
				failing.Store(0)
				return
			default:
			}
			if r.IntN(3) == 0 {
				failing.Store(int32(1 + r.IntN(len(tracks))))
			} else {
				failing.Store(0)
			}
			s.Flush() // errors are the injected ones
			time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
		}
	})
	time.Sleep(time.Duration(5+seed%20) * time.Millisecond)
	close(stopChaos)
	chaos.Wait() // writes succeed from here on, so Close's final pass does
	closing.Store(true)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	close(stop)
	wg.Wait()

	for i, z := range zs {
		z.drain()
		plain, _ := b.Latest(moqstats.Tracks()[i])
		if want := jsonValue(t, plain); !reflect.DeepEqual(z.value, want) {
			t.Errorf("%s adds up to %v, its plain track's last frame is %s", z.name, z.value, plain)
		}
	}
	allPub, allSess := pub(), sess()
	for i, f := range allPub {
		for k, v := range f {
			if v.ClosedAboveOpen() {
				t.Fatalf("publisher frame %d: %s = %+v shows closed > open", i, k, v)
			}
		}
	}
	if retention >= 0 {
		fieldsNeverDecrease(t, allPub)
		fieldsNeverDecrease(t, allSess)
	}
	lastPub, lastAt := map[string]uint64{}, map[string]int{}
	for i, f := range allPub { // frame i is the publisher track's write i+1
		for k, v := range f {
			lastPub[k], lastAt[k] = v.Bytes, i+1
		}
	}
	lastSess := map[string]uint64{}
	for _, f := range allSess {
		for k, v := range f {
			lastSess[k] = v.Sessions
		}
	}
	for _, key := range keys {
		got := lastPub[key]
		if retention < 0 {
			got = dropped[key]
			if lastAt[key] > droppedAt[key] {
				got += lastPub[key] // an incarnation never forgotten
			}
		}
		if must, may := bytes.must[key], bytes.may[key]; got < must || got > must+may {
			t.Errorf("%s: %d bytes on the wire, want at least %d (ended before Close) and at most %d", key, got, must, must+may)
		}
		if retention >= 0 {
			if must, may := sessions.must[key], sessions.may[key]; lastSess[key] < must || lastSess[key] > must+may {
				t.Errorf("%s: %d sessions on the wire, want between %d and %d", key, lastSess[key], must, must+may)
			}
		}
	}
}

// TestStressCapAndRetentionUnderEviction churns more keys than a small cap
// (2 to 16) holds, so that entries are collected, retained, evicted,
// claimed again and folded all the time, against background passes, Flush
// from another goroutine, failing writes on random tracks and Close, with
// retention on and off. It checks, on every frame of the publisher and
// session tracks: at most MaxEntries keys plus the overflow key, closed <=
// open, and, with retention, no counter going back unless the key's
// retained counts were evicted between the two frames (so nothing held
// them). And after Close, per key (the overflow key included), the ledger:
// the sum of the last values of the key's segments lies between what was
// bumped in guard cycles that ended before Close and everything bumped.
func TestStressCapAndRetentionUnderEviction(t *testing.T) {
	for round := range stressRounds(t) {
		for _, retention := range []time.Duration{0, moqstats.NoRetention} {
			t.Run(fmt.Sprintf("round=%d/retention=%v", round, retention), func(t *testing.T) {
				evictionRound(t, uint64(round), retention)
			})
		}
	}
}

func evictionRound(t *testing.T, seed uint64, retention time.Duration) {
	r := rand.New(rand.NewPCG(seed, 15))
	maxEntries := 2 + r.IntN(15)
	nkeys := maxEntries + 1 + r.IntN(2*maxEntries)
	compressed := r.IntN(2) == 0
	o := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: 200 * time.Microsecond, Retention: retention,
		MaxEntries: maxEntries, Compressed: compressed, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MaxEntries %d, %d keys, compressed %v", maxEntries, nkeys, compressed)
	pub := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
	sess := frames[SessionSnapshot](t, o, s, moqstats.TrackSessions)
	b, _ := o.Lookup(s.Path())

	// Evictions of retained keys, at the publisher (or session) track's
	// write count then: frames up to that index were written before.
	var evMu sync.Mutex
	evicted := map[bool]map[string][]int{false: {}, true: {}}
	for _, sessions := range []bool{false, true} {
		track := moqstats.TrackPublisher
		if sessions {
			track = moqstats.TrackSessions
		}
		moqstats.SetHookEvicted(s, sessions, func(key string) {
			// Nothing may hold a key whose retained counts are evicted:
			// an entry live for it would restart from zero.
			live := moqstats.HasEntry(s, key)
			if sessions {
				_, live = moqstats.SessionRaw(s, moqstats.External, key)
			}
			if live {
				t.Errorf("retained counts of %s (sessions %v) evicted while a live entry holds the key", key, sessions)
			}
			w := b.Writes(track)
			evMu.Lock()
			evicted[sessions][key] = append(evicted[sessions][key], w)
			evMu.Unlock()
		})
	}
	// NoRetention: each forgotten incarnation's final counts, and the
	// publisher's write count then.
	var dropMu sync.Mutex
	dropped, droppedAt := map[string]uint64{}, map[string]int{}
	defer moqstats.SetHookDropped(func(key string, final *[4]counters.Snapshot) {
		dropMu.Lock()
		dropped[key] += final[0].Bytes
		droppedAt[key] = b.Writes(moqstats.TrackPublisher)
		dropMu.Unlock()
	})()

	var failing atomic.Int32 // 1 + index of the failing track, 0 for none
	tracks := s.Tracks()
	b.SetWriteHook(func(track string, _ []byte) error {
		if i := failing.Load(); i > 0 && tracks[i-1] == track {
			return errors.New("injected")
		}
		return nil
	})
	var zs []*zReader
	if compressed {
		for _, name := range moqstats.Tracks() {
			sub, err := o.Subscribe(s.Path(), name+moqstats.CompressedSuffix)
			if err != nil {
				t.Fatal(err)
			}
			zs = append(zs, &zReader{t: t, name: name + moqstats.CompressedSuffix, sub: sub, anyFailed: true})
		}
	}

	bytes := &ledger{must: map[string]uint64{}, may: map[string]uint64{}}
	sessions := &ledger{must: map[string]uint64{}, may: map[string]uint64{}}
	var closing atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	h := s.Tier(moqstats.External)
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprint("k", r.IntN(nkeys))
				switch r.IntN(3) {
				case 0, 1:
					var g *moqstats.BroadcastGuard
					var tr *moqstats.TrackGuard
					if r.IntN(2) == 0 {
						g = h.Broadcast(key).Publisher()
						tr = g.Track("v")
					} else {
						tr = h.Broadcast(key).PublisherTrack("v")
					}
					if tr == nil {
						g.Close()
						continue // Close began
					}
					n := uint64(r.IntN(1000) + 1)
					tr.Bytes(n)
					if r.IntN(10) == 0 {
						time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
					}
					tr.Close()
					g.Close()
					bytes.add(moqstats.TrackKey(tr), n, !closing.Load())
				case 2:
					g := h.Session(key)
					if g == nil {
						continue
					}
					g.Close()
					sessions.add(moqstats.SessionKey(g), 1, !closing.Load())
				}
			}
		})
	}
	var chaos sync.WaitGroup
	stopChaos := make(chan struct{})
	chaos.Go(func() {
		r := rand.New(rand.NewPCG(seed, 99))
		for {
			select {
			case <-stopChaos:
				failing.Store(0)
				return
			default:
			}
			if r.IntN(3) == 0 {
				failing.Store(int32(1 + r.IntN(len(tracks))))
			} else {
				failing.Store(0)
			}
			s.Flush() // errors are the injected ones
			time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
		}
	})
	time.Sleep(time.Duration(10+seed%30) * time.Millisecond)
	close(stopChaos)
	chaos.Wait() // writes succeed from here on, so Close's final pass does
	closing.Store(true)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	close(stop)
	wg.Wait()

	for i, z := range zs {
		z.drain()
		plain, _ := b.Latest(moqstats.Tracks()[i])
		if want := jsonValue(t, plain); !reflect.DeepEqual(z.value, want) {
			t.Errorf("%s adds up to %v, its plain track's last frame is %s", z.name, z.value, plain)
		}
	}
	allPub, allSess := pub(), sess()
	for i, f := range allPub {
		if len(f) > maxEntries+1 {
			t.Fatalf("publisher frame %d holds %d keys, want at most MaxEntries+1 = %d", i, len(f), maxEntries+1)
		}
		for k, v := range f {
			if v.ClosedAboveOpen() {
				t.Fatalf("publisher frame %d: %s = %+v shows closed > open", i, k, v)
			}
		}
	}
	for i, f := range allSess {
		if len(f) > maxEntries+1 {
			t.Fatalf("sessions frame %d holds %d roots, want at most MaxEntries+1 = %d", i, len(f), maxEntries+1)
		}
	}
	if retention < 0 {
		// Each forgotten incarnation starts a new segment: its final
		// counts are in dropped; the last one never forgotten is in the
		// last frame that shows the key after the last drop.
		lastPub, lastAt := map[string]uint64{}, map[string]int{}
		for i, f := range allPub {
			for k, v := range f {
				lastPub[k], lastAt[k] = v.Bytes, i+1
			}
		}
		for key, must := range bytes.must {
			got := dropped[key]
			if lastAt[key] > droppedAt[key] {
				got += lastPub[key]
			}
			if may := bytes.may[key]; got < must || got > must+may {
				t.Errorf("%s: %d bytes on the wire, want between %d and %d", key, got, must, must+may)
			}
		}
		return
	}
	checkSegments(t, "publisher", allPub, evicted[false], func(v Snapshot) uint64 { return v.Bytes }, bytes)
	checkSegments(t, "sessions", allSess, evicted[true], func(v SessionSnapshot) uint64 { return v.Sessions }, sessions)
}

// checkSegments checks, with retention, that a key's counter goes back
// between two frames only across an eviction of its retained counts, and
// that the sum of its segments' last values matches the ledger.
func checkSegments[V any](t *testing.T, track string, frames []map[string]V, evicted map[string][]int, count func(V) uint64, l *ledger) {
	t.Helper()
	type seg struct {
		last, total uint64
		at          int // frame index (write count) of last
		evictions   []int
	}
	segs := map[string]*seg{}
	for i, f := range frames {
		idx := i + 1 // frame i is the track's write i+1
		for k, v := range f {
			sg := segs[k]
			if sg == nil {
				sg = &seg{evictions: evicted[k]}
				segs[k] = sg
			}
			// An eviction after the last frame showing the key ends its
			// segment: what shows next starts from zero.
			ended := false
			for len(sg.evictions) > 0 && sg.evictions[0] < idx {
				if sg.evictions[0] >= sg.at {
					ended = true
				}
				sg.evictions = sg.evictions[1:]
			}
			if ended {
				sg.total += sg.last
				sg.last = 0
			}
			c := count(v)
			if c < sg.last {
				t.Fatalf("%s frame %d: %s went from %d (frame %d) to %d with no eviction of its retained counts between", track, i, k, sg.last, sg.at-1, c)
			}
			sg.last, sg.at = c, idx
		}
	}
	keys := map[string]bool{}
	for k := range l.must {
		keys[k] = true
	}
	for k := range l.may {
		keys[k] = true
	}
	for k := range segs {
		keys[k] = true
	}
	for k := range keys {
		var got uint64
		if sg := segs[k]; sg != nil {
			got = sg.total + sg.last
		}
		if must, may := l.must[k], l.may[k]; got < must || got > must+may {
			t.Errorf("%s %s: %d on the wire over its segments, want between %d (ended before Close) and %d", track, k, got, must, must+may)
		}
	}
}
