package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/internal/wiretest"
	"github.com/moqstats/moqstats/memorigin"
	"github.com/moqstats/moqstats/zframe"
)

// maxProcs is the most Ps the soak runs with.
const maxProcs = 6

var soakFor = flag.Duration("soak", 0, "how long TestSoak runs its workers; 0 skips it")

// target is a path or root the workers use, and the key its counts must
// show up under ("" with counted false: not counted at all).
type target struct {
	path, key string
	counted   bool
}

// hostile are paths and roots a client may send, with the key each must
// be counted under, worked out by hand from the README's rules.
var hostile = []target{
	{"normal/path", "normal/path", true},
	{"/lead//double/", "lead/double", true},
	{"bad\xffutf\xe2\x82", "bad\uFFFDutf\uFFFD", true},
	{"ctl\x01\n\t\x1f", "ctl\x01\n\t\x1f", true},
	{"q\"uote\\back\\", "q\"uote\\back\\", true},
	{"", "", true},
	{"///", "", true},
	{"sep\u2028\u2029<>&", "sep\u2028\u2029<>&", true},
	{"/overflow", "overflow", true},
	{".statsfoo/x", ".statsfoo/x", true},
	{strings.Repeat("L", 5000), moqstats.OverflowKey, true},
	{strings.Repeat("é", 600), moqstats.OverflowKey, true}, // 1200 bytes
	{".stats", "", false},
	{".stats/node/x", "", false},
	{"//.stats//y", "", false},
}

// targets returns the hostile targets and n ordinary ones.
func targets(n int) []target {
	ts := append([]target(nil), hostile...)
	for i := range n {
		p := fmt.Sprintf("customer-%d/live/%d", i%37, i)
		ts = append(ts, target{p, p, true})
	}
	return ts
}

// Counter indexes, in wire order.
const (
	announced = iota
	announcedClosed
	broadcasts
	broadcastsClosed
	subscriptions
	subscriptionsClosed
	bytesN
	frames
	groups
)

// ledger is what one worker bumped: per broadcast track (tier*2+role) and
// key, the nine counters; per session track (tier) and root, the two.
type ledger struct {
	traffic  [4]map[string]*[9]uint64
	sessions [2]map[string]*[2]uint64
}

func newLedger() *ledger {
	l := &ledger{}
	for i := range l.traffic {
		l.traffic[i] = map[string]*[9]uint64{}
	}
	for i := range l.sessions {
		l.sessions[i] = map[string]*[2]uint64{}
	}
	return l
}

func (l *ledger) bump(track int, key string, counter int, n uint64) {
	v := l.traffic[track][key]
	if v == nil {
		v = new([9]uint64)
		l.traffic[track][key] = v
	}
	v[counter] += n
}

func (l *ledger) session(tier int, key string, counter int) {
	v := l.sessions[tier][key]
	if v == nil {
		v = new([2]uint64)
		l.sessions[tier][key] = v
	}
	v[counter]++
}

func (l *ledger) merge(o *ledger) {
	for i := range l.traffic {
		for k, v := range o.traffic[i] {
			for c, n := range v {
				l.bump(i, k, c, n)
			}
		}
	}
	for i := range l.sessions {
		for k, v := range o.sessions[i] {
			for range v[0] {
				l.session(i, k, 0)
			}
			for range v[1] {
				l.session(i, k, 1)
			}
		}
	}
}

// worker runs guard cycles until stop, recording in its ledger what each
// cycle bumped, and dropping a guard without Close now and then (counted
// in dropped).
type worker struct {
	s       *moqstats.Stats
	ts      []target
	r       *rand.Rand
	l       *ledger
	hot     [4]*moqstats.BroadcastGuard
	ops     uint64
	dropped *atomic.Uint64
}

