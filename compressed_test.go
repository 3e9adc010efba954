package moqstats_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/internal/wiretest"
	"github.com/moqstats/moqstats/memorigin"
	"github.com/moqstats/moqstats/zframe"
)

// jsonValue decodes a frame with encoding/json.
func jsonValue(t *testing.T, frame []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(frame, &v); err != nil {
		t.Fatalf("%v: %s", err, frame)
	}
	return v
}

// zReader follows one compressed track frame by frame, as a consumer
// does, checks its group structure, and keeps the value its frames add up
// to.
type zReader struct {
	t     *testing.T
	name  string
	sub   *memorigin.Subscription
	dec   zframe.Decoder
	group uint64
	index int
	value any
	// failed is set by the test when a write to the track failed since
	// its last frame: only then may a snapshot repeat the value. With
	// anyFailed, any snapshot may (the test does not know when writes
	// failed).
	failed, anyFailed bool
}

// drain reads every frame queued and returns how many it read.
func (z *zReader) drain() int {
	t := z.t
	t.Helper()
	n := 0
	for {
		f, ok := z.sub.TryNextFrame()
		if !ok {
			return n
		}
		n++
		var raw []byte
		var err error
		if f.Index == 0 {
			if f.Group <= z.group {
				t.Fatalf("%s: group %d after group %d", z.name, f.Group, z.group)
			}
			raw, err = z.dec.Snapshot(f.Data)
		} else {
			if f.Group != z.group || f.Index != z.index+1 {
				t.Fatalf("%s: frame %d.%d after %d.%d: frames of a group must be contiguous", z.name, f.Group, f.Index, z.group, z.index)
			}
			if f.Index >= zframe.MaxGroupFrames {
				t.Fatalf("%s: group %d has frame %d, past the cap of %d", z.name, f.Group, f.Index, zframe.MaxGroupFrames)
			}
			raw, err = z.dec.Delta(f.Data)
		}
		if err != nil {
			t.Fatalf("%s frame %d.%d: %v", z.name, f.Group, f.Index, err)
		}
		next := jsonValue(t, raw)
		if f.Index > 0 {
			if _, ok := next.(map[string]any); !ok {
				t.Fatalf("%s frame %d.%d: a delta that is not an object: %s", z.name, f.Group, f.Index, raw)
			}
			next = wiretest.MergePatch(deepCopy(z.value), next)
		}
		if reflect.DeepEqual(next, z.value) && (f.Index > 0 || !(z.failed || z.anyFailed)) {
			t.Fatalf("%s frame %d.%d left the value unchanged (%s) with no failed write to make up for", z.name, f.Group, f.Index, raw)
		}
		z.group, z.index, z.value, z.failed = f.Group, f.Index, next, false
	}
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = deepCopy(x)
		}
		return m
	}
	return v
}

// randomSeeds is how many seeds a randomized test runs each configuration
// with: n, or 1 with -short (the arm64 race guest's CI boot), where every
// configuration still runs once in full.
func randomSeeds(n uint64) uint64 {
	if testing.Short() {
		return 1
	}
	return n
}

// compressedRun configures one run of TestCompressedTracksCarryThePlainValue.
type compressedRun struct {
	retention time.Duration
	newer     bool
	ratio     int
}

// Random traffic on a few keys and roots, both tiers and roles, with
// entries collected and re-created, and writes failing at random on plain
// and compressed tracks alike. After every pass, on every track pair whose
// writes did not fail, the value the compressed track's frames add up to
// (following it as a consumer does, frame by frame) equals the plain
// frame's. Every compressed group starts with a snapshot, holds at most
// 256 contiguous frames, and every frame changes the value, but for a
// snapshot that resyncs after a failed write.
func TestCompressedTracksCarryThePlainValue(t *testing.T) {
	for _, run := range []compressedRun{
		{ratio: 8},
		{ratio: 1},
		{retention: moqstats.NoRetention, ratio: 2},
		{newer: true, ratio: 8},
	} {
		t.Run(fmt.Sprintf("%+v", run), func(t *testing.T) {
			for seed := range randomSeeds(4) {
				testCompressedRun(t, run, seed)
			}
		})
	}
}

