package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/memorigin"
)

// countingSource is a FrameSource over a memorigin subscription that
// counts the frames its follower has finished with: a follower applies a
// frame before it asks for the next, so every frame returned before the
// latest call is applied.
type countingSource struct {
	*memorigin.Subscription
	returned atomic.Int64 // frames returned
	applied  atomic.Int64 // frames returned before the latest call
	deltas   atomic.Int64 // frames with index > 0
	groups   atomic.Int64 // frames with index 0
	// idle receives a token when the follower asks for the next frame.
	idle chan struct{}
}

func (c *countingSource) NextFrame(ctx context.Context) (consumer.Frame, error) {
	c.applied.Store(c.returned.Load())
	select {
	case c.idle <- struct{}{}:
	default:
	}
	f, err := c.Subscription.NextFrame(ctx)
	if err == nil {
		if f.Index > 0 {
			c.deltas.Add(1)
		} else {
			c.groups.Add(1)
		}
		c.returned.Add(1)
	}
	return f, err
}

// followers follows every track of a Stats' broadcast twice, into two
// Aggregators: one on the plain tracks, one on the compressed siblings.
type followers struct {
	plain, z *consumer.Aggregator
	b        *memorigin.Broadcast
	sources  map[string]*countingSource
	idle     chan struct{} // a follower asked for its next frame
	wg       sync.WaitGroup
	errMu    sync.Mutex
	errs     []error
}

func followBoth(t *testing.T, mem *memorigin.Origin, stats *moqstats.Stats, cfg consumer.Config, now func() time.Time) *followers {
	t.Helper()
	f := &followers{sources: map[string]*countingSource{}, idle: make(chan struct{}, 1)}
	var err error
	if f.plain, err = consumer.New(cfg); err != nil {
		t.Fatal(err)
	}
	if f.z, err = consumer.New(cfg); err != nil {
		t.Fatal(err)
	}
	b, ok := mem.Lookup(stats.Path())
	if !ok {
		t.Fatalf("%s not announced", stats.Path())
	}
	f.b = b
	for _, name := range moqstats.Tracks() {
		for _, track := range []string{name, name + moqstats.CompressedSuffix} {
			sub, err := mem.Subscribe(stats.Path(), track)
			if err != nil {
				t.Fatal(err)
			}
			src := &countingSource{Subscription: sub, idle: f.idle}
			f.sources[track] = src
			agg := f.plain
			if track != name {
				agg = f.z
			}
			f.wg.Go(func() {
				err := consumer.Follow(context.Background(), agg, "edge/1", track, src, consumer.FollowOptions{Now: now, OnError: f.report})
				if err != nil {
					f.report(err)
				}
			})
		}
	}
	return f
}

func (f *followers) report(err error) {
	f.errMu.Lock()
	f.errs = append(f.errs, err)
	f.errMu.Unlock()
}

// settle waits until every follower applied every frame written to its
// track.
func (f *followers) settle(t *testing.T) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for track, src := range f.sources {
		for src.applied.Load() != int64(f.b.Writes(track)) {
			select {
			case <-f.idle:
			case <-time.After(time.Millisecond): // the token went to another wait
			case <-timeout:
				t.Fatalf("track %s: the follower applied %d frames of %d written", track, src.applied.Load(), f.b.Writes(track))
			}
		}
	}
}

func (f *followers) count(compressed bool) (groups, deltas int64) {
	for track, src := range f.sources {
		if (len(track) > 2 && track[len(track)-2:] == moqstats.CompressedSuffix) == compressed {
			groups += src.groups.Load()
			deltas += src.deltas.Load()
		}
	}
	return groups, deltas
}

// Without failed writes, a compressed track writes a frame on exactly the
// ticks its plain sibling does, with the same value: so a follower of the
// six compressed tracks and a follower of the six plain ones, stamping
// frames with the same clock, must hold identical Views (totals, current
// values, deltas, intervals, rates, segments) after every pass, and the
// totals must be what was bumped. DeltaRatio 1 rolls groups often, and
// the twelve-field frames of NewerCounters are used.
func TestCompressedFollowerViewEqualsPlainFollowerView(t *testing.T) {
	for seed := range uint64(seeds(2, 6)) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			var clockMu sync.Mutex
			clock := time.Unix(1_700_000_000, 0)
			now := func() time.Time {
				clockMu.Lock()
				defer clockMu.Unlock()
				return clock
			}
			mem := memorigin.New()
			stats, err := moqstats.New(moqstats.Config{
				Origin: mem, Node: "edge/1", Interval: time.Hour, Logger: slog.New(slog.DiscardHandler),
				Compressed: true, DeltaRatio: 1, NewerCounters: true, Retention: moqstats.NoRetention,
			})
			if err != nil {
				t.Fatal(err)
			}
			f := followBoth(t, mem, stats, consumer.Config{Retention: consumer.NoRetention}, now)
			m := &trafficModel{
				rng: rand.New(rand.NewPCG(seed, 0x2f)), stats: stats, newer: true, flushOnOpen: true,
				paths: []string{"acme/live", "acme/vod/1", "beta"}, roots: []string{"acme", ""},
				want: map[bkey]*consumer.Traffic{}, wantSessions: map[skey]*consumer.Presence{},
				pins: map[string]int{}, used: map[string]bool{}, trackers: map[slot][]*moqstats.SessionBroadcasts{},
				owners: map[*moqstats.SubscriptionGuard]*moqstats.SessionBroadcasts{},
			}
			compare := func(stage string) {
				t.Helper()
				pv, zv := f.plain.View(now()), f.z.View(now())
				if !reflect.DeepEqual(pv, zv) {
					t.Fatalf("%s: the views differ\nplain tracks:      %+v\ncompressed tracks: %+v", stage, pv, zv)
				}
			}
			m.flush = func(bool) {
				if err := stats.Flush(); err != nil {
					t.Fatal(err)
				}
				m.flushes++
				f.settle(t)
				compare(fmt.Sprint("after flush ", m.flushes))
				clockMu.Lock()
				clock = clock.Add(time.Duration(1+m.rng.IntN(3000)) * time.Millisecond)
				clockMu.Unlock()
			}
			for range 500 {
				m.step()
			}
			m.closeAll()
			if err := stats.Close(); err != nil {
				t.Fatal(err)
			}
			f.wg.Wait()
			compare("after Close")
			if len(f.errs) > 0 {
				t.Fatalf("follower errors: %v", f.errs)
			}
			modelResult{m: m, view: f.z.View(now())}.checkKeys(t)
			groups, deltas := f.count(true)
			if groups < 20 || deltas < 20 {
				t.Fatalf("the compressed tracks carried %d groups and %d deltas: the schedule does not roll groups and patch them", groups, deltas)
			}
		})
	}
}