func (w *worker) run(stop <-chan struct{}) {
	viewers := map[[2]int]*moqstats.SessionBroadcasts{}
	for {
		select {
		case <-stop:
			return
		default:
		}
		w.ops++
		if w.ops%32 == 0 {
			runtime.Gosched() // busy workers must not starve the passes' ticker
		}
		tier, role := w.r.IntN(2), w.r.IntN(2)
		track := tier*2 + role
		h := w.s.Tier(moqstats.Tier(tier))
		tg := w.ts[w.r.IntN(len(w.ts))]
		leak := w.r.IntN(200) == 0
		switch op := w.r.IntN(10); {
		case op < 4: // a track guard, with or without a broadcast guard
			w.trackCycle(h, tg, track, role, leak)
		case op < 6: // the hot broadcast, pinned by a long-lived guard
			t := w.hot[track].Track("v")
			n := uint64(w.r.IntN(1400) + 100)
			t.Bytes(n)
			t.Frame()
			t.Close()
			w.l.bump(track, "hot", subscriptions, 1)
			w.l.bump(track, "hot", subscriptionsClosed, 1)
			w.l.bump(track, "hot", bytesN, n)
			w.l.bump(track, "hot", frames, 1)
		case op < 8: // subscriptions of one session
			vk := [2]int{tier, role}
			v := viewers[vk]
			if v == nil || leak {
				v = sessionBroadcasts(h, role)
				if !leak {
					viewers[vk] = v
				}
			}
			a := v.Subscribe(tg.path)
			b := v.Subscribe(tg.path) // the same session: one viewer
			if a == nil != !tg.counted {
				panic(fmt.Sprintf("Subscribe(%q) = %v, counted %v", tg.path, a, tg.counted))
			}
			if tg.counted {
				w.l.bump(track, tg.key, broadcasts, 1)
				w.l.bump(track, tg.key, broadcastsClosed, 1)
			}
			b.Close()
			if leak && tg.counted {
				w.dropped.Add(1)
				continue // a dropped without Close
			}
			a.Close()
		default: // a session
			g := h.Session(tg.path)
			key := tg.key
			if !tg.counted { // roots are auth scopes: never filtered
				key = normalizedRoot(tg.path)
			}
			w.l.session(tier, key, 0)
			w.l.session(tier, key, 1)
			if leak {
				w.dropped.Add(1)
				continue
			}
			g.Close()
		}
	}
}

// normalizedRoot is the key of a root that is a path under the stats
// prefix: roots are not filtered by the prefix.
func normalizedRoot(path string) string {
	return map[string]string{".stats": ".stats", ".stats/node/x": ".stats/node/x", "//.stats//y": ".stats/y"}[path]
}

func sessionBroadcasts(h moqstats.Handle, role int) *moqstats.SessionBroadcasts {
	if role == 0 {
		return h.PublisherBroadcasts()
	}
	return h.SubscriberBroadcasts()
}

func (w *worker) trackCycle(h moqstats.Handle, tg target, track, role int, leak bool) {
	bs := h.Broadcast(tg.path)
	if bs.IsEmpty() == tg.counted {
		panic(fmt.Sprintf("Broadcast(%q).IsEmpty() = %v, counted %v", tg.path, bs.IsEmpty(), tg.counted))
	}
	var g *moqstats.BroadcastGuard
	var t *moqstats.TrackGuard
	fetch := w.r.IntN(6) == 0 // a fetch: no subscription, payload counted
	switch {
	case w.r.IntN(2) == 0:
		if role == 0 {
			g = bs.Publisher()
		} else {
			g = bs.Subscriber()
		}
		if fetch {
			t = g.Fetch("v")
		} else {
			t = g.Track("v")
		}
	case fetch && role == 0:
		t = bs.PublisherFetch("v")
	case fetch:
		t = bs.SubscriberFetch("v")
	case role == 0:
		t = bs.PublisherTrack("v")
	default:
		t = bs.SubscriberTrack("v")
	}
	var n, f, gr uint64
	for range w.r.IntN(8) + 1 {
		b := uint64(w.r.IntN(1500))
		switch w.r.IntN(8) {
		case 0, 1:
			t.Group()
			gr++
		case 2: // a group sent as one datagram
			t.Datagram(b)
			n += b
			f++
			gr++
			continue
		}
		t.Bytes(b)
		t.Frame()
		n += b
		f++
	}
	if !tg.counted {
		return // nil guards: nothing to close or count
	}
	k := tg.key
	if !fetch {
		w.l.bump(track, k, subscriptions, 1)
		w.l.bump(track, k, subscriptionsClosed, 1)
	}
	w.l.bump(track, k, bytesN, n)
	w.l.bump(track, k, frames, f)
	w.l.bump(track, k, groups, gr)
	if g != nil {
		w.l.bump(track, k, announced, 1)
		w.l.bump(track, k, announcedClosed, 1)
	}
	if leak {
		// Drop one of them without Close: the broadcast guard, or the
		// track guard.
		if g != nil && w.r.IntN(2) == 0 {
			t.Close()
		} else {
			g.Close()
		}
		w.dropped.Add(1)
		return
	}
	t.Close()
	g.Close()
}