func testCompressedRun(t *testing.T, run compressedRun, seed uint64) {
	o := memorigin.New()
	// Writes may still fail at Close: one attempt.
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour, Compressed: true, DeltaRatio: run.ratio, Retention: run.retention, NewerCounters: run.newer,
		CloseTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, _ := o.Lookup(s.Path())
	failing := map[string]bool{}
	b.SetWriteHook(func(track string, _ []byte) error {
		if failing[track] {
			return errors.New("injected")
		}
		return nil
	})
	var zs []*zReader
	for _, name := range moqstats.Tracks() {
		sub, err := o.Subscribe(s.Path(), name+moqstats.CompressedSuffix)
		if err != nil {
			t.Fatal(err)
		}
		zs = append(zs, &zReader{t: t, name: name + moqstats.CompressedSuffix, sub: sub})
	}
	r := rand.New(rand.NewPCG(seed, 77))
	keys := []string{"a", "b/c", "d", "e\"q"}
	roots := []string{"r0", "r1"}
	type open struct {
		tr *moqstats.TrackGuard
		g  *moqstats.BroadcastGuard
	}
	var opens []open
	var sessions []*moqstats.SessionGuard
	for pass := range 300 {
		for range r.IntN(6) {
			h := s.Tier(moqstats.Tier(r.IntN(2)))
			switch r.IntN(8) {
			case 0, 1:
				bs := h.Broadcast(keys[r.IntN(len(keys))])
				if r.IntN(2) == 0 {
					g := bs.Publisher()
					opens = append(opens, open{g.Track("v"), g})
				} else {
					opens = append(opens, open{tr: bs.SubscriberTrack("v")})
				}
			case 2, 3:
				if len(opens) > 0 {
					x := opens[r.IntN(len(opens))]
					x.tr.Bytes(uint64(r.IntN(2000)))
					x.tr.Frame()
					if r.IntN(5) == 0 {
						x.tr.Group()
					}
					if r.IntN(9) == 0 {
						x.tr.Datagram(100)
					}
				}
			case 4:
				if len(opens) > 0 {
					i := r.IntN(len(opens))
					opens[i].tr.Close()
					opens[i].g.Close()
					opens = append(opens[:i], opens[i+1:]...)
				}
			case 5:
				sessions = append(sessions, h.Session(roots[r.IntN(len(roots))]))
			case 6:
				if len(sessions) > 0 {
					i := r.IntN(len(sessions))
					sessions[i].Close()
					sessions = append(sessions[:i], sessions[i+1:]...)
				}
			case 7:
				if f := h.Broadcast(keys[r.IntN(len(keys))]).PublisherFetch("v"); f != nil {
					f.Bytes(500)
					f.Close()
				}
			}
		}
		clear(failing)
		for _, name := range s.Tracks() {
			if r.IntN(12) == 0 {
				failing[name] = true
			}
		}
		s.Flush() // the failures are the injected ones
		for i, name := range moqstats.Tracks() {
			z := zs[i]
			if failing[z.name] {
				z.failed = true
			}
			z.drain()
			if failing[name] || failing[z.name] {
				continue
			}
			plain, _ := b.Latest(name)
			if want := jsonValue(t, plain); !reflect.DeepEqual(z.value, want) {
				t.Fatalf("seed %d pass %d: %s adds up to %v, %s is %s", seed, pass, z.name, z.value, name, plain)
			}
		}
	}
	for _, x := range opens {
		x.tr.Close()
		x.g.Close()
	}
	for _, g := range sessions {
		g.Close()
	}
	groups := 0
	for _, z := range zs {
		groups += int(z.group)
	}
	if groups < 6*2 {
		t.Fatalf("seed %d: %d groups over six compressed tracks in 300 passes: no group ever rolled", seed, groups)
	}
}

