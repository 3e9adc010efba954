package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/bytedance/sonic"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/encode"
)

var tickSizes = []int{10_000, 100_000}

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
	for _, n := range tickSizes {
		paths := tickPaths(n)
		b.Run(fmt.Sprintf("changed/N=%d/moqstats", n), func(b *testing.B) {
			s := newStats(b)
			tracks := openTracks(s, paths)
			defer closeAll(tracks)
			s.Flush()
			b.ReportAllocs()
			b.ResetTimer()
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
			s := newStats(b)
			tracks := openTracks(s, paths)
			defer closeAll(tracks)
			s.Flush()
			s.Flush()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := s.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
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
type wireSnapshot struct {
	Announced           uint64 `json:"announced"`
	AnnouncedClosed     uint64 `json:"announced_closed"`
	Broadcasts          uint64 `json:"broadcasts"`
	BroadcastsClosed    uint64 `json:"broadcasts_closed"`
	Subscriptions       uint64 `json:"subscriptions"`
	SubscriptionsClosed uint64 `json:"subscriptions_closed"`
	Bytes               uint64 `json:"bytes"`
	Frames              uint64 `json:"frames"`
	Groups              uint64 `json:"groups"`
}

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
		frame[p] = wireSnapshot{v.Announced, v.AnnouncedClosed, v.Broadcasts, v.BroadcastsClosed, v.Subscriptions, v.SubscriptionsClosed, v.Bytes, v.Frames, v.Groups}
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
	b.Run(fmt.Sprintf("N=%d/encoding-json", n), func(b *testing.B) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
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
			b.Fatal("encoding/json wrote a different frame")
		}
	})
	b.Run(fmt.Sprintf("N=%d/sonic-std", n), func(b *testing.B) {
		var buf bytes.Buffer
		enc := sonic.ConfigStd.NewEncoder(&buf)
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
			b.Fatal("sonic wrote a different frame")
		}
	})
}
