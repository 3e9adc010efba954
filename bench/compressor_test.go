package bench

import (
	"bytes"
	stdflate "compress/flate"
	"io"
	"testing"
	"time"

	kpflate "github.com/klauspost/compress/flate"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/memorigin"
)

// BenchmarkCompressor is the measurement behind zframe's choice of
// DEFLATE library: one snapshot group's first frame, a publisher.json
// frame of 100 000 broadcasts (about 18 MB), compressed as a new raw
// stream at level 6 and sync-flushed, by compress/flate and by
// github.com/klauspost/compress/flate, each writer reused through Reset as
// zframe reuses its own. It reports the compressed size as out-B.
func BenchmarkCompressor(b *testing.B) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	frame := publisherFrame(b, tickPaths(n))
	type writer interface {
		Write([]byte) (int, error)
		Flush() error
		Reset(w io.Writer)
	}
	std, err := stdflate.NewWriter(nil, 6)
	if err != nil {
		b.Fatal(err)
	}
	kp, err := kpflate.NewWriter(nil, 6)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		w    writer
	}{{"compress-flate", std}, {"klauspost", kp}} {
		b.Run(c.name, func(b *testing.B) {
			var out bytes.Buffer
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				c.w.Reset(&out)
				if _, err := c.w.Write(frame); err != nil {
					b.Fatal(err)
				}
				if err := c.w.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(out.Len()), "out-B")
		})
	}
}

// publisherFrame returns the publisher.json frame of a Stats with one
// bumped track guard on each of paths.
func publisherFrame(b *testing.B, paths []string) []byte {
	o := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour, MaxEntries: maxTickEntries})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := s.Tier(moqstats.External)
	for i, p := range paths {
		t := h.Broadcast(p).PublisherTrack("video")
		t.Bytes(uint64(1200 * (i%50 + 1)))
		t.Frame()
		defer t.Close()
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	frame, ok := o.Latest(moqstats.DefaultPrefix+"/node", "publisher.json")
	if !ok || len(frame) < 100*len(paths) {
		b.Fatalf("publisher.json frame: %d bytes (ok %v) for %d paths", len(frame), ok, len(paths))
	}
	return frame
}