// zchecker follows a compressed track as a consumer does: it inflates
// every frame, applies each delta to the value its group built so far, and
// keeps the value.
type zchecker struct {
	name   string
	dec    zframe.Decoder
	group  uint64
	index  int
	value  any
	frames int
	err    error
}

func (z *zchecker) run(sub *memorigin.Subscription) {
	for {
		f, err := sub.NextFrame(context.Background())
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			z.err = err
			return
		}
		z.frames++
		if err := z.apply(f); err != nil && z.err == nil {
			z.err = fmt.Errorf("%s frame %d.%d: %w", z.name, f.Group, f.Index, err)
		}
	}
}

func (z *zchecker) apply(f memorigin.Frame) error {
	var raw []byte
	var err error
	switch {
	case f.Index == 0:
		if f.Group <= z.group {
			return fmt.Errorf("group %d after %d", f.Group, z.group)
		}
		raw, err = z.dec.Snapshot(f.Data)
	case f.Group != z.group || f.Index != z.index+1:
		return fmt.Errorf("after %d.%d: frames of a group must be contiguous", z.group, z.index)
	default:
		raw, err = z.dec.Delta(f.Data)
	}
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("%w: %s", err, raw)
	}
	if f.Index > 0 {
		v = wiretest.MergePatch(z.value, v)
	}
	z.group, z.index, z.value = f.Group, f.Index, v
	return nil
}

// checker reads every frame of one track as it is written and checks it.
type checker struct {
	name     string
	sessions bool
	frames   int
	last     map[string][]uint64
	err      error
}

func (c *checker) run(sub *memorigin.Subscription) {
	c.last = map[string][]uint64{}
	for {
		f, err := sub.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			c.err = err
			return
		}
		c.frames++
		if err := c.check(f); err != nil && c.err == nil {
			c.err = fmt.Errorf("%s frame %d: %w\n%.2000s", c.name, c.frames, err, f)
		}
	}
}

// check checks one frame: valid UTF-8 JSON, keys in byte order, closed <=
// open, and no counter lower than in the key's last frame.
func (c *checker) check(f []byte) error {
	if !utf8.Valid(f) {
		return errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(f))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("not an object: %v %v", tok, err)
	}
	prev, first := "", true
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string)
		if !first && key <= prev {
			return fmt.Errorf("key %q after %q: not in byte order", key, prev)
		}
		prev, first = key, false
		var vals []uint64
		if c.sessions {
			var v wiretest.SessionSnapshot
			if err := decodeStrict(dec, &v); err != nil {
				return err
			}
			if v.SessionsClosed > v.Sessions {
				return fmt.Errorf("%q: closed > open: %+v", key, v)
			}
			vals = []uint64{v.Sessions, v.SessionsClosed}
		} else {
			var v wiretest.Snapshot
			if err := decodeStrict(dec, &v); err != nil {
				return err
			}
			if v.ClosedAboveOpen() {
				return fmt.Errorf("%q: closed > open: %+v", key, v)
			}
			vals = []uint64{v.Announced, v.AnnouncedClosed, v.Broadcasts, v.BroadcastsClosed, v.Subscriptions, v.SubscriptionsClosed, v.Bytes, v.Frames, v.Groups}
		}
		if old, ok := c.last[key]; ok {
			for i := range vals {
				if vals[i] < old[i] {
					return fmt.Errorf("%q: counter %d went from %d to %d within retention", key, i, old[i], vals[i])
				}
			}
		}
		c.last[key] = vals
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

