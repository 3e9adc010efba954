package interop

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/moqstats/moqstats"
)

// The tests here pin where @moq/json 0.3.3 does not carry a value
// exactly, so that an upgrade that changes it is noticed. Each says what
// it costs a reader of moqstats' tracks.

// decodeOne decodes the compressed publisher track of a tap's recording
// with decode.mjs and returns, for each pass that wrote a frame, the
// Snapshot.Decoder's value or error after it.
func decodeOne(t *testing.T, node string, rec *recording) map[int]decoded {
	t.Helper()
	tr := rec.tracks[0]
	var resp decodeResponse
	runNode(t, node, "decode.mjs", decodeRequest{[]decodeStream{{tr.name, tr.frames}}}, &resp)
	if len(resp.Streams) != 1 || len(resp.Streams[0].Frames) != len(tr.frames) {
		t.Fatalf("decode.mjs answered %+v for %d frames", resp, len(tr.frames))
	}
	out := map[int]decoded{}
	for i, f := range tr.frames {
		out[f.Pass] = resp.Streams[0].Frames[i]
	}
	return out
}

func mustParse(t *testing.T, raw string) any {
	t.Helper()
	v, err := parseJSON([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// @moq/json's merge sets patch members with target[key] = value, so a
// member "__proto__" that a delta adds would set the object's prototype
// instead of adding the key, and a broadcast path "__proto__" would be
// missing from what JavaScript readers decode until a snapshot carried it.
// Our writer never adds that key in a delta: it sends a snapshot, whose
// JSON.parse makes it an own property, which later deltas change as any
// other key.
func TestJSDecoderReadsAProtoKeyBecauseOnlySnapshotsAddIt(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	tp := newTap(t, run{name: "__proto__"})
	tr := tp.s.Tier(moqstats.External).Broadcast("__proto__").PublisherTrack("video")
	defer tr.Close()
	tr.Bytes(7)
	tp.flush() // pass 1: the key is added, by a snapshot
	tr.Bytes(5)
	tp.flush(moqstats.TrackPublisher + moqstats.CompressedSuffix) // pass 2: its write fails
	tp.flush()                                                    // pass 3: the resync snapshot has it
	tr.Bytes(1)
	tp.flush() // pass 4: a delta changes it
	rec := tp.close()
	got := decodeOne(t, node, rec)
	if f := rec.tracks[0].frames; len(f) < 4 || f[1].Pass != 1 || f[1].Index != 0 || f[2].Pass != 3 || f[2].Index != 0 || f[3].Pass != 4 || f[3].Index == 0 {
		t.Fatalf("frames %+v: want a snapshot at pass 1, a snapshot at 3, a delta at 4", f)
	}
	for _, c := range []struct {
		pass int
		want string // what @moq/json decodes
	}{
		{1, `{"__proto__":` + counters(7) + `}`},
		{3, `{"__proto__":` + counters(12) + `}`},
		{4, `{"__proto__":` + counters(13) + `}`},
	} {
		js, err := parseJSON(got[c.pass].Value)
		if err != nil || got[c.pass].Error != "" {
			t.Fatalf("pass %d: %v %s", c.pass, err, got[c.pass].Error)
		}
		if want := mustParse(t, c.want); !equal(js, want) {
			t.Errorf("pass %d: @moq/json decodes %s, want %s", c.pass, show(js), show(want))
		}
		if plain := rec.tracks[0].want[c.pass]; !strings.Contains(show(plain), `"__proto__":{`) {
			t.Errorf("pass %d: the plain frame %s lacks the key", c.pass, show(plain))
		}
	}
}

// counters is a publisher.json value with one subscription open and n
// bytes.
func counters(n int) string {
	b, _ := json.Marshal(n)
	return `{"announced":0,"announced_closed":0,"broadcasts":0,"broadcasts_closed":0,"subscriptions":1,"subscriptions_closed":0,"bytes":` + string(b) + `,"frames":0,"groups":0}`
}

// JavaScript numbers hold integers exactly up to 2^53 - 1 only, and
// @moq/json parses with JSON.parse: a counter past that reaches
// JavaScript readers rounded (the plain tracks too, read with JSON.parse).
func TestUpstreamJSReadersRoundCountersAbove2To53(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	tp := newTap(t, run{name: "2^53"})
	tr := tp.s.Tier(moqstats.External).Broadcast("big").PublisherTrack("video")
	defer tr.Close()
	tr.Bytes(1<<53 + 1)
	tp.flush()
	rec := tp.close()
	if plain := show(rec.tracks[0].want[1]); !strings.Contains(plain, `"bytes":9007199254740993`) {
		t.Fatalf("the plain frame is %s, want bytes 2^53 + 1", plain)
	}
	got := decodeOne(t, node, rec)[1]
	if want := "/big/bytes (read as 9007199254740992)"; !strings.Contains(got.Error, want) {
		t.Fatalf("@moq/json decodes bytes 2^53 + 1 to %s (error %q), want it read as 2^53: %q", got.Value, got.Error, want)
	}
}

// @moq/json's diff asks whether the new value has a key with the in
// operator, which also sees Object.prototype's members, so its Encoder
// never writes the null that removes a key named like one (constructor,
// toString, ...): readers keep the key. A key "__proto__" that a delta
// would add is lost while the patch is built (patch[key] = value sets its
// prototype), so the delta is empty.
func TestUpstreamJSEncoderKeepsKeysNamedLikeObjectMembers(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	entry := `{"sessions":1,"sessions_closed":0}`
	values := []string{
		`{"constructor":` + entry + `,"toString":` + entry + `,"a":` + entry + `}`,
		`{"a":` + entry + `}`,                           // both removed
		`{"a":` + entry + `,"__proto__":` + entry + `}`, // one added
	}
	seq := sequence{id: "object members"}
	for _, v := range values {
		seq.values = append(seq.values, json.RawMessage(v))
		seq.failed = append(seq.failed, false)
	}
	steps := encodeWithJS(t, node, []sequence{seq})[0]
	dec := newGoDecoder()
	index := -1
	for i, want := range []string{values[0], values[0], values[0]} {
		step := steps[i]
		if !step.Frame || step.Keyframe != (i == 0) {
			t.Fatalf("step %d: %+v, want a snapshot then deltas", i, step)
		}
		index++
		got, err := dec.Frame(index, step.Data)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if w := mustParse(t, want); !equal(got, w) {
			t.Errorf("step %d: decodes to %s, want %s (upstream's behaviour), given %s", i, show(got), show(w), values[i])
		}
	}
}
