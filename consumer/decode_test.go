package consumer

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/bytedance/sonic"

	"github.com/moqstats/moqstats/internal/wiretest"
)

func TestTrafficIsAnArrayOfCounters(t *testing.T) {
	if got, want := unsafe.Sizeof(Traffic{}), uintptr(NumTrafficFields)*8; got != want {
		t.Fatalf("Sizeof(Traffic) = %d, want %d: Field and counters index it as an array", got, want)
	}
	if got, want := unsafe.Sizeof(Presence{}), uintptr(NumPresenceFields)*8; got != want {
		t.Fatalf("Sizeof(Presence) = %d, want %d", got, want)
	}
	// Each field's wire name matches the struct field at the same index.
	rt := reflect.TypeFor[Traffic]()
	for i := range NumTrafficFields {
		name := strings.ReplaceAll(TrafficField(i).String(), "_", "")
		if got := strings.ToLower(rt.Field(i).Name); got != name {
			t.Errorf("field %d is %s, wire name %s", i, rt.Field(i).Name, TrafficField(i))
		}
		var tr Traffic
		tr.counters()[i] = 7
		if tr.Field(TrafficField(i)) != 7 || reflect.ValueOf(tr).Field(i).Uint() != 7 {
			t.Errorf("Field(%s) does not address struct field %d", TrafficField(i), i)
		}
	}
}

func TestDecodeReadsWhatProducersWrite(t *testing.T) {
	nine := `{"a/b":{"announced":1,"announced_closed":0,"broadcasts":2,"broadcasts_closed":1,"subscriptions":3,"subscriptions_closed":2,"bytes":42,"frames":5,"groups":1},"c":{"announced":0,"announced_closed":0,"broadcasts":0,"broadcasts_closed":0,"subscriptions":0,"subscriptions_closed":0,"bytes":0,"frames":0,"groups":0}}`
	twelve := `{"anon/foo":{"announced":1,"announced_closed":0,"announced_bytes":8,"broadcasts":1,"broadcasts_closed":0,"subscriptions":2,"subscriptions_closed":0,"fetches":0,"bytes":234,"frames":12,"groups":1,"datagrams":3}}`
	cases := []struct {
		name, frame string
		want        TrafficFrame
	}{
		{"empty", `{}`, TrafficFrame{}},
		{"moqstats nine fields", nine, TrafficFrame{
			"a/b": {Announced: 1, Broadcasts: 2, BroadcastsClosed: 1, Subscriptions: 3, SubscriptionsClosed: 2, Bytes: 42, Frames: 5, Groups: 1},
			"c":   {},
		}},
		{"upstream twelve fields", twelve, TrafficFrame{
			"anon/foo": {Announced: 1, AnnouncedBytes: 8, Broadcasts: 1, Subscriptions: 2, Bytes: 234, Frames: 12, Groups: 1, Datagrams: 3},
		}},
		{"missing fields read as zero", `{"x":{"bytes":9}}`, TrafficFrame{"x": {Bytes: 9}}},
		{"unknown members ignored whatever they hold", `{"x":{"bytes":9,"future":{"a":[1,2.5,-3e9,"s",null,true]},"Bytes":1,"n":null}}`, TrafficFrame{"x": {Bytes: 9}}},
		{"largest counter", `{"x":{"bytes":18446744073709551615}}`, TrafficFrame{"x": {Bytes: 1<<64 - 1}}},
		{"whitespace and unsorted keys", " {\n\t\"b\" : { \"frames\" : 1 } ,\r\n \"a\":{}} \n", TrafficFrame{"a": {}, "b": {Frames: 1}}},
		{"escapes in keys", `{"a\"b\\c\u0001\u00e9\ud83d\ude00":{}}`, TrafficFrame{"a\"b\\c\x01é😀": {}}},
		{"the empty key", `{"":{"bytes":1}}`, TrafficFrame{"": {Bytes: 1}}},
		{"numbers beyond float64 in ignored members", `{"x":{"big":1e400,"neg":-1E999,"long":123456789012345678901234567890}}`, TrafficFrame{"x": {}}},
	}
	for _, c := range cases {
		got, err := DecodeTraffic([]byte(c.frame))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}

	p, err := DecodePresence([]byte(`{"":{"sessions":1,"sessions_closed":1},"acme":{"sessions":2,"sessions_closed":0,"extra":[]}}`))
	if want := (PresenceFrame{"": {1, 1}, "acme": {2, 0}}); err != nil || !reflect.DeepEqual(p, want) {
		t.Fatalf("DecodePresence = %+v, %v; want %+v", p, err, want)
	}
}

