package bench

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
)

// BenchmarkWire is targets 11 and 12: passes over N live broadcasts of
// which a given share changed since the last pass, plain tracks only and
// with their compressed siblings (Config.Compressed), reporting the bytes
// each kind of track writes per pass and the pass time. Run it for 300
// passes (-benchtime 300x) so that group rolls, and their snapshots, are
// in the average. With -short only N=10000 runs.
func BenchmarkWire(b *testing.B) {
	for _, n := range tickSizes {
		if testing.Short() && n > 10_000 {
			continue
		}
		paths := tickPaths(n)
		for _, pct := range []float64{0.1, 1, 100} {
			for _, compressed := range []bool{false, true} {
				kind := "plain"
				if compressed {
					kind = "compressed"
				}
				b.Run(fmt.Sprintf("N=%d/changing=%g%%/%s", n, pct, kind), func(b *testing.B) {
					benchmarkWire(b, paths, pct, compressed)
				})
			}
		}
	}
}

func benchmarkWire(b *testing.B, paths []string, pct float64, compressed bool) {
	d := &Discard{}
	s, err := moqstats.New(moqstats.Config{Origin: d, Interval: time.Hour, Compressed: compressed, MaxEntries: maxTickEntries})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := s.Tier(moqstats.External)
	tracks := make([]*moqstats.TrackGuard, len(paths))
	for i, p := range paths {
		tracks[i] = h.Broadcast(p).PublisherTrack("video")
		defer tracks[i].Close()
	}
	s.Flush() // every key new
	s.Flush() // steady
	changing := max(1, int(float64(len(paths))*pct/100))
	r := rand.New(rand.NewPCG(1, 2))
	d.Frames.Store(0)
	d.Bytes.Store(0)
	d.ZFrames.Store(0)
	d.ZBytes.Store(0)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for range changing {
			t := tracks[r.IntN(len(tracks))]
			t.Bytes(1200)
			t.Frame()
		}
		b.StartTimer()
		if err := s.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(d.Bytes.Load())/float64(b.N), "plain-B/pass")
	if compressed {
		b.ReportMetric(float64(d.ZBytes.Load())/float64(b.N), "z-B/pass")
	}
}
