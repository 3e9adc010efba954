package fuzz

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/encode"
	"github.com/moqstats/moqstats/internal/lossy"
	"github.com/moqstats/moqstats/internal/wiretest"
)

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "foo/bar", "a\"b\\c", "\b\f\n\r\t\x00\x1f\x7f", "</>&", "\u2028\u2029", "é\U0001F600", "\xff\xe2\x82", "a\xF1\x80\x80\xE1\x80\xC2b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := encode.AppendString([]byte("prefix"), s)
		if !bytes.HasPrefix(got, []byte("prefix")) {
			t.Fatalf("AppendString overwrote dst: %q", got)
		}
		got = got[len("prefix"):]
		if !json.Valid(got) || !utf8.Valid(got) {
			t.Fatalf("AppendString(%q) = %q: not valid JSON and UTF-8", s, got)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		if want := lossy.Fix(s); back != want {
			t.Fatalf("AppendString(%q) decodes to %q, want %q", s, back, want)
		}
		if utf8.ValidString(s) {
			if want := wiretest.SerdeString(s); !bytes.Equal(got, want) {
				t.Fatalf("AppendString(%q) = %s, serde_json writes %s", s, got, want)
			}
		}
	})
}

// FuzzFrame encodes a frame of arbitrary keys (split from one input) and
// values, and checks that encoding/json decodes it back to the same map.
func FuzzFrame(f *testing.F) {
	f.Add("a\x00b/c\x00", uint64(1), uint64(0), uint64(1<<63))
	f.Add("\xff\x00\"\x00", uint64(42), uint64(7), uint64(0))
	f.Fuzz(func(t *testing.T, joined string, a, b, c uint64) {
		raw := strings.Split(joined, "\x00")
		want := map[string]counters.Snapshot{}
		var keys []string
		var vals []counters.Snapshot
		for i, k := range raw {
			k = lossy.Fix(k)
			if _, dup := want[k]; dup {
				continue // frames have unique keys
			}
			v := counters.Snapshot{Announced: a, AnnouncedClosed: b, Broadcasts: c, Bytes: uint64(i) * a, Frames: a ^ c, Groups: b + c}
			want[k] = v
			keys = append(keys, string(encode.AppendString(nil, k)))
			vals = append(vals, v)
		}
		frame := encode.AppendBroadcastFrame(nil, keys, vals)
		var got map[string]wiretest.Snapshot
		if err := json.Unmarshal(frame, &got); err != nil {
			t.Fatalf("frame %q: %v", frame, err)
		}
		if len(got) != len(want) {
			t.Fatalf("decoded %d keys, want %d", len(got), len(want))
		}
		for k, w := range want {
			g := got[k]
			if g.Announced != w.Announced || g.AnnouncedClosed != w.AnnouncedClosed || g.Broadcasts != w.Broadcasts ||
				g.Bytes != w.Bytes || g.Frames != w.Frames || g.Groups != w.Groups {
				t.Fatalf("key %q decoded to %+v, want %+v", k, g, w)
			}
		}
	})
}
