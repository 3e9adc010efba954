package interop

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/memorigin"
)

// keys are the broadcast paths and roots of a run: byte-order neighbours,
// escapes, non-ASCII, invalid UTF-8, integer-like keys (which JavaScript
// objects order first), paths that normalize, the empty path. None is
// named like a member of Object.prototype: those are pinned on their own
// (upstream_test.go).
var (
	paths = []string{"a", "b/c", "live/ü", "q\"uote", "back\\slash", "ctl\x01\x1f", "line\u2028sep", "emoji😀",
		"", "bad\xffutf8", "12", "0", "/slash//es/", "<html>&amp;"}
	roots = []string{"acme", "", "r\"1", "12"}
)

// run is one randomized run of a Stats with compressed tracks.
type run struct {
	name   string
	config moqstats.Config // Origin, Interval and Compressed are set by newTap
	passes int
	// Each pass from failFrom on, each of the twelve tracks' writes fails
	// with probability 1/failEvery (0: never).
	failEvery, failFrom int
	// steady bumps a track on path "steady" every pass, so that every
	// pass changes publisher.json.
	steady bool
	seed   uint64
}

// zFrame is one frame of a compressed track and the pass that wrote it
// (0: New's baseline).
type zFrame struct {
	Pass  int
	Group uint64
	Index int
	Data  []byte
}

// trackRecord is what a run wrote on one plain track and its compressed
// sibling.
type trackRecord struct {
	name   string // the plain track's
	frames []zFrame
	// want holds, for every pass on which neither of the pair's writes
	// failed, the value of the plain track's latest frame; last is the
	// value of the last pass in it.
	want map[int]any
	last any
}

// recording is what one run wrote.
type recording struct {
	run    run
	passes int // the last pass number
	tracks []*trackRecord
	// Coverage: writes rejected on plain and compressed tracks; groups
	// started on the delta budget or the frame cap, and to resync after a
	// failed write; the longest group; keys that left a plain frame;
	// counters that went down (a key re-created from zero).
	rejectedPlain, rejectedZ, rolls, resyncs, longest, removed, decreased int
}

// tap runs a Stats with compressed tracks on a memorigin.Origin, fails
// the writes it is told to, and records what each pass wrote.
type tap struct {
	t *testing.T
	s *moqstats.Stats
	b *memorigin.Broadcast
	recording
	subs              []*memorigin.Subscription
	resyncDue         []bool // per track: a compressed write failed since its last frame
	failing, rejected map[string]bool
}

// newTap starts a Stats with r.config (its Origin, Interval and
// Compressed set here) and records New's baseline frames as pass 0.
func newTap(t *testing.T, r run) *tap {
	t.Helper()
	o := memorigin.New()
	cfg := r.config
	cfg.Origin, cfg.Interval, cfg.Compressed = o, time.Hour, true
	s, err := moqstats.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := o.Lookup(s.Path())
	if !ok {
		t.Fatalf("%s: no broadcast at %q", r.name, s.Path())
	}
	tp := &tap{t: t, s: s, b: b, recording: recording{run: r}, failing: map[string]bool{}, rejected: map[string]bool{}}
	for _, name := range moqstats.Tracks() {
		sub, err := o.Subscribe(s.Path(), name+moqstats.CompressedSuffix)
		if err != nil {
			t.Fatal(err)
		}
		tp.subs = append(tp.subs, sub)
		tp.resyncDue = append(tp.resyncDue, false)
		tp.tracks = append(tp.tracks, &trackRecord{name: name, want: map[int]any{}})
	}
	// The hook runs on the goroutine of Flush and Close, which the test
	// waits for.
	b.SetWriteHook(func(track string, _ []byte) error {
		if tp.failing[track] {
			tp.rejected[track] = true
			return errors.New("injected failure")
		}
		return nil
	})
	tp.observe()
	return tp
}

// flush runs the next pass with the writes to the named tracks failing.
func (tp *tap) flush(failing ...string) {
	tp.t.Helper()
	tp.passes++
	clear(tp.failing)
	clear(tp.rejected)
	for _, name := range failing {
		tp.failing[name] = true
	}
	err := tp.s.Flush()
	if (err != nil) != (len(tp.rejected) > 0) {
		tp.t.Fatalf("%s pass %d: Flush returned %v with writes rejected on %v", tp.run.name, tp.passes, err, tp.rejected)
	}
	for name := range tp.rejected {
		if strings.HasSuffix(name, moqstats.CompressedSuffix) {
			tp.rejectedZ++
		} else {
			tp.rejectedPlain++
		}
	}
	tp.observe()
}

