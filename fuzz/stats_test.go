package fuzz

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/internal/wiretest"
	"github.com/moqstats/moqstats/memorigin"
	"github.com/moqstats/moqstats/zframe"
)

type snap = wiretest.Snapshot

var fuzzKeys = []string{"a", "b/c", "d"}

var errInjected = errors.New("injected write failure")

type openTrack struct {
	g    *moqstats.TrackGuard
	key  string // the key counted under: the path, or the overflow key
	slot int
}

type openSub struct {
	g      *moqstats.SubscriptionGuard
	viewer int
	path   string
}

type openSession struct {
	g    *moqstats.SessionGuard
	root string
}

// modelRun is how runModel drives a Stats.
type modelRun struct {
	// pinned holds every key and root open for the whole run, so nothing
	// is collected; without it entries are collected and re-created all
	// the time, and retention makes their counts continue.
	pinned bool
	// drops lets op 11 drop a guard without Close; the garbage collector
	// closes it, and the counts are exact again once it has.
	drops bool
	// keys are the paths used; roots are r0, r1 and r2.
	keys []string
	// maxEntries and maxPathLen are the Config's.
	maxEntries, maxPathLen int
	// compressed publishes compressed siblings, followed frame by frame:
	// after each fully written pass each adds up to its plain frame.
	compressed bool
}