func decodeStrict(dec *json.Decoder, v any) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestSoak runs everything at once for -soak and checks every frame and,
// at the end, every count: see the package doc.
func TestSoak(t *testing.T) {
	if *soakFor <= 0 {
		t.Skip("the soak runs with -soak=<duration> (make soak)")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	origin := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: origin, Node: "soak", Interval: time.Millisecond, Compressed: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := origin.Lookup(s.Path())
	var writes, failures atomic.Uint64
	var failing atomic.Bool
	failing.Store(true)
	b.SetWriteHook(func(string, []byte) error {
		n := writes.Add(1)
		if !failing.Load() {
			return nil
		}
		if rand.IntN(100) == 0 {
			time.Sleep(time.Duration(1+rand.IntN(3)) * time.Millisecond) // slow now and then
		}
		if n%20 == 0 {
			failures.Add(1)
			return errors.New("injected write failure")
		}
		return nil
	})
	var checkers []*checker
	var zcheckers []*zchecker
	var checking sync.WaitGroup
	for i, name := range moqstats.Tracks() {
		sub, err := origin.Subscribe(s.Path(), name)
		if err != nil {
			t.Fatal(err)
		}
		c := &checker{name: name, sessions: i >= 4}
		checkers = append(checkers, c)
		checking.Go(func() { c.run(sub) })
		zsub, err := origin.Subscribe(s.Path(), name+moqstats.CompressedSuffix)
		if err != nil {
			t.Fatal(err)
		}
		z := &zchecker{name: name + moqstats.CompressedSuffix}
		zcheckers = append(zcheckers, z)
		checking.Go(func() { z.run(zsub) })
	}

	ts := targets(300)
	var hot [4]*moqstats.BroadcastGuard
	for tier := range 2 {
		h := s.Tier(moqstats.Tier(tier))
		hot[tier*2] = h.Broadcast("hot").Publisher()
		hot[tier*2+1] = h.Broadcast("hot").Subscriber()
	}
	want := newLedger()
	for i := range hot {
		want.bump(i, "hot", announced, 1)
		want.bump(i, "hot", announcedClosed, 1)
	}
	var dropped atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var workers []*worker
	for i := range 4 {
		w := &worker{s: s, ts: ts, r: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))), l: newLedger(), hot: hot, dropped: &dropped}
		workers = append(workers, w)
		wg.Go(func() { w.run(stop) })
	}
	var maxHeap atomic.Uint64
	var side sync.WaitGroup
	side.Go(func() { // GOMAXPROCS up and down, and the heap watched
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.GOMAXPROCS(1 + i%maxProcs)
			if h := heapBytes(); h > maxHeap.Load() {
				maxHeap.Store(h)
			}
		}
	})
	nframes := 0
	start := time.Now()
	time.Sleep(*soakFor)
	close(stop)
	wg.Wait()
	side.Wait()

	// Every dropped guard is reclaimed by the garbage collector before the
	// totals can be exact. Go's runtime (1.26) leaves cleanups queued on a
	// P that a lower GOMAXPROCS removed until that P comes back, so give
	// every P back first.
	runtime.GOMAXPROCS(maxProcs)
	deadline := time.Now().Add(time.Minute)
	for s.Leaked() != dropped.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("%d guards reclaimed of %d dropped", s.Leaked(), dropped.Load())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	for _, g := range hot {
		g.Close()
	}
	failing.Store(false)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checking.Wait()

	// Every compressed track adds up to its plain track's last frame.
	for i, z := range zcheckers {
		nframes += z.frames
		if z.err != nil {
			t.Fatal(z.err)
		}
		plain, _ := b.Latest(moqstats.Tracks()[i])
		var want any
		if err := json.Unmarshal(plain, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(z.value, want) {
			t.Errorf("%s adds up to a value other than %s's last frame", z.name, moqstats.Tracks()[i])
		}
	}
	var ops uint64
	for _, w := range workers {
		want.merge(w.l)
		ops += w.ops
	}
	for i, c := range checkers {
		nframes += c.frames
		if c.err != nil {
			t.Fatal(c.err)
		}
		got := c.last
		if i < 4 {
			compare(t, c.name, got, want.traffic[i], func(v *[9]uint64) []uint64 { return v[:] })
		} else {
			compare(t, c.name, got, want.sessions[i-4], func(v *[2]uint64) []uint64 { return v[:] })
		}
	}
	fmt.Printf("soak: %v, %d operations, %d guards dropped and reclaimed, %d frames checked, %d writes, %d failures injected, max heap %.1f MiB\n",
		time.Since(start).Round(time.Millisecond), ops, dropped.Load(), nframes, writes.Load(), failures.Load(), float64(maxHeap.Load())/(1<<20))
}

// compare checks that the last value of every key on a track equals the
// ledger, and that no key is missing or extra.
func compare[V any](t *testing.T, track string, got map[string][]uint64, want map[string]V, vals func(V) []uint64) {
	t.Helper()
	for k, v := range want {
		w := vals(v)
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: key %.80q never on the wire, want %v", track, k, w)
			continue
		}
		for i := range w {
			if g[i] != w[i] {
				t.Errorf("%s: %.80q = %v, want %v", track, k, g, w)
				break
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: key %.80q on the wire that no worker bumped", track, k)
		}
	}
}