// close closes the Stats, whose final pass fails nothing, and records it.
func (tp *tap) close() *recording {
	tp.t.Helper()
	tp.passes++
	clear(tp.failing)
	clear(tp.rejected)
	if err := tp.s.Close(); err != nil {
		tp.t.Fatalf("%s: Close: %v", tp.run.name, err)
	}
	tp.observe()
	return &tp.recording
}

// observe drains the compressed tracks after a pass and takes the plain
// values of the pairs none of whose writes failed.
func (tp *tap) observe() {
	t, pass := tp.t, tp.passes
	t.Helper()
	for i, tr := range tp.tracks {
		for {
			f, ok := tp.subs[i].TryNextFrame()
			if !ok {
				break
			}
			switch {
			case f.Index != 0 || len(tr.frames) == 0:
			case tp.resyncDue[i]:
				tp.resyncs++
			default:
				tp.rolls++
			}
			if f.Index == 0 {
				tp.resyncDue[i] = false
			}
			tp.longest = max(tp.longest, f.Index+1)
			tr.frames = append(tr.frames, zFrame{pass, f.Group, f.Index, f.Data})
		}
		if tp.rejected[tr.name+moqstats.CompressedSuffix] {
			tp.resyncDue[i] = true
		}
		if tp.rejected[tr.name] || tp.rejected[tr.name+moqstats.CompressedSuffix] {
			continue
		}
		plain, ok := tp.b.Latest(tr.name)
		if !ok {
			t.Fatalf("%s pass %d: nothing on %s", tp.run.name, pass, tr.name)
		}
		v, err := parseJSON(plain)
		if err != nil {
			t.Fatalf("%s pass %d: %s: %v", tp.run.name, pass, tr.name, err)
		}
		tp.removed += removedKeys(tr.last, v)
		tp.decreased += decreasedCounters(tr.last, v)
		tr.want[pass], tr.last = v, v
	}
}

// record runs r: random traffic, and from pass r.failFrom on each of the
// twelve tracks' writes failing with probability 1/r.failEvery; then
// everything closes and the Stats with it. It records every frame of
// every compressed track and the plain values to compare them with.
func record(t *testing.T, r run) *recording {
	t.Helper()
	tp := newTap(t, r)
	w := newWorld(tp.s, rand.New(rand.NewPCG(r.seed, 0x1e7)))
	random := rand.New(rand.NewPCG(r.seed, 0xfa11))
	var steady *moqstats.TrackGuard
	if r.steady {
		steady = tp.s.Tier(moqstats.External).Broadcast("steady").PublisherTrack("video")
	}
	for range r.passes {
		w.step()
		steady.Bytes(1) // a no-op on nil

		var failing []string
		if r.failEvery > 0 && tp.passes+1 >= r.failFrom {
			for _, name := range tp.s.Tracks() {
				if random.IntN(r.failEvery) == 0 {
					failing = append(failing, name)
				}
			}
		}
		tp.flush(failing...)
	}
	// Everything closes; the keys leave the frames over the next passes,
	// which fail nothing, so every track ends on a value compared.
	w.closeAll()
	steady.Close()
	for range 3 {
		tp.flush()
	}
	return tp.close()
}

// removedKeys counts the keys of frame value a that b lacks.
func removedKeys(a, b any) int {
	am, _ := a.(map[string]any)
	bm, _ := b.(map[string]any)
	n := 0
	for k := range am {
		if _, ok := bm[k]; !ok {
			n++
		}
	}
	return n
}

// decreasedCounters counts the counters of frame value a that are larger
// than in b, for keys in both.
func decreasedCounters(a, b any) int {
	am, _ := a.(map[string]any)
	bm, _ := b.(map[string]any)
	n := 0
	for k, av := range am {
		ao, _ := av.(map[string]any)
		bo, _ := bm[k].(map[string]any)
		for f, x := range ao {
			if y, ok := bo[f]; ok && counter(x) > counter(y) {
				n++
			}
		}
	}
	return n
}

// counter returns a parsed counter's value (0 for anything else).
func counter(v any) uint64 {
	n, _ := v.(json.Number)
	u, _ := strconv.ParseUint(string(n), 10, 64)
	return u
}