// hostile frames, each with the kind of error it must get.
var hostile = []struct {
	name, frame string
	kind        error
}{
	{"empty", ``, ErrSyntax},
	{"root null", `null`, ErrShape},
	{"root array", `[{"a":{}}]`, ErrShape},
	{"root string", `"x"`, ErrShape},
	{"root number", `12`, ErrShape},
	{"root bool", `true`, ErrShape},
	{"entry null", `{"a":null}`, ErrShape},
	{"entry array", `{"a":[]}`, ErrShape},
	{"entry number", `{"a":1}`, ErrShape},
	{"entry string", `{"a":"x"}`, ErrShape},
	{"counter null", `{"a":{"bytes":null}}`, ErrCounter},
	{"counter string", `{"a":{"bytes":"1"}}`, ErrCounter},
	{"counter bool", `{"a":{"bytes":true}}`, ErrCounter},
	{"counter object", `{"a":{"bytes":{}}}`, ErrCounter},
	{"counter array", `{"a":{"bytes":[1]}}`, ErrCounter},
	{"counter negative", `{"a":{"bytes":-1}}`, ErrCounter},
	{"counter negative zero", `{"a":{"bytes":-0}}`, ErrCounter},
	{"counter fraction", `{"a":{"bytes":1.0}}`, ErrCounter},
	{"counter exponent", `{"a":{"bytes":1e3}}`, ErrCounter},
	{"counter huge exponent", `{"a":{"bytes":1E400}}`, ErrCounter},
	{"counter beyond uint64", `{"a":{"bytes":18446744073709551616}}`, ErrCounter},
	{"counter far beyond uint64", `{"a":{"bytes":99999999999999999999999999999}}`, ErrCounter},
	{"session counter negative", `{"a":{"sessions":-5}}`, ErrCounter},
	{"duplicate key", `{"a":{},"a":{}}`, ErrDuplicateKey},
	{"duplicate key out of order", `{"b":{},"a":{},"b":{}}`, ErrDuplicateKey},
	{"duplicate key by escape", `{"a":{},"\u0061":{}}`, ErrDuplicateKey},
	{"duplicate counter", `{"a":{"bytes":1,"bytes":1}}`, ErrDuplicateKey},
	{"duplicate ignored member", `{"a":{"x":1,"x":1}}`, ErrDuplicateKey},
	{"duplicate ignored member among many", `{"a":{"m1":0,"m2":0,"m3":0,"m4":0,"m5":0,"m6":0,"m7":0,"m8":0,"m9":0,"m10":0,"m3":0}}`, ErrDuplicateKey},
	{"invalid UTF-8 in key", "{\"\xff\":{}}", ErrInvalidUTF8},
	{"invalid UTF-8 in ignored string", "{\"a\":{\"x\":\"\xc3\x28\"}}", ErrInvalidUTF8},
	{"surrogate encoded in UTF-8", "{\"\xed\xa0\x80\":{}}", ErrInvalidUTF8},
	{"unpaired low surrogate escape in key", `{"\udc00":{}}`, ErrInvalidUTF8},
	{"unpaired high surrogate escape in ignored value", `{"a":{"x":["\ud800x"]}}`, ErrInvalidUTF8},
	{"high surrogate then a non-surrogate escape", `{"a":{"x":"\ud800\u0041"}}`, ErrInvalidUTF8},
	{"control byte in key", "{\"a\x01\":{}}", ErrSyntax},
	{"raw newline in ignored string", "{\"a\":{\"x\":\"l1\nl2\"}}", ErrSyntax},
	{"bad escape in ignored string", `{"a":{"x":"\q"}}`, ErrSyntax},
	{"bad literal in ignored value", `{"a":{"x":[tru]}}`, ErrSyntax},
	{"leading zero", `{"a":{"bytes":01}}`, ErrSyntax},
	{"trailing comma", `{"a":{},}`, ErrSyntax},
	{"trailing garbage", `{"a":{}} x`, ErrSyntax},
	{"trailing object", `{"a":{}}{}`, ErrSyntax},
	{"trailing NUL", "{\"a\":{}}\x00", ErrSyntax},
	{"truncated", `{"a":{"bytes":1`, ErrSyntax},
	{"byte order mark", "\ufeff{}", ErrSyntax},
	{"deep nesting in ignored member", `{"a":{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`, ErrTooDeep},
	{"deep objects in ignored member", `{"a":{"x":` + strings.Repeat(`{"y":`, 100) + "0" + strings.Repeat("}", 100) + `}}`, ErrTooDeep},
	{"nesting beyond sonic's own limit", `{"a":{"x":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}`, ErrTooDeep},
}

func TestDecodeRejectsHostileFrames(t *testing.T) {
	for _, c := range hostile {
		got, err := DecodeTraffic([]byte(c.frame))
		if c.name == "session counter negative" {
			got2, err2 := DecodePresence([]byte(c.frame))
			got, err = nil, err2
			if got2 != nil {
				t.Errorf("%s: got frame %v", c.name, got2)
			}
		}
		var fe *FrameError
		switch {
		case err == nil:
			t.Errorf("%s: %q decoded to %v, want an error", c.name, c.frame, got)
		case !errors.As(err, &fe) || !errors.Is(err, ErrInvalidFrame):
			t.Errorf("%s: error %v is not a *FrameError matching ErrInvalidFrame", c.name, err)
		case !errors.Is(err, c.kind):
			t.Errorf("%s: error %q, want kind %q", c.name, err, c.kind)
		case got != nil:
			t.Errorf("%s: got a frame along with the error", c.name)
		}
	}
}

