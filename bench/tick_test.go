package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/bytedance/sonic"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/encode"
	"github.com/moqstats/moqstats/internal/wiretest"
)

var tickSizes = []int{10_000, 100_000}

// flushSizes are BenchmarkFlush's sizes: tickSizes and a million entries,
// which -short (make test's smoke run) leaves out.
func flushSizes() []int {
	if testing.Short() {
		return tickSizes
	}
	return append(slices.Clone(tickSizes), 1_000_000)
}

// maxTickEntries is MaxEntries for the tick benchmarks: above the largest
// size, which the default (65,536) would fold.
const maxTickEntries = 1 << 20

func tickPaths(n int) []string {
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("customer-%d/live/%d", i%997, i)
	}
	return paths
}

// BenchmarkFlush is target 5: one pass over N live entries that all
// changed since the last one, next to the obvious baseline: copy the
// atomics into a map and encoding/json.Marshal it. "idle" is the pass when
// nothing changed, which must allocate nothing that grows with N.
func BenchmarkFlush(b *testing.B) {
	for _, n := range flushSizes() {
		paths := tickPaths(n)
		b.Run(fmt.Sprintf("changed/N=%d/moqstats", n), func(b *testing.B) {
			s, tracks := flushSetup(b, paths)
			for range b.N {
				b.StopTimer()
				for _, t := range tracks {
					t.Bytes(1200)
				}
				b.StartTimer()
				if err := s.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("changed/N=%d/map-encoding-json", n), func(b *testing.B) {
			entries := make(map[string]*SeedEntry, n)
			for _, p := range paths {
				entries[p] = new(SeedEntry)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				for _, e := range entries {
					e.Publisher[0].Bytes.Add(1200)
				}
				b.StartTimer()
				frame := make(map[string]wireSnapshot, len(entries))
				for p, e := range entries {
					frame[p] = seedSnapshot(&e.Publisher[0])
				}
				out, err := json.Marshal(frame)
				if err != nil || len(out) == 0 {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("idle/N=%d/moqstats", n), func(b *testing.B) {
			s, _ := flushSetup(b, paths)
			for range b.N {
				if err := s.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// flushSetup opens a track guard on every path of a new Stats, with a
// frame bumped on each, writes them twice so that every buffer is sized,
// and resets the benchmark's timer and counters.
func flushSetup(b *testing.B, paths []string) (*moqstats.Stats, []*moqstats.TrackGuard) {
	s := newStatsConfig(b, moqstats.Config{MaxEntries: maxTickEntries})
	tracks := openTracks(s, paths)
	b.Cleanup(func() { closeAll(tracks) })
	s.Flush()
	s.Flush()
	b.ReportAllocs()
	b.ResetTimer()
	return s, tracks
}

func openTracks(s *moqstats.Stats, paths []string) []*moqstats.TrackGuard {
	h := s.Tier(moqstats.External)
	tracks := make([]*moqstats.TrackGuard, len(paths))
	for i, p := range paths {
		tracks[i] = h.Broadcast(p).PublisherTrack("video")
		tracks[i].Frame()
	}
	return tracks
}

func closeAll(tracks []*moqstats.TrackGuard) {
	for _, t := range tracks {
		t.Close()
	}
}

// wireSnapshot is what a straightforward implementation marshals.
type wireSnapshot = wiretest.Snapshot

func seedSnapshot(c *SeedCounters) wireSnapshot {
	return wireSnapshot{
		AnnouncedClosed:     c.AnnouncedClosed.Load(),
		SubscriptionsClosed: c.SubscriptionsClosed.Load(),
		BroadcastsClosed:    c.BroadcastsClosed.Load(),
		Announced:           c.Announced.Load(),
		Subscriptions:       c.Subscriptions.Load(),
		Broadcasts:          c.Broadcasts.Load(),
		Bytes:               c.Bytes.Load(),
		Frames:              c.Frames.Load(),
		Groups:              c.Groups.Load(),
	}
}

// jsonEncoder is what encoding/json's and sonic's encoders share.
type jsonEncoder interface {
	SetEscapeHTML(bool)
	Encode(any) error
}

// BenchmarkEncode is target 5's encoder part: the same sorted frame of N
// entries into a reused buffer, by moqstats' encoder, encoding/json and
// sonic.ConfigStd (both given the frame as the map they sort).
func BenchmarkEncode(b *testing.B) {
	const n = 100_000
	paths := tickPaths(n)
	slices.Sort(paths)
	keys := make([]string, n)
	vals := make([]counters.Snapshot, n)
	frame := make(map[string]wireSnapshot, n)
	for i, p := range paths {
		keys[i] = string(encode.AppendString(nil, p))
		vals[i] = counters.Snapshot{Announced: 1, Subscriptions: 3, SubscriptionsClosed: 1, Broadcasts: 2, Bytes: uint64(i) * 1200, Frames: uint64(i), Groups: uint64(i / 30)}
		v := vals[i]
		frame[p] = wireSnapshot{Announced: v.Announced, AnnouncedClosed: v.AnnouncedClosed, Broadcasts: v.Broadcasts, BroadcastsClosed: v.BroadcastsClosed,
			Subscriptions: v.Subscriptions, SubscriptionsClosed: v.SubscriptionsClosed, Bytes: v.Bytes, Frames: v.Frames, Groups: v.Groups}
	}
	want := encode.AppendBroadcastFrame(nil, keys, vals)

	b.Run(fmt.Sprintf("N=%d/moqstats", n), func(b *testing.B) {
		buf := make([]byte, 0, len(want))
		b.SetBytes(int64(len(want)))
		b.ReportAllocs()
		for b.Loop() {
			buf = encode.AppendBroadcastFrame(buf[:0], keys, vals)
		}
		if !bytes.Equal(buf, want) {
			b.Fatal("frame changed")
		}
	})
	for name, newEncoder := range map[string]func(io.Writer) jsonEncoder{
		"encoding-json": func(w io.Writer) jsonEncoder { return json.NewEncoder(w) },
		"sonic-std":     func(w io.Writer) jsonEncoder { return sonic.ConfigStd.NewEncoder(w) },
	} {
		b.Run(fmt.Sprintf("N=%d/%s", n, name), func(b *testing.B) {
			var buf bytes.Buffer
			enc := newEncoder(&buf)
			enc.SetEscapeHTML(false)
			b.SetBytes(int64(len(want)))
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := enc.Encode(frame); err != nil {
					b.Fatal(err)
				}
			}
			if !bytes.Equal(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), want) {
				b.Fatalf("%s wrote a different frame", name)
			}
		})
	}
}