// world is the random traffic of a run: the guards it holds open, with
// the key each is on.
type world struct {
	s          *moqstats.Stats
	r          *rand.Rand
	announces  []held[*moqstats.BroadcastGuard]
	tracks     []held[*moqstats.TrackGuard]
	subs       []held[*moqstats.SubscriptionGuard]
	sessions   []held[*moqstats.SessionGuard]
	publishers [2]*moqstats.SessionBroadcasts // per tier: viewers of its egress
	subscriber [2]*moqstats.SessionBroadcasts // per tier: its ingress
}

type held[G any] struct {
	key string
	g   G
}

func newWorld(s *moqstats.Stats, r *rand.Rand) *world {
	w := &world{s: s, r: r}
	for t := range 2 {
		h := s.Tier(moqstats.Tier(t))
		w.publishers[t], w.subscriber[t] = h.PublisherBroadcasts(), h.SubscriberBroadcasts()
	}
	return w
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// drop closes and forgets a random one of s.
func drop[G interface{ Close() }](r *rand.Rand, s []held[G]) []held[G] {
	if len(s) == 0 {
		return s
	}
	i := r.IntN(len(s))
	s[i].g.Close()
	return slices.Delete(s, i, i+1)
}

// step does a few random things between two passes.
func (w *world) step() {
	r := w.r
	for range r.IntN(8) {
		tier := r.IntN(2)
		h := w.s.Tier(moqstats.Tier(tier))
		key := pick(r, paths)
		bs := h.Broadcast(key)
		switch r.IntN(12) {
		case 0: // an announce, and a track under it
			var g *moqstats.BroadcastGuard
			if r.IntN(2) == 0 {
				g = bs.Subscriber()
			} else {
				g = bs.Publisher()
			}
			w.announces = append(w.announces, held[*moqstats.BroadcastGuard]{key, g})
			if r.IntN(2) == 0 {
				w.tracks = append(w.tracks, held[*moqstats.TrackGuard]{key, g.Track("video")})
			}
		case 1: // a track with no announce
			var tr *moqstats.TrackGuard
			if r.IntN(2) == 0 {
				tr = bs.SubscriberTrack("audio")
			} else {
				tr = bs.PublisherTrack("audio")
			}
			w.tracks = append(w.tracks, held[*moqstats.TrackGuard]{key, tr})
		case 2: // a subscription: a viewer on egress
			sb := w.publishers[tier]
			if r.IntN(3) == 0 {
				sb = w.subscriber[tier]
			}
			w.subs = append(w.subs, held[*moqstats.SubscriptionGuard]{key, sb.Subscribe(key)})
		case 3, 4, 5: // payload
			if len(w.tracks) == 0 {
				continue
			}
			tr := pick(r, w.tracks).g
			n := r.Uint64N(1 << 12)
			if r.IntN(20) == 0 {
				n = 1<<36 + r.Uint64N(1<<36)
			}
			tr.Bytes(n)
			tr.Frame()
			if r.IntN(4) == 0 {
				tr.Group()
			}
			if r.IntN(10) == 0 {
				tr.Datagram(uint64(r.IntN(1200)))
			}
		case 6: // a fetch
			var f *moqstats.TrackGuard
			if len(w.announces) > 0 && r.IntN(2) == 0 {
				f = pick(r, w.announces).g.Fetch("video")
			} else {
				f = bs.PublisherFetch("video")
			}
			f.Bytes(r.Uint64N(1 << 16))
			f.Close()
		case 7:
			w.tracks = drop(r, w.tracks)
		case 8:
			w.announces = drop(r, w.announces)
			w.subs = drop(r, w.subs)
		case 9:
			w.sessions = append(w.sessions, held[*moqstats.SessionGuard]{"", h.Session(pick(r, roots))})
		case 10:
			w.sessions = drop(r, w.sessions)
		case 11: // everything on one path closes: it is collected
			w.closeKey(key)
		}
	}
}

func closeWhere[G interface{ Close() }](s []held[G], key string) []held[G] {
	return slices.DeleteFunc(s, func(h held[G]) bool {
		if h.key == key {
			h.g.Close()
			return true
		}
		return false
	})
}

func (w *world) closeKey(key string) {
	w.tracks = closeWhere(w.tracks, key)
	w.announces = closeWhere(w.announces, key)
	w.subs = closeWhere(w.subs, key)
}

func (w *world) closeAll() {
	for _, key := range paths {
		w.closeKey(key)
	}
	for _, s := range w.sessions {
		s.g.Close()
	}
	w.sessions = nil
}