// runModel drives a Stats with the sequence ops (pairs of op, argument) of
// guard opens and closes, bumps, passes and failed writes, against a model
// of the counts. Every frame written must be valid, sorted, and closed <=
// open, hold at most MaxEntries keys and the overflow key, none longer
// than MaxPathLen; after each fully written pass every key the model says
// is live, or changed, must carry exactly the model's counts (keys whose
// dropped guards may not be reclaimed yet aside). At the end every dropped
// guard is reclaimed, the final counts go out exactly, everything closes
// and the frames empty out.
func runModel(t *testing.T, run modelRun, ops []byte) {
	if len(ops) > 400 {
		ops = ops[:400]
	}
	origin := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: origin, Interval: time.Hour, MaxEntries: run.maxEntries, MaxPathLen: run.maxPathLen, Compressed: run.compressed, DeltaRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	var zs []*zFollower
	if run.compressed {
		for _, name := range moqstats.Tracks() {
			sub, err := origin.Subscribe(s.Path(), name+moqstats.CompressedSuffix)
			if err != nil {
				t.Fatal(err)
			}
			zs = append(zs, &zFollower{sub: sub})
		}
	}
	maxEntries, maxPathLen := run.maxEntries, run.maxPathLen
	if maxEntries == 0 {
		maxEntries = moqstats.DefaultMaxEntries
	}
	if maxPathLen == 0 {
		maxPathLen = moqstats.DefaultMaxPathLen
	}
	b, _ := origin.Lookup(s.Path())
	var failing string
	b.SetWriteHook(func(track string, _ []byte) error {
		if track == failing {
			return errInjected
		}
		return nil
	})
	tracks := moqstats.Tracks()
	handles := []moqstats.Handle{s.Tier(moqstats.External), s.Tier(moqstats.Internal)}
	viewers := []*moqstats.SessionBroadcasts{handles[0].PublisherBroadcasts(), handles[0].PublisherBroadcasts()}

	// counted maps a path to the key it is counted under. With pinned
	// keys, which keys get entries is fixed by the order they are pinned
	// in: the first maxEntries short ones; the rest fold.
	counted := map[string]string{}
	own := 0
	for _, k := range run.keys {
		if len(k) <= maxPathLen && own < maxEntries {
			counted[k] = k
			own++
		} else {
			counted[k] = moqstats.OverflowKey
		}
	}
	if !run.pinned && own < len(run.keys) {
		t.Fatal("BUG: folding is only deterministic with pinned keys")
	}
	model := map[string]*[4]snap{}
	at := func(path string, slot int) *snap {
		k := counted[path]
		if model[k] == nil {
			model[k] = new([4]snap)
		}
		return &model[k][slot]
	}
	viewerSubs := [2]map[string]int{{}, {}}
	// Roots r0 and r1 are pinned first (when pinned), r2 comes later: it
	// folds when the cap leaves it no room.
	roots := []string{"r0", "r1", "r2"}
	rootCounted := map[string]string{}
	for i, r := range roots {
		rootCounted[r] = r
		if i >= maxEntries {
			rootCounted[r] = moqstats.OverflowKey
		}
	}
	sessions := map[string]*[2]uint64{}
	session := func(root string) *[2]uint64 {
		k := rootCounted[root]
		if sessions[k] == nil {
			sessions[k] = new([2]uint64)
		}
		return sessions[k]
	}
	var pins []*moqstats.BroadcastGuard
	var rootPins []*moqstats.SessionGuard
	if run.pinned {
		for _, k := range run.keys {
			at(k, 0).Announced++
			pins = append(pins, handles[0].Broadcast(k).Publisher())
		}
		for _, root := range roots[:2] {
			session(root)[0]++
			rootPins = append(rootPins, handles[0].Session(root))
		}
	}
	var trs []openTrack
	var subs []openSub
	var sess []openSession
	// Dropped guards: what the model counts once they are reclaimed, and
	// the keys they leave inexact until then.
	var reclaim []func()
	tainted := map[string]bool{}

	check := func(exact bool) {
		t.Helper()
		for i, z := range zs {
			if err := z.drain(); err != nil {
				t.Fatalf("%s.z: %v", tracks[i], err)
			}
			if !exact {
				continue
			}
			raw, _ := b.Latest(tracks[i])
			var plain any
			if err := json.Unmarshal(raw, &plain); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(z.value, plain) {
				t.Fatalf("%s.z adds up to %v, %s is %s", tracks[i], z.value, tracks[i], raw)
			}
		}
		for i, name := range tracks {
			raw, ok := b.Latest(name)
			if !ok {
				t.Fatalf("no frame on %s", name)
			}
			if i >= 4 {
				var m map[string]wiretest.SessionSnapshot
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatalf("%s: %v: %s", name, err, raw)
				}
				for root, v := range m {
					if v.SessionsClosed > v.Sessions {
						t.Fatalf("%s %s: closed > open: %+v", name, root, v)
					}
					if exact && i == 4 && !tainted["root:"+root] {
						if w := sessions[root]; w == nil || w[0] != v.Sessions || w[1] != v.SessionsClosed {
							t.Fatalf("%s %s = %+v, model %v", name, root, v, w)
						}
					}
				}
				continue
			}
			var m map[string]snap
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("%s: %v: %s", name, err, raw)
			}
			var order []string
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.Token()
			for dec.More() {
				k, _ := dec.Token()
				order = append(order, k.(string))
				var skip json.RawMessage
				dec.Decode(&skip)
			}
			if !slices.IsSorted(order) {
				t.Fatalf("%s keys not in byte order: %q", name, order)
			}
			if len(m) > maxEntries+1 {
				t.Fatalf("%s holds %d keys, more than MaxEntries %d and the overflow key", name, len(m), maxEntries)
			}
			for k, v := range m {
				if len(k) > maxPathLen && k != moqstats.OverflowKey {
					t.Fatalf("%s has a key of %d bytes, over MaxPathLen %d", name, len(k), maxPathLen)
				}
				if v.ClosedAboveOpen() {
					t.Fatalf("%s %s shows closed > open: %+v", name, k, v)
				}
				if exact && !tainted[k] && (model[k] == nil || v != model[k][i]) {
					t.Fatalf("%s %s = %+v, model %+v", name, k, v, model[k])
				}
			}
			if exact {
				for k, w := range model {
					if _, ok := m[k]; w[i].Live() && !ok && !tainted[k] {
						t.Fatalf("%s lacks live key %s (model %+v)", name, k, w[i])
					}
				}
			}
		}
	}

	for len(ops) >= 2 {
		op, arg := ops[0]%12, int(ops[1])
		ops = ops[2:]
		switch op {
		case 0:
			k := run.keys[arg%len(run.keys)]
			slot := (arg >> 2) % 4
			bs := handles[slot/2].Broadcast(k)
			var g *moqstats.TrackGuard
			if slot%2 == 0 {
				g = bs.PublisherTrack("v")
			} else {
				g = bs.SubscriberTrack("v")
			}
			at(k, slot).Subscriptions++
			trs = append(trs, openTrack{g, k, slot})
		case 1, 2, 3, 4:
			if len(trs) == 0 {
				continue
			}
			i := arg % len(trs)
			tr := trs[i]
			m := at(tr.key, tr.slot)
			switch op {
			case 1:
				tr.g.Close()
				m.SubscriptionsClosed++
				trs = slices.Delete(trs, i, i+1)
			case 2:
				tr.g.Bytes(uint64(arg))
				m.Bytes += uint64(arg)
			case 3:
				tr.g.Frame()
				m.Frames++
			case 4:
				tr.g.Group()
				m.Groups++
			}
		case 5, 6:
			failing = ""
			if op == 6 {
				failing = tracks[arg%len(tracks)]
			}
			// A failing track errs only if its frame changed.
			if err := s.Flush(); err != nil && (op == 5 || !errors.Is(err, errInjected)) {
				t.Fatalf("Flush = %v with failing track %q", err, failing)
			}
			check(op == 5)
		case 7:
			v := arg % 2
			k := run.keys[(arg/2)%len(run.keys)]
			subs = append(subs, openSub{viewers[v].Subscribe(k), v, k})
			if viewerSubs[v][k]++; viewerSubs[v][k] == 1 {
				at(k, 0).Broadcasts++
			}
		case 8:
			if len(subs) == 0 {
				continue
			}
			i := arg % len(subs)
			sb := subs[i]
			sb.g.Close()
			if viewerSubs[sb.viewer][sb.path]--; viewerSubs[sb.viewer][sb.path] == 0 {
				at(sb.path, 0).BroadcastsClosed++
			}
			subs = slices.Delete(subs, i, i+1)
		case 9:
			root := roots[arg%len(roots)]
			sess = append(sess, openSession{handles[0].Session(root), root})
			session(root)[0]++
		case 10:
			if len(sess) == 0 {
				continue
			}
			i := arg % len(sess)
			sess[i].g.Close()
			session(sess[i].root)[1]++
			sess = slices.Delete(sess, i, i+1)
		case 11:
			if !run.drops {
				continue
			}
			switch arg % 3 {
			case 0:
				if len(trs) == 0 {
					continue
				}
				i := (arg / 3) % len(trs)
				key, slot := trs[i].key, trs[i].slot // not the guard: it must become unreachable
				tainted[counted[key]] = true
				reclaim = append(reclaim, func() { at(key, slot).SubscriptionsClosed++ })
				trs = slices.Delete(trs, i, i+1)
			case 1:
				// A subscription is dropped on a viewer of its own: on a
				// shared one, later subscriptions would wait for it.
				k := run.keys[(arg/3)%len(run.keys)]
				handles[0].PublisherBroadcasts().Subscribe(k)
				at(k, 0).Broadcasts++
				tainted[counted[k]] = true
				reclaim = append(reclaim, func() { at(k, 0).BroadcastsClosed++ })
			case 2:
				if len(sess) == 0 {
					continue
				}
				i := (arg / 3) % len(sess)
				root := sess[i].root
				tainted["root:"+rootCounted[root]] = true
				reclaim = append(reclaim, func() { session(root)[1]++ })
				sess = slices.Delete(sess, i, i+1)
			}
		}
	}
	// Every dropped guard is reclaimed; then the counts are exact again.
	deadline := time.Now().Add(time.Minute) // a hang guard
	for s.Leaked() != uint64(len(reclaim)) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d dropped guards reclaimed", s.Leaked(), len(reclaim))
		}
		runtime.GC()
	}
	for _, f := range reclaim {
		f()
	}
	clear(tainted)
	failing = ""
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	check(true)

	// Close everything: the final counts go out once, then the frames
	// empty out.
	for _, tr := range trs {
		tr.g.Close()
	}
	for _, sb := range subs {
		sb.g.Close()
	}
	for _, g := range sess {
		g.g.Close()
	}
	for _, g := range pins {
		g.Close()
	}
	for _, g := range rootPins {
		g.Close()
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, name := range tracks {
		if raw, _ := b.Latest(name); string(raw) != "{}" {
			t.Fatalf("%s = %s after everything closed, want {}", name, raw)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// zFollower follows a compressed track frame by frame, as a consumer does.
type zFollower struct {
	sub   *memorigin.Subscription
	dec   zframe.Decoder
	value any
}

func (z *zFollower) drain() error {
	for {
		f, ok := z.sub.TryNextFrame()
		if !ok {
			return nil
		}
		var raw []byte
		var err error
		if f.Index == 0 {
			raw, err = z.dec.Snapshot(f.Data)
		} else {
			raw, err = z.dec.Delta(f.Data)
		}
		if err != nil {
			return err
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		if f.Index > 0 {
			v = wiretest.MergePatch(z.value, v)
		}
		z.value = v
	}
}

var statsSeeds = [][]byte{
	{0, 0, 2, 200, 3, 0, 5, 0, 1, 0, 5, 0},
	{0, 5, 0, 6, 7, 0, 7, 1, 6, 1, 2, 9, 5, 0, 8, 0, 9, 0, 5, 0, 10, 0, 5, 0},
	{0, 12, 4, 0, 4, 1, 6, 3, 6, 0, 5, 0, 1, 0, 5, 0},
}

// FuzzStats runs the model with every key and root pinned for the whole
// run: nothing is collected, and every count is exact.
func FuzzStats(f *testing.F) {
	for _, s := range statsSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		runModel(t, modelRun{pinned: true, keys: fuzzKeys}, ops)
	})
}

// FuzzRetention runs the model with nothing pinned: entries are collected
// as soon as their last guard closes and re-created by the next open, with
// failed writes in between, and retention makes every key's counts
// continue, so the model's cumulative counts stay exact.
func FuzzRetention(f *testing.F) {
	for _, s := range statsSeeds {
		f.Add(s)
	}
	f.Add([]byte{0, 0, 2, 7, 1, 0, 6, 0, 0, 0, 2, 5, 1, 0, 5, 0, 9, 0, 10, 0, 6, 4, 9, 0, 10, 0, 5, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		runModel(t, modelRun{keys: fuzzKeys}, ops)
	})
}

// FuzzCaps runs the model under MaxEntries 2 and MaxPathLen 8 with five
// pinned keys, two of them too long: the first two short keys have entries
// and the rest fold into the overflow key, whose counts are exactly the
// sum of theirs.
func FuzzCaps(f *testing.F) {
	for _, s := range statsSeeds {
		f.Add(s)
	}
	f.Add([]byte{0, 2, 0, 3, 0, 4, 2, 9, 2, 8, 7, 4, 7, 6, 5, 0, 1, 0, 5, 0})
	keys := []string{"a", "b/c", strings.Repeat("x", 9), "d", "e/\xff" + strings.Repeat("y", 20)}
	f.Fuzz(func(t *testing.T, ops []byte) {
		runModel(t, modelRun{pinned: true, keys: keys, maxEntries: 2, maxPathLen: 8}, ops)
	})
}

// FuzzCompressed runs the model with nothing pinned and compressed
// siblings on a tight delta budget (groups roll often), with failed writes
// on plain and compressed tracks alike: each compressed track, followed
// frame by frame, adds up to its plain track after every fully written
// pass.
func FuzzCompressed(f *testing.F) {
	for _, s := range statsSeeds {
		f.Add(s)
	}
	f.Add([]byte{0, 0, 2, 7, 5, 0, 2, 9, 6, 1, 5, 0, 1, 0, 5, 0, 5, 0, 9, 0, 6, 9, 5, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		runModel(t, modelRun{keys: fuzzKeys, compressed: true}, ops)
	})
}

// FuzzLeaks runs the model with nothing pinned and guards dropped without
// Close: each is closed by the garbage collector, exactly once, and the
// counts come out exact once every one of them was reclaimed.
func FuzzLeaks(f *testing.F) {
	for _, s := range statsSeeds {
		f.Add(s)
	}
	f.Add([]byte{0, 0, 2, 7, 11, 0, 9, 0, 11, 2, 11, 1, 5, 0, 0, 1, 11, 3, 6, 1, 5, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		runModel(t, modelRun{drops: true, keys: fuzzKeys}, ops)
	})
}
