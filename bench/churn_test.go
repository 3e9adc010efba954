package bench

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/moqstats/moqstats"
)

// BenchmarkChurn is targets 6 and 9: guards opened and closed on existing
// entries from every P, through the public path a relay takes
// (Broadcast(path), then a track guard), next to a mutex-guarded map of
// entries, with the leak check on (the default) and off. "hot" has every
// goroutine on one broadcast; "spread" over 1024.
func BenchmarkChurn(b *testing.B) {
	for _, k := range []int{1, 1024} {
		name := "hot"
		if k > 1 {
			name = "spread"
		}
		paths := make([]string, k)
		for i := range paths {
			paths[i] = fmt.Sprintf("customer-%d/live/%d", i%97, i)
		}
		for _, variant := range []struct {
			name string
			cfg  moqstats.Config
		}{
			{"moqstats", moqstats.Config{}},
			{"moqstats-noleakcheck", moqstats.Config{DisableLeakCheck: true}},
		} {
			b.Run(name+"/"+variant.name, func(b *testing.B) {
				s := newStatsConfig(b, variant.cfg)
				h := s.Tier(moqstats.External)
				for _, p := range paths { // keep every entry live
					g := h.Broadcast(p).Publisher()
					defer g.Close()
				}
				var next atomic.Uint32
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := int(next.Add(1)) * 7919
					for pb.Next() {
						t := h.Broadcast(paths[i%k]).PublisherTrack("video")
						t.Close()
						i++
					}
				})
			})
		}
		b.Run(name+"/mutex-map", func(b *testing.B) {
			m := NewMutexMap()
			for _, p := range paths {
				m.Open(p)
			}
			var next atomic.Uint32
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)) * 7919
				for pb.Next() {
					e, t := m.Open(paths[i%k])
					m.Close(e, t)
					i++
				}
			})
		})
	}
}

// BenchmarkGuardOpenClose reports the cost and allocations of each guard
// kind's open and close on a live entry, with the leak check off (target 3:
// at most 2 allocations) and on (a guard closed young is never registered,
// so the check adds no allocation here; one left open past a pass or a
// collection gets runtime.AddCleanup's).
func BenchmarkGuardOpenClose(b *testing.B) {
	b.Run("leakcheck=off", func(b *testing.B) {
		benchmarkGuardOpenClose(b, newStatsConfig(b, moqstats.Config{DisableLeakCheck: true}))
	})
	b.Run("leakcheck=on", func(b *testing.B) { benchmarkGuardOpenClose(b, newStats(b)) })
}

func benchmarkGuardOpenClose(b *testing.B, s *moqstats.Stats) {
	h := s.Tier(moqstats.External)
	bs := h.Broadcast("live")
	pin := bs.Publisher()
	defer pin.Close()
	viewer := h.PublisherBroadcasts()
	b.Run("track", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pin.Track("video").Close()
		}
	})
	b.Run("broadcast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			bs.Publisher().Close()
		}
	})
	b.Run("subscription", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			viewer.Subscribe("live").Close()
		}
	})
	b.Run("session", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h.Session("acme").Close()
		}
	})
}
