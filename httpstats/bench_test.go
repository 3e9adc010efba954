package httpstats

import (
	"strconv"
	"testing"
)

// BenchmarkWriteFrame measures a WriteFrame of a 1 KiB frame on a track
// with n streams whose clients never read: the copy, and one queue push
// (or, once queues are full, a resync mark) per stream, without waiting.
func BenchmarkWriteFrame(b *testing.B) {
	frame := make([]byte, 1024)
	for _, n := range []int{0, 1, 100} {
		b.Run("streams="+strconv.Itoa(n), func(b *testing.B) {
			o, err := New(Options{MaxStreams: n + 1})
			if err != nil {
				b.Fatal(err)
			}
			bc, err := o.Publish("p", []string{"t.json"})
			if err != nil {
				b.Fatal(err)
			}
			for range n {
				s, code, msg := o.subscribe("t.json", position{}, false)
				if s == nil {
					b.Fatalf("subscribe: %d %s", code, msg)
				}
				defer o.unsubscribe(s)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if err := bc.WriteFrame("t.json", frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
