package moqlite_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/memorigin"
	"github.com/moqstats/moqstats/moqlite"
)

// twin drives two Stats with the same traffic: one publishing on a moqlite
// Server, one on memorigin, whose subscriptions are the ledger of every
// frame written, with its group.
type twin struct {
	srv  *moqlite.Server
	mem  *memorigin.Origin
	live *moqstats.Stats
	ref  *moqstats.Stats
	// ledger[track] is every group memorigin saw, in order.
	ledger map[string][][][]byte
	subs   map[string]*memorigin.Subscription
	last   map[string]uint64 // the memorigin group of the ledger's last group

	closers []func()
	tracks  [2][]*moqstats.TrackGuard
}

func newTwin(t *testing.T, cfg moqlite.ServerConfig) *twin {
	tw := &twin{srv: moqlite.NewServer(cfg), mem: memorigin.New(), ledger: map[string][][][]byte{}, subs: map[string]*memorigin.Subscription{}, last: map[string]uint64{}}
	var err error
	if tw.live, err = moqstats.New(moqstats.Config{Origin: tw.srv, Compressed: true, Interval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if tw.ref, err = moqstats.New(moqstats.Config{Origin: tw.mem, Compressed: true, Interval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for _, name := range tw.ref.Tracks() {
		sub, err := tw.mem.Subscribe(tw.ref.Path(), name)
		if err != nil {
			t.Fatal(err)
		}
		tw.subs[name] = sub
	}
	return tw
}

// step applies one random operation to both Stats.
func (tw *twin) step(r *rand.Rand) {
	paths := []string{"a", "b/c", "live/x", "q\"uote"}
	tier := moqstats.Tier(r.IntN(2))
	path := paths[r.IntN(len(paths))]
	sides := []*moqstats.Stats{tw.live, tw.ref}
	switch op := r.IntN(12); {
	case op < 2:
		for _, s := range sides {
			tw.closers = append(tw.closers, s.Tier(tier).Broadcast(path).Publisher().Close)
		}
	case op < 4:
		sub := r.IntN(2) == 0
		for i, s := range sides {
			open := s.Tier(tier).Broadcast(path).PublisherTrack
			if sub {
				open = s.Tier(tier).Broadcast(path).SubscriberTrack
			}
			tw.tracks[i] = append(tw.tracks[i], open("v"))
		}
	case op < 8 && len(tw.tracks[0]) > 0:
		i, n := r.IntN(len(tw.tracks[0])), uint64(r.IntN(5000))
		for side := range sides {
			tw.tracks[side][i].Bytes(n)
			tw.tracks[side][i].Frame()
		}
	case op < 9 && len(tw.tracks[0]) > 0:
		i := r.IntN(len(tw.tracks[0]))
		for side := range sides {
			tw.tracks[side][i].Close()
			tw.tracks[side] = slices.Delete(tw.tracks[side], i, i+1)
		}
	case op < 10:
		for _, s := range sides {
			tw.closers = append(tw.closers, s.Tier(tier).Session(path).Close)
		}
	default:
		tw.flush()
	}
}

func (tw *twin) flush() {
	tw.live.Flush()
	tw.ref.Flush()
	tw.drain()
}

// drain moves what memorigin delivered into the ledger.
func (tw *twin) drain() {
	for name, sub := range tw.subs {
		for {
			f, ok := sub.TryNextFrame()
			if !ok {
				break
			}
			if f.Group != tw.last[name] {
				tw.ledger[name] = append(tw.ledger[name], nil)
				tw.last[name] = f.Group
			}
			g := &tw.ledger[name][len(tw.ledger[name])-1]
			*g = append(*g, f.Data)
		}
	}
}

func (tw *twin) close(t *testing.T) {
	for side := range tw.tracks {
		for _, g := range tw.tracks[side] {
			g.Close()
		}
	}
	for _, c := range tw.closers {
		c()
	}
	if err := tw.live.Close(); err != nil {
		t.Errorf("live Stats.Close: %v", err)
	}
	if err := tw.ref.Close(); err != nil {
		t.Errorf("reference Stats.Close: %v", err)
	}
	tw.drain()
}

// received collects a subscription's groups until it ends.
type received struct {
	groups [][][]byte
	seqs   []uint64
	err    error
	done   chan struct{}
}

func collect(ctx context.Context, sub *moqlite.Subscription) *received {
	r := &received{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			g, err := sub.NextGroup(ctx)
			if err != nil {
				if err != io.EOF {
					r.err = err
				}
				return
			}
			frames, err := readGroup(ctx, g)
			if err != io.EOF {
				r.err = fmt.Errorf("group %d: %w", g.Sequence, err)
				return
			}
			r.groups = append(r.groups, frames)
			r.seqs = append(r.seqs, g.Sequence)
		}
	}()
	return r
}

func sameGroups(t *testing.T, who, track string, got, want [][][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s %s: %d groups, want %d", who, track, len(got), len(want))
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s %s group %d: %d frames, want %d", who, track, i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			if !bytes.Equal(got[i][j], want[i][j]) {
				t.Fatalf("%s %s group %d frame %d:\ngot  %q\nwant %q", who, track, i, j, got[i][j], want[i][j])
			}
		}
	}
}

// A live Stats on the Server, with random traffic and compressed tracks,
// reaches a subscriber on every version exactly as memorigin sees the same
// traffic: every frame of every track, byte-identical, in order, grouped as
// written; a late subscriber starts at the then-latest group; the
// broadcast's unannounce reaches an announce interest; and after
// Stats.Close the last frame received on each track is the final one.
func TestLiveStatsReachSubscribersExactlyOnEveryVersion(t *testing.T) {
	for _, v := range versions {
		for seed := range uint64(2) {
			t.Run(fmt.Sprintf("%s/seed=%d", v.name, seed), func(t *testing.T) {
				testLiveStats(t, v.protocol, seed)
			})
		}
	}
}

func testLiveStats(t *testing.T, protocol string, seed uint64) {
	tw := newTwin(t, moqlite.ServerConfig{MaxQueuedBytes: 64 << 20, EndLinger: quickLinger})
	// What is checked is the server's delivery: the client keeps every
	// group however far its readers fall behind on a loaded machine, and
	// takes group streams for a second after a subscription ends.
	c, _, _ := connectWith(t, tw.srv, protocol, moqlite.ClientConfig{HandshakeTimeout: 5 * time.Second, MaxBufferedGroups: 1 << 20, EndLinger: time.Second})
	ctx := timeout(t, 60*time.Second)
	ann, err := c.Announced(".stats")
	if err != nil {
		t.Fatal(err)
	}
	a, err := ann.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (moqlite.Announcement{Path: tw.live.Path(), Active: true}); a != want {
		t.Fatalf("announce %+v, want %+v", a, want)
	}
	early := map[string]*received{}
	for _, name := range tw.live.Tracks() {
		sub, err := c.Subscribe(tw.live.Path(), name)
		if err != nil {
			t.Fatal(err)
		}
		early[name] = collect(ctx, sub)
	}
	r := rand.New(rand.NewPCG(seed, 13))
	for range 400 {
		tw.step(r)
	}
	tw.flush()
	// A late subscriber starts at the group that is latest now.
	late := map[string]*received{}
	lateFrom := map[string]int{}
	for _, name := range tw.live.Tracks() {
		sub, err := c.Subscribe(tw.live.Path(), name)
		if err != nil {
			t.Fatal(err)
		}
		late[name] = collect(ctx, sub)
		lateFrom[name] = len(tw.ledger[name]) - 1
	}
	for range 400 {
		tw.step(r)
	}
	tw.close(t)

	for _, name := range tw.live.Tracks() {
		want := tw.ledger[name]
		frames := 0
		for _, g := range want {
			frames += len(g)
		}
		if len(want) < 2 || frames < 5 {
			t.Fatalf("%s: %d frames in %d groups written, want a run that writes several groups", name, frames, len(want))
		}
		for who, rc := range map[string]*received{"early": early[name], "late": late[name]} {
			<-rc.done
			if rc.err != nil {
				t.Fatalf("%s subscriber of %s: %v", who, name, rc.err)
			}
			w := want
			if who == "late" {
				w = want[lateFrom[name]:]
			}
			sameGroups(t, who, name, rc.groups, w)
			for i := 1; i < len(rc.seqs); i++ {
				if rc.seqs[i] != rc.seqs[i-1]+1 {
					t.Fatalf("%s %s: group sequences %d then %d, want consecutive", who, name, rc.seqs[i-1], rc.seqs[i])
				}
			}
		}
		b, ok := tw.mem.Lookup(tw.ref.Path())
		_ = b
		if ok {
			t.Fatalf("memorigin still announces %q after Close", tw.ref.Path())
		}
		lastGroup := want[len(want)-1]
		got := early[name].groups
		if !bytes.Equal(got[len(got)-1][len(got[len(got)-1])-1], lastGroup[len(lastGroup)-1]) {
			t.Fatalf("%s: last frame received differs from the final frame written", name)
		}
	}
	a, err = ann.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (moqlite.Announcement{Path: tw.live.Path(), Active: false}); a != want {
		t.Fatalf("after Close: announce %+v, want %+v", a, want)
	}
}

var _ = sync.Mutex{}