// A delta carries exactly what changed: a changed key's changed fields, a
// new key whole, a key that left as null, and a retained key coming back
// as the fields that moved since it was last in a frame.
func TestCompressedDeltaCarriesOnlyWhatChanged(t *testing.T) {
	o := memorigin.New()
	// A budget large enough that every frame here stays in one group.
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour, Compressed: true, DeltaRatio: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sub, err := o.Subscribe(s.Path(), moqstats.TrackPublisher+moqstats.CompressedSuffix)
	if err != nil {
		t.Fatal(err)
	}
	var dec zframe.Decoder
	next := func() (int, string) {
		t.Helper()
		f, ok := sub.TryNextFrame()
		if !ok {
			t.Fatal("no compressed frame written")
		}
		var raw []byte
		var err error
		if f.Index == 0 {
			raw, err = dec.Snapshot(f.Data)
		} else {
			raw, err = dec.Delta(f.Data)
		}
		if err != nil {
			t.Fatal(err)
		}
		return f.Index, string(raw)
	}
	none := func() {
		t.Helper()
		if f, ok := sub.TryNextFrame(); ok {
			t.Fatalf("unexpected compressed frame %d.%d", f.Group, f.Index)
		}
	}
	if i, f := next(); i != 0 || f != "{}" {
		t.Fatalf("baseline = %d %s, want the snapshot {}", i, f)
	}
	h := s.Tier(moqstats.External)
	a := h.Broadcast("a").PublisherTrack("v")
	bt := h.Broadcast("b").PublisherTrack("v")
	flush(t, s)
	if i, f := next(); i != 1 || !strings.HasPrefix(f, `{"a":{"announced":0,`) || !strings.Contains(f, `,"b":{"announced":0,`) {
		t.Fatalf("two new keys = %d %s, want a delta with both whole", i, f)
	}
	flush(t, s)
	none() // nothing changed: nothing written
	a.Bytes(100)
	a.Frame()
	flush(t, s)
	if i, f := next(); i != 2 || f != `{"a":{"bytes":100,"frames":1}}` {
		t.Fatalf("a bumped = %d %s, want only its changed fields", i, f)
	}
	bt.Close()
	flush(t, s)
	if _, f := next(); f != `{"b":{"subscriptions_closed":1}}` {
		t.Fatalf("b closed = %s, want its final change", f)
	}
	flush(t, s) // b collected, retained, out of the frame
	if _, f := next(); f != `{"b":null}` {
		t.Fatalf("b gone = %s, want a null", f)
	}
	b2 := h.Broadcast("b").PublisherTrack("v") // back within retention
	flush(t, s)
	if _, f := next(); !strings.HasPrefix(f, `{"b":{"announced":0,`) || !strings.Contains(f, `"subscriptions":2,"subscriptions_closed":1`) {
		t.Fatalf("b back = %s, want it whole with its continued counts", f)
	}
	b2.Close()
	a.Close()
}

func TestCompressedPublishesSiblingsAfterTheirPlainTracks(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, Compressed: true})
	b, _ := o.Lookup(s.Path())
	want := []string{
		"publisher.json", "publisher.json.z", "subscriber.json", "subscriber.json.z",
		"internal/publisher.json", "internal/publisher.json.z", "internal/subscriber.json", "internal/subscriber.json.z",
		"sessions.json", "sessions.json.z", "internal/sessions.json", "internal/sessions.json.z",
	}
	if got := b.Tracks(); !reflect.DeepEqual(got, want) {
		t.Fatalf("published tracks %q, want %q", got, want)
	}
	if got := s.Tracks(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Stats.Tracks() = %q, want %q", got, want)
	}
	plain, _ := setup(t)
	if got := plain.Tracks(); !reflect.DeepEqual(got, moqstats.Tracks()) {
		t.Fatalf("Stats.Tracks() without Compressed = %q, want the six", got)
	}
}

// plainOnlyOrigin publishes broadcasts that cannot append.
type plainOnlyOrigin struct{ o *memorigin.Origin }

type plainOnlyBroadcast struct{ b moqstats.Broadcast }

func (p plainOnlyOrigin) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	b, err := p.o.Publish(path, tracks)
	return plainOnlyBroadcast{b}, err
}
func (p plainOnlyBroadcast) WriteFrame(track string, f []byte) error { return p.b.WriteFrame(track, f) }
func (p plainOnlyBroadcast) Close() error                            { return p.b.Close() }

