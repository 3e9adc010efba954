package encode

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bytedance/sonic"

	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/internal/lossy"
	"github.com/moqstats/moqstats/internal/race"
	"github.com/moqstats/moqstats/internal/wiretest"
)

func TestAppendStringEscapesExactlyWhatSerdeJSONEscapes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"foo/bar", `"foo/bar"`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00", `"\u0000"`},
		{"\x01\x0b\x0e\x1b\x1f", `"\u0001\u000b\u000e\u001b\u001f"`},
		{"</script>&amp;", `"</script>&amp;"`},
		{"\x7f", "\"\x7f\""},
		{"\u2028\u2029", "\"\u2028\u2029\""},
		{"caf\u00e9 \U0001F600 \uFFFD", "\"caf\u00e9 \U0001F600 \uFFFD\""},
		{"\xff", "\"\uFFFD\""},
		{"a\xE2\x82b", "\"a\uFFFDb\""},
		{"a\xF1\x80\x80\xE1\x80\xC2b", "\"a\uFFFD\uFFFD\uFFFDb\""},
	} {
		if got := string(AppendString(nil, tc.in)); got != tc.want {
			t.Errorf("AppendString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestAppendStringEveryASCIIByte checks all 128 ASCII bytes against the
// rule stated in the package doc, independently of the lookup table.
func TestAppendStringEveryASCIIByte(t *testing.T) {
	short := map[byte]string{'"': `\"`, '\\': `\\`, '\b': `\b`, '\f': `\f`, '\n': `\n`, '\r': `\r`, '\t': `\t`}
	for b := range byte(utf8.RuneSelf) {
		var want string
		switch {
		case short[b] != "":
			want = short[b]
		case b < 0x20:
			want = `\u00` + string("0123456789abcdef"[b>>4]) + string("0123456789abcdef"[b&0xF])
		default:
			want = string(rune(b))
		}
		if got := string(AppendString(nil, string(rune(b)))); got != `"`+want+`"` {
			t.Errorf("byte %#02x: got %s, want %q", b, got, `"`+want+`"`)
		}
	}
}

func randomString(r *rand.Rand) string {
	alphabet := []rune{'a', 'Z', '/', '"', '\\', '\b', '\f', '\n', '\r', '\t', 0, 0x1f, 0x7f, '<', '&', 'é', '\u2028', '\u2029', '\U0001F600', '\uFFFD', ' '}
	n := r.IntN(24)
	var b strings.Builder
	for range n {
		if r.IntN(8) == 0 {
			b.WriteRune(rune(r.IntN(0x80)))
		} else {
			b.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
	}
	return b.String()
}

func TestAppendStringMatchesEncodingJSONWithoutHTMLEscapes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		s := randomString(r)
		if got, want := string(AppendString(nil, s)), string(wiretest.SerdeString(s)); got != want {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestAppendStringOutputDecodesToLossyInput(t *testing.T) {
	for _, s := range []string{"\xff\xfe", "ok\xE2\x82", "\xed\xa0\x80x", "a\xF1\x80\x80\xE1\x80\xC2b\x80c\x80\xBFd"} {
		out := AppendString(nil, s)
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("AppendString(%q) = %q is not valid JSON and UTF-8", s, out)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if want := lossy.Fix(s); got != want {
			t.Fatalf("AppendString(%q) decodes to %q, want %q", s, got, want)
		}
	}
}

func TestAppendSnapshotExactBytes(t *testing.T) {
	s := counters.Snapshot{Announced: 1, Broadcasts: 1, Subscriptions: 1, Bytes: 42, Frames: 1}
	want := `{"announced":1,"announced_closed":0,"broadcasts":1,"broadcasts_closed":0,"subscriptions":1,"subscriptions_closed":0,"bytes":42,"frames":1,"groups":0}`
	if got := string(AppendSnapshot(nil, &s)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	m := snap(math.MaxUint64, 2, 3, 4, 5, 6, 7, 8, math.MaxUint64)
	want = `{"announced":18446744073709551615,"announced_closed":2,"broadcasts":3,"broadcasts_closed":4,"subscriptions":5,"subscriptions_closed":6,"bytes":7,"frames":8,"groups":18446744073709551615}`
	if got := string(AppendSnapshot(nil, &m)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestFramesExactBytes(t *testing.T) {
	k := func(s string) string { return string(AppendString(nil, s)) }
	one := []counters.Snapshot{{Announced: 1, Broadcasts: 1, Subscriptions: 1, Bytes: 42, Frames: 1}}
	for _, tc := range []struct{ name, got, want string }{
		{"empty broadcast frame", string(AppendBroadcastFrame(nil, nil, nil)), `{}`},
		{"empty session frame", string(AppendSessionFrame(nil, nil, nil)), `{}`},
		{"issue example", string(AppendBroadcastFrame(nil, []string{k("foo/bar")}, one)),
			`{"foo/bar":{"announced":1,"announced_closed":0,"broadcasts":1,"broadcasts_closed":0,"subscriptions":1,"subscriptions_closed":0,"bytes":42,"frames":1,"groups":0}}`},
		{"two keys", string(AppendBroadcastFrame(nil, []string{k(""), k("a\"b")}, make([]counters.Snapshot, 2))),
			`{"":{"announced":0,"announced_closed":0,"broadcasts":0,"broadcasts_closed":0,"subscriptions":0,"subscriptions_closed":0,"bytes":0,"frames":0,"groups":0},"a\"b":{"announced":0,"announced_closed":0,"broadcasts":0,"broadcasts_closed":0,"subscriptions":0,"subscriptions_closed":0,"bytes":0,"frames":0,"groups":0}}`},
		{"sessions", string(AppendSessionFrame(nil, []string{k("acme"), k("globex")}, []counters.SessionSnapshot{{Sessions: 2}, {Sessions: 1, SessionsClosed: 1}})),
			`{"acme":{"sessions":2,"sessions_closed":0},"globex":{"sessions":1,"sessions_closed":1}}`},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tc.name, tc.got, tc.want)
		}
	}
}

// snap builds a Snapshot from its fields in wire order.
func snap(a, ac, b, bc, s, sc, by, f, g uint64) counters.Snapshot {
	return counters.Snapshot{Announced: a, AnnouncedClosed: ac, Broadcasts: b, BroadcastsClosed: bc,
		Subscriptions: s, SubscriptionsClosed: sc, Bytes: by, Frames: f, Groups: g}
}

func TestFrameRoundTripsThroughEncodingJSONAndSonic(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	keySet := map[string]bool{}
	for len(keySet) < 50 {
		keySet[randomString(r)] = true
	}
	var keys, raw []string
	var vals []counters.Snapshot
	for s := range keySet {
		raw = append(raw, s)
		keys = append(keys, string(AppendString(nil, s)))
		vals = append(vals, snap(r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64()))
	}
	frame := AppendBroadcastFrame(nil, keys, vals)
	for name, unmarshal := range map[string]func([]byte, any) error{
		"encoding/json": json.Unmarshal,
		"sonic":         sonic.ConfigStd.Unmarshal,
	} {
		var got map[string]wiretest.Snapshot
		if err := unmarshal(frame, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != len(raw) {
			t.Fatalf("%s decoded %d keys, want %d", name, len(got), len(raw))
		}
		for i, s := range raw {
			v := vals[i]
			if got[s] != (wiretest.Snapshot{Announced: v.Announced, AnnouncedClosed: v.AnnouncedClosed, Broadcasts: v.Broadcasts, BroadcastsClosed: v.BroadcastsClosed,
				Subscriptions: v.Subscriptions, SubscriptionsClosed: v.SubscriptionsClosed, Bytes: v.Bytes, Frames: v.Frames, Groups: v.Groups}) {
				t.Fatalf("%s: key %q decoded to %+v, want %+v", name, s, got[s], v)
			}
		}
	}
}

func TestMismatchedFrameLengthsPanicWithBUG(t *testing.T) {
	defer func() {
		if r, _ := recover().(string); !strings.HasPrefix(r, "BUG: ") {
			t.Fatalf("recover() = %q, want a BUG: panic", r)
		}
	}()
	AppendBroadcastFrame(nil, []string{`"a"`}, nil)
}

var sink []byte

func TestEncodingIntoReusedBufferAllocatesNothing(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates")
	}
	keys := []string{string(AppendString(nil, "demo/bbb")), string(AppendString(nil, "demo/ccc"))}
	vals := []counters.Snapshot{{Bytes: 1 << 40}, {Frames: 12345}}
	sessions := []counters.SessionSnapshot{{Sessions: 3, SessionsClosed: 1}, {Sessions: 7, SessionsClosed: 7}}
	buf := make([]byte, 0, 4096)
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"AppendString", func() { sink = AppendString(buf[:0], "a/\"b\"\n\u00e9\xff") }},
		{"AppendBroadcastFrame", func() { sink = AppendBroadcastFrame(buf[:0], keys, vals) }},
		{"AppendSessionFrame", func() { sink = AppendSessionFrame(buf[:0], keys, sessions) }},
	} {
		if n := testing.AllocsPerRun(100, tc.f); n != 0 {
			t.Errorf("%s allocates %v times into a reused buffer, want 0", tc.name, n)
		}
	}
}

func randomSnapshot(r *rand.Rand) counters.Snapshot {
	v := func() uint64 {
		if r.IntN(3) == 0 {
			return r.Uint64() // up to the largest uint64
		}
		return uint64(r.IntN(10))
	}
	return counters.Snapshot{
		Announced: v(), AnnouncedClosed: v(), Broadcasts: v(), BroadcastsClosed: v(),
		Subscriptions: v(), SubscriptionsClosed: v(), Bytes: v(), Frames: v(), Groups: v(),
		AnnouncedBytes: v(), Fetches: v(), Datagrams: v(),
	}
}

// AppendSnapshotAll writes exactly what encoding/json writes for the
// twelve-field value, field order included.
func TestAppendSnapshotAllMatchesTheTwelveFieldShape(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 12))
	for range 1000 {
		s := randomSnapshot(r)
		want, _ := json.Marshal(wiretest.SnapshotAll{
			Announced: s.Announced, AnnouncedClosed: s.AnnouncedClosed, AnnouncedBytes: s.AnnouncedBytes,
			Broadcasts: s.Broadcasts, BroadcastsClosed: s.BroadcastsClosed, Subscriptions: s.Subscriptions,
			SubscriptionsClosed: s.SubscriptionsClosed, Fetches: s.Fetches, Bytes: s.Bytes, Frames: s.Frames,
			Groups: s.Groups, Datagrams: s.Datagrams,
		})
		if got := AppendSnapshotAll(nil, &s); string(got) != string(want) {
			t.Fatalf("AppendSnapshotAll = %s, want %s", got, want)
		}
	}
}

// exact decodes JSON with numbers as their text, so large uint64s compare
// exactly.
func exact(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

// A patch applied (RFC 7396) to the old value gives the new one, and holds
// only the fields that differ.
func TestAppendSnapshotPatchTurnsOldIntoNew(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 12))
	for range 2000 {
		old, cur := randomSnapshot(r), randomSnapshot(r)
		if r.IntN(2) == 0 {
			cur = old
			cur.Bytes += uint64(r.IntN(3))
		}
		for _, all := range []bool{false, true} {
			enc := AppendSnapshot
			if all {
				enc = AppendSnapshotAll
			}
			o, c := exact(t, enc(nil, &old)), exact(t, enc(nil, &cur))
			patch := AppendSnapshotPatch(nil, &old, &cur, all)
			p := exact(t, patch)
			if got := wiretest.MergePatch(o, p); !reflect.DeepEqual(got, c) {
				t.Fatalf("old + %s = %v, want %v", patch, got, c)
			}
			o = exact(t, enc(nil, &old)) // MergePatch merged into the first
			for f, v := range p.(map[string]any) {
				if o.(map[string]any)[f] == v {
					t.Fatalf("patch %s carries unchanged field %s", patch, f)
				}
			}
		}
	}
	var a, b counters.SessionSnapshot
	for _, tc := range []struct {
		old, cur counters.SessionSnapshot
		want     string
	}{
		{a, b, `{}`},
		{a, counters.SessionSnapshot{Sessions: 2}, `{"sessions":2}`},
		{counters.SessionSnapshot{Sessions: 2}, counters.SessionSnapshot{Sessions: 2, SessionsClosed: 1}, `{"sessions_closed":1}`},
		{a, counters.SessionSnapshot{Sessions: 3, SessionsClosed: 1}, `{"sessions":3,"sessions_closed":1}`},
	} {
		if got := string(AppendSessionPatch(nil, &tc.old, &tc.cur)); got != tc.want {
			t.Errorf("AppendSessionPatch(%+v, %+v) = %s, want %s", tc.old, tc.cur, got, tc.want)
		}
	}
}