// With writes failing at random, passes running every millisecond in the
// background besides random Flushes, small delta budgets that roll
// groups often, and the twelve fields, a follower of the six compressed
// tracks must end with exactly the lifetime totals of a follower of the
// six plain tracks, and what was bumped, without a new segment (the
// producer's retention covers every key that comes back) and without an
// error: a failed compressed write is followed by a new group, never by
// a delta a follower cannot apply.
//
// A third of the writes fail, plain and compressed alike, each on its
// own; half of the seeds write the twelve fields.
func TestCompressedTotalsUnderFailedWritesAndGroupRolls(t *testing.T) {
	var failures, groups, deltas int64
	for seed := range uint64(seeds(3, 12)) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			mem := memorigin.New()
			stats, err := moqstats.New(moqstats.Config{
				Origin: mem, Node: "edge/1", Interval: time.Millisecond, Logger: slog.New(slog.DiscardHandler),
				Compressed: true, DeltaRatio: 1 + int(seed%3), NewerCounters: seed%2 == 0,
			})
			if err != nil {
				t.Fatal(err)
			}
			f := followBoth(t, mem, stats, consumer.Config{}, time.Now)
			var (
				failing atomic.Bool
				failed  atomic.Int64
				hookMu  sync.Mutex
				hookRng = rand.New(rand.NewPCG(seed, 0xfa11))
			)
			f.b.SetWriteHook(func(track string, _ []byte) error {
				hookMu.Lock()
				defer hookMu.Unlock()
				if failing.Load() && hookRng.IntN(3) == 0 {
					failed.Add(1)
					return errInjected
				}
				return nil
			})
			m := &trafficModel{
				rng: rand.New(rand.NewPCG(seed, 0x5eed)), stats: stats, newer: seed%2 == 0,
				paths: []string{"acme/live", "acme/vod/1", "beta", "gamma/x"}, roots: []string{"acme", "", "beta"},
				want: map[bkey]*consumer.Traffic{}, wantSessions: map[skey]*consumer.Presence{},
				pins: map[string]int{}, used: map[string]bool{}, trackers: map[slot][]*moqstats.SessionBroadcasts{},
				owners: map[*moqstats.SubscriptionGuard]*moqstats.SessionBroadcasts{},
			}
			m.flush = func(mayFail bool) {
				failing.Store(mayFail)
				err := stats.Flush()
				failing.Store(false)
				if err != nil && !errors.Is(err, errInjected) {
					t.Fatal(err)
				}
				m.flushes++
			}
			for range 800 {
				m.step()
			}
			m.closeAll()
			f.b.SetWriteHook(nil)
			if err := stats.Close(); err != nil {
				t.Fatal(err)
			}
			f.wg.Wait()
			if len(f.errs) > 0 {
				t.Fatalf("follower errors: %v", f.errs)
			}
			pv, zv := f.plain.View(time.Now()), f.z.View(time.Now())
			for name, v := range map[string]*consumer.View{"plain": pv, "compressed": zv} {
				t.Run(name, func(t *testing.T) {
					res := modelResult{m: m, view: v}
					res.checkKeys(t)
					if n := newSegments(v); n != 0 {
						t.Errorf("%d new segments within retention, want 0", n)
					}
				})
			}
			if p, z := totalsOf(pv), totalsOf(zv); !sameTotals(p, z) {
				t.Fatalf("lifetime totals differ\nplain tracks:      %v\ncompressed tracks: %v", p, z)
			}
			failures += failed.Load()
			g, d := f.count(true)
			groups += g
			deltas += d
		})
	}
	if failures == 0 || groups < 50 || deltas < 50 {
		t.Fatalf("%d writes failed, %d compressed groups, %d deltas: the schedule exercises neither failures nor rolls", failures, groups, deltas)
	}
}