func TestCompressedConfigErrors(t *testing.T) {
	o := memorigin.New()
	if _, err := moqstats.New(moqstats.Config{Origin: plainOnlyOrigin{o}, Compressed: true}); !errors.Is(err, moqstats.ErrInvalidConfig) || !strings.Contains(err.Error(), "AppendFrame") {
		t.Fatalf("Compressed on a Broadcast without AppendFrame: %v, want ErrInvalidConfig naming AppendFrame", err)
	}
	if len(o.Paths()) != 0 {
		t.Fatalf("broadcast left announced after the config error: %q", o.Paths())
	}
	if _, err := moqstats.New(moqstats.Config{Origin: o, Compressed: true, DeltaRatio: -1}); !errors.Is(err, moqstats.ErrInvalidConfig) {
		t.Fatalf("negative DeltaRatio: %v, want ErrInvalidConfig", err)
	}
}

// A final count whose compressed write failed is not on the wire yet, even
// though its plain write succeeded: the key stays in the next frame, so
// the resync snapshot carries it, and is forgotten only after. (It used to
// count as on the wire once the plain frame was written, so the resync
// snapshot, built without the key, lost its final count for compressed
// readers.)
func TestFailedCompressedWriteKeepsTheFinalCountForTheResync(t *testing.T) {
	o := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour, Compressed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sub, err := o.Subscribe(s.Path(), moqstats.TrackPublisher+moqstats.CompressedSuffix)
	if err != nil {
		t.Fatal(err)
	}
	z := &zReader{t: t, name: "publisher.json.z", sub: sub, anyFailed: true}
	b, _ := o.Lookup(s.Path())
	g := s.Tier(moqstats.External).Broadcast("k").PublisherTrack("v")
	g.Bytes(10)
	flush(t, s)
	g.Bytes(5)
	g.Close()
	b.SetWriteHook(func(track string, _ []byte) error {
		if strings.HasSuffix(track, moqstats.CompressedSuffix) {
			return errors.New("link down")
		}
		return nil
	})
	if err := s.Flush(); err == nil {
		t.Fatal("Flush with failing compressed tracks returned nil")
	}
	b.SetWriteHook(nil)
	flush(t, s)
	z.drain()
	want := jsonValue(t, []byte(`{"k":{"announced":0,"announced_closed":0,"broadcasts":0,"broadcasts_closed":0,"subscriptions":1,"subscriptions_closed":1,"bytes":15,"frames":0,"groups":0}}`))
	if !reflect.DeepEqual(z.value, want) {
		t.Fatalf("the compressed track after the resync = %v, want k's final count %v", z.value, want)
	}
	flush(t, s)
	z.drain()
	if !reflect.DeepEqual(z.value, map[string]any{}) {
		t.Fatalf("the compressed track once k's final count is out everywhere = %v, want {}", z.value)
	}
}

// plainSide is one of two Stats driven through the same random traffic by
// TestCompressedLeavesPlainTracksByteExact, recording every plain frame it
// tries to write.
type plainSide struct {
	s       *moqstats.Stats
	tracks  []*moqstats.TrackGuard
	closers []func()
	frames  map[string][][]byte
	// failPlain fails writes on plain tracks; failZ on compressed ones.
	failPlain, failZ bool
}

func newPlainSide(t *testing.T, compressed, newer bool) *plainSide {
	o := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour, Compressed: compressed, DeltaRatio: 1, NewerCounters: newer})
	if err != nil {
		t.Fatal(err)
	}
	p := &plainSide{s: s, frames: map[string][][]byte{}}
	b, _ := o.Lookup(s.Path())
	b.SetWriteHook(func(track string, frame []byte) error {
		if strings.HasSuffix(track, moqstats.CompressedSuffix) {
			if p.failZ {
				return errors.New("injected")
			}
			return nil
		}
		p.frames[track] = append(p.frames[track], append([]byte(nil), frame...))
		if p.failPlain {
			return errors.New("injected")
		}
		return nil
	})
	return p
}