func TestDecodeErrorsNameTheEntryAndMember(t *testing.T) {
	_, err := DecodeTraffic([]byte(`{"ok":{},"acme/live":{"frames":1,"bytes":-7}}`))
	want := `consumer: invalid frame: invalid counter: entry "acme/live" member "bytes": negative number -7`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	long := strings.Repeat("é", 1000)
	_, err = DecodeTraffic([]byte(`{"` + long + `":null}`))
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error for a 2000-byte key is %d bytes, want a truncated key: %v", len(err.Error()), err)
	}
}

func TestDecodeLimits(t *testing.T) {
	frame := []byte(`{"a":{},"b":{},"c":{"x":[[1]]}}`)
	cases := []struct {
		d    Decoder
		kind error
	}{
		{Decoder{MaxFrameSize: len(frame) - 1}, ErrFrameTooLarge},
		{Decoder{MaxEntries: 2}, ErrTooManyKeys},
		{Decoder{MaxDepth: 3}, ErrTooDeep},
		{Decoder{MaxFrameSize: len(frame), MaxEntries: 3, MaxDepth: 4}, nil},
	}
	for _, c := range cases {
		_, err := c.d.Traffic(frame)
		if c.kind == nil && err != nil || c.kind != nil && !errors.Is(err, c.kind) {
			t.Errorf("%+v: got %v, want %v", c.d, err, c.kind)
		}
	}
}

// TestSonicAloneAcceptsWhatTheDecoderRejects pins why the decoder adds its
// own checks: sonic decoding into the typed map, with the strictest
// config it has, still accepts these frames. Should a sonic upgrade start
// rejecting one, the extra check is redundant, not wrong.
func TestSonicAloneAcceptsWhatTheDecoderRejects(t *testing.T) {
	strictest := sonic.Config{ValidateString: true, UseUnicodeErrors: true, CaseSensitive: true}.Froze()
	for _, frame := range []string{
		`null`,                        // not an object
		`{"a":null}`,                  // entry not an object
		`{"a":{"bytes":null}}`,        // counter not an integer
		`{"a":{},"a":{}}`,             // duplicate key
		`{"a":{"bytes":1,"bytes":2}}`, // duplicate member
		"{\"\xff\":{}}",               // invalid UTF-8 (replaced by U+FFFD)
		`{"a":{"x":"\udc00"}}`,        // unpaired surrogate in a skipped value
		`{"a":{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`, // deep
	} {
		var m map[string]wiretest.Snapshot
		if err := strictest.Unmarshal([]byte(frame), &m); err != nil {
			t.Errorf("sonic now rejects %.40q: %v", frame, err)
		}
		if _, err := DecodeTraffic([]byte(frame)); err == nil {
			t.Errorf("decoder accepts %.40q", frame)
		}
	}
	// And its default config accepts more, which the decoder's grammar
	// pass (ValidateString) rejects. So on amd64: sonic's arm64 decoder
	// checks escapes in skipped strings by itself.
	frames := []string{"{\"a\x01\":{}}"}
	if runtime.GOARCH == "amd64" {
		frames = append(frames, `{"a":{"x":"\q"}}`)
	}
	for _, frame := range frames {
		var m map[string]wiretest.Snapshot
		if err := sonic.Unmarshal([]byte(frame), &m); err != nil {
			t.Errorf("sonic's default config now rejects %q: %v", frame, err)
		}
		if _, err := DecodeTraffic([]byte(frame)); !errors.Is(err, ErrSyntax) {
			t.Errorf("decoder on %q: %v, want ErrSyntax", frame, err)
		}
	}
}

// benchFrame is a moqstats frame of n broadcasts with realistic counts.
func benchFrame(n int) []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"customer%03d/live/%06d":{"announced":1,"announced_closed":0,"broadcasts":%d,"broadcasts_closed":%d,"subscriptions":%d,"subscriptions_closed":%d,"bytes":%d,"frames":%d,"groups":%d}`,
			i%100, i, i*3, i*2, i*7, i*5, i*123456789, i*1000, i*10)
	}
	b.WriteByte('}')
	return []byte(b.String())
}

var sinkFrame TrafficFrame

func BenchmarkDecodeTraffic(b *testing.B) {
	for _, n := range []int{10, 1000, 100000} {
		frame := benchFrame(n)
		b.Run(fmt.Sprintf("N=%d/consumer", n), func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				f, err := DecodeTraffic(frame)
				if err != nil {
					b.Fatal(err)
				}
				sinkFrame = f
			}
		})
		b.Run(fmt.Sprintf("N=%d/encoding-json", n), func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				var m map[string]wiretest.SnapshotAll // encoding/json: checks neither duplicates nor nulls
				if err := json.Unmarshal(frame, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
