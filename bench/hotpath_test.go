package bench

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/puzpuzpuz/xsync/v3"

	"github.com/moqstats/moqstats"
)

// newStats returns an enabled Stats on a discarding origin whose passes
// run only when a benchmark calls Flush.
func newStats(b *testing.B) *moqstats.Stats {
	b.Helper()
	return newStatsConfig(b, moqstats.Config{})
}

// newStatsConfig is newStats with cfg's other settings.
func newStatsConfig(b *testing.B, cfg moqstats.Config) *moqstats.Stats {
	b.Helper()
	cfg.Origin, cfg.Interval = &Discard{}, time.Hour
	s, err := moqstats.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkContended is target 1: every goroutine bumps Bytes(1200) and
// Frame() on its own track guard of one broadcast. Run with -cpu 1,2,8,64.
func BenchmarkContended(b *testing.B) {
	b.Run("moqstats", func(b *testing.B) {
		s := newStats(b)
		bs := s.Tier(moqstats.External).Broadcast("hot/broadcast")
		pin := bs.Publisher()
		defer pin.Close()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			t := pin.Track("video")
			defer t.Close()
			for pb.Next() {
				t.Bytes(1200)
				t.Frame()
			}
		})
	})
	b.Run("seed-atomic", func(b *testing.B) {
		e := new(SeedEntry)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			t := NewSeedTrack(e, 0)
			defer t.Close()
			for pb.Next() {
				t.Bytes(1200)
				t.Frame()
			}
		})
	})
	b.Run("xsync-counter", func(b *testing.B) {
		bytes, frames := xsync.NewCounter(), xsync.NewCounter()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				bytes.Add(1200)
				frames.Inc()
			}
		})
	})
	b.Run("prometheus", func(b *testing.B) {
		bytes := prometheus.NewCounter(prometheus.CounterOpts{Name: "bytes"})
		frames := prometheus.NewCounter(prometheus.CounterOpts{Name: "frames"})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				bytes.Add(1200)
				frames.Inc()
			}
		})
	})
	b.Run("victoriametrics", func(b *testing.B) {
		set := metrics.NewSet()
		bytes, frames := set.NewCounter("bytes"), set.NewCounter("frames")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				bytes.Add(1200)
				frames.Inc()
			}
		})
	})
}

// BenchmarkUncontended is target 2: one goroutine, the same two bumps,
// next to two plain atomic adds.
func BenchmarkUncontended(b *testing.B) {
	b.Run("moqstats", func(b *testing.B) {
		s := newStats(b)
		t := s.Tier(moqstats.External).Broadcast("one/viewer").PublisherTrack("video")
		defer t.Close()
		b.ReportAllocs()
		for b.Loop() {
			t.Bytes(1200)
			t.Frame()
		}
	})
	b.Run("two-atomic-adds", func(b *testing.B) {
		var bytes, frames atomic.Uint64
		b.ReportAllocs()
		for b.Loop() {
			bytes.Add(1200)
			frames.Add(1)
		}
	})
	b.Run("seed-atomic", func(b *testing.B) {
		t := NewSeedTrack(new(SeedEntry), 0)
		b.ReportAllocs()
		for b.Loop() {
			t.Bytes(1200)
			t.Frame()
		}
	})
	b.Run("disabled", func(b *testing.B) {
		s, _ := moqstats.New(moqstats.Config{})
		t := s.Tier(moqstats.External).Broadcast("x").PublisherTrack("video")
		b.ReportAllocs()
		for b.Loop() {
			t.Bytes(1200)
			t.Frame()
		}
	})
}