// TestCompressedLeavesPlainTracksByteExact drives a Stats with compressed
// siblings and one without through the same random traffic, passes and
// failed plain writes, with the compressed one's siblings failing too in
// some of those passes: every plain frame either tries to write is the
// same, byte for byte, through Close. (A sibling failing alone keeps a
// collected key in the next plain frame too, with the same values, so the
// resync snapshot carries it: TestFailedCompressedWriteKeepsTheFinalCountForTheResync.)
func TestCompressedLeavesPlainTracksByteExact(t *testing.T) {
	paths := []string{"a", "b/c", "live/x", "\xff", "q\"uote", "n\n"}
	for _, newer := range []bool{false, true} {
		for seed := range randomSeeds(4) {
			t.Run(fmt.Sprintf("newer=%v/seed=%d", newer, seed), func(t *testing.T) {
				plain, comp := newPlainSide(t, false, newer), newPlainSide(t, true, newer)
				sides := []*plainSide{plain, comp}
				r := rand.New(rand.NewPCG(seed, 99))
				for range 3000 {
					tier := moqstats.Tier(r.IntN(2))
					path := paths[r.IntN(len(paths))]
					switch op := r.IntN(20); {
					case op < 3:
						pub := r.IntN(2) == 0
						for _, p := range sides {
							open := p.s.Tier(tier).Broadcast(path).Subscriber
							if pub {
								open = p.s.Tier(tier).Broadcast(path).Publisher
							}
							p.closers = append(p.closers, open().Close)
						}
					case op < 6:
						fetch := r.IntN(4) == 0
						for _, p := range sides {
							open := p.s.Tier(tier).Broadcast(path).PublisherTrack
							if fetch {
								open = p.s.Tier(tier).Broadcast(path).SubscriberFetch
							}
							p.tracks = append(p.tracks, open("v"))
						}
					case op < 12 && len(plain.tracks) > 0:
						i, n := r.IntN(len(plain.tracks)), uint64(r.IntN(5000))
						kind := r.IntN(4)
						for _, p := range sides {
							switch g := p.tracks[i]; kind {
							case 0:
								g.Bytes(n)
							case 1:
								g.Frame()
							case 2:
								g.Group()
							default:
								g.Datagram(n)
							}
						}
					case op < 14 && len(plain.tracks) > 0:
						i := r.IntN(len(plain.tracks))
						for _, p := range sides {
							p.tracks[i].Close()
							p.tracks = slices.Delete(p.tracks, i, i+1)
						}
					case op < 15 && len(plain.closers) > 0:
						i := r.IntN(len(plain.closers))
						for _, p := range sides {
							p.closers[i]()
							p.closers = slices.Delete(p.closers, i, i+1)
						}
					case op < 16:
						for _, p := range sides {
							p.closers = append(p.closers, p.s.Tier(tier).Session(path).Close)
						}
					default:
						failPlain := r.IntN(8) == 0
						failZ := failPlain && r.IntN(2) == 0
						for _, p := range sides {
							p.failPlain, p.failZ = failPlain, failZ
							p.s.Flush()
						}
					}
				}
				for _, p := range sides {
					p.failPlain, p.failZ = false, false
					for _, g := range p.tracks {
						g.Close()
					}
					for _, c := range p.closers {
						c()
					}
					if err := p.s.Close(); err != nil {
						t.Fatal(err)
					}
				}
				for _, name := range moqstats.Tracks() {
					a, b := plain.frames[name], comp.frames[name]
					if len(a) < 10 {
						t.Fatalf("%s: %d frames, want a run that writes some", name, len(a))
					}
					for i := range min(len(a), len(b)) {
						if !bytes.Equal(a[i], b[i]) {
							t.Fatalf("%s frame %d:\nwithout compression %s\nwith compression    %s", name, i, a[i], b[i])
						}
					}
					if len(a) != len(b) {
						t.Fatalf("%s: %d plain frames without compression, %d with; the last without: %s", name, len(a), len(b), a[len(a)-1])
					}
				}
			})
		}
	}
}
