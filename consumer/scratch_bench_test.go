package consumer

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func mkframe(n int) []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"customer%03d/live/%d":{"announced":1,"announced_closed":0,"broadcasts":%d,"broadcasts_closed":%d,"subscriptions":%d,"subscriptions_closed":%d,"bytes":%d,"frames":%d,"groups":%d}`, i%100, i, i*3, i*2, i*7, i*5, i*123456789, i*1000, i*10)
	}
	b.WriteByte('}')
	return []byte(b.String())
}

type stdTraffic struct {
	Announced           uint64 `json:"announced"`
	AnnouncedClosed     uint64 `json:"announced_closed"`
	AnnouncedBytes      uint64 `json:"announced_bytes"`
	Broadcasts          uint64 `json:"broadcasts"`
	BroadcastsClosed    uint64 `json:"broadcasts_closed"`
	Subscriptions       uint64 `json:"subscriptions"`
	SubscriptionsClosed uint64 `json:"subscriptions_closed"`
	Fetches             uint64 `json:"fetches"`
	Bytes               uint64 `json:"bytes"`
	Frames              uint64 `json:"frames"`
	Groups              uint64 `json:"groups"`
	Datagrams           uint64 `json:"datagrams"`
}

func BenchmarkScratch(b *testing.B) {
	f := mkframe(1000)
	b.Run("consumer", func(b *testing.B) {
		b.SetBytes(int64(len(f)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeTraffic(f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stdjson", func(b *testing.B) {
		b.SetBytes(int64(len(f)))
		b.ReportAllocs()
		for b.Loop() {
			var m map[string]stdTraffic
			if err := json.Unmarshal(f, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sonic-validate-only", func(b *testing.B) {
		b.SetBytes(int64(len(f)))
		for b.Loop() {
			var skip struct{}
			strictAPI.UnmarshalFromString(string(f), &skip)
		}
	})
	b.Run("sonic-typed", func(b *testing.B) {
		b.SetBytes(int64(len(f)))
		b.ReportAllocs()
		for b.Loop() {
			var m map[string]stdTraffic
			strictAPI.Unmarshal(f, &m)
		}
	})
}
