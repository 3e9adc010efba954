package interop

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/moqstats/moqstats"
)

// runs are the randomized runs whose compressed tracks JavaScript decodes:
// the default delta budget and small ones (many rolls), with and without
// retention, the nine and the twelve counter fields, and a budget so large
// that groups roll only at the frame cap (publisher.json changing every
// pass), failures held off until one has.
var runs = []run{
	{name: "default", passes: 300, failEvery: 12, seed: 1},
	{name: "ratio 1", config: moqstats.Config{DeltaRatio: 1}, passes: 300, failEvery: 12, seed: 2},
	{name: "no retention, ratio 2", config: moqstats.Config{Retention: moqstats.NoRetention, DeltaRatio: 2}, passes: 300, failEvery: 12, seed: 3},
	{name: "newer counters", config: moqstats.Config{NewerCounters: true}, passes: 300, failEvery: 12, seed: 4},
	{name: "newer counters, no retention, ratio 1", config: moqstats.Config{NewerCounters: true, Retention: moqstats.NoRetention, DeltaRatio: 1}, passes: 300, failEvery: 8, seed: 5},
	{name: "frame cap", config: moqstats.Config{NewerCounters: true, DeltaRatio: 1 << 20}, passes: 300, steady: true, failEvery: 20, failFrom: 270, seed: 6},
}

// decodeRequest and decodeResponse are decode.mjs's.
type (
	decodeRequest struct {
		Streams []decodeStream `json:"streams"`
	}
	decodeStream struct {
		ID     string   `json:"id"`
		Frames []zFrame `json:"frames"`
	}
	decodeResponse struct {
		Streams []struct {
			ID     string
			Frames []decoded
			Passes []consumed
		}
	}
	// consumed is the Consumer's yield after a pass: an error, or whether
	// it differs from the Decoder's value after the pass's last frame.
	consumed struct {
		Pass    int
		Error   string
		Differs json.RawMessage
	}
	decoded struct {
		Value json.RawMessage
		Error string
	}
)

// MarshalJSON writes a frame as decode.mjs reads it.
func (f zFrame) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Pass  int    `json:"pass"`
		Group uint64 `json:"group"`
		Index int    `json:"index"`
		Data  []byte `json:"data"`
	}{f.Pass, f.Group, f.Index, f.Data})
}

// Every group moqstats writes on a compressed track decodes with
// @moq/json's Snapshot.Decoder, compression on, frame by frame, and with
// its Snapshot.Consumer reading the track live, to exactly the value of
// the plain frame written on the same pass, on every pass where neither
// of the pair's writes failed; so does the Go consumer.
func TestJSDecodesEveryCompressedGroupToThePlainValue(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	var recs []*recording
	var req decodeRequest
	for _, r := range runs {
		rec := record(t, r)
		recs = append(recs, rec)
		for _, tr := range rec.tracks {
			req.Streams = append(req.Streams, decodeStream{r.name + ": " + tr.name + moqstats.CompressedSuffix, tr.frames})
		}
	}
	var resp decodeResponse
	runNode(t, node, "decode.mjs", req, &resp)
	if len(resp.Streams) != len(req.Streams) {
		t.Fatalf("decode.mjs answered for %d streams, want %d", len(resp.Streams), len(req.Streams))
	}
	for k, rec := range recs {
		streams := resp.Streams[k*len(rec.tracks) : (k+1)*len(rec.tracks)]
		t.Run(rec.run.name, func(t *testing.T) {
			for j, tr := range rec.tracks {
				got := streams[j]
				if want := req.Streams[k*len(rec.tracks)+j].ID; got.ID != want {
					t.Fatalf("decode.mjs answered for %q in the place of %q", got.ID, want)
				}
				compared := checkDecoded(t, rec, tr, got.Frames, got.Passes)
				if compared < rec.passes/2 {
					t.Errorf("%s: compared %d passes of %d: too few to mean anything", tr.name, compared, rec.passes)
				}
			}
			checkCoverage(t, rec)
		})
	}
}

// checkDecoded walks a track's passes and compares, after each, the value
// of the plain frame with what the JavaScript decoder, the JavaScript
// consumer and the Go consumer hold. It returns how many passes it
// compared.
func checkDecoded(t *testing.T, rec *recording, tr *trackRecord, frames []decoded, passes []consumed) int {
	t.Helper()
	name := tr.name + moqstats.CompressedSuffix
	for i, f := range frames {
		if f.Error != "" {
			z := tr.frames[i]
			t.Fatalf("%s: @moq/json Decoder failed on frame %d.%d (pass %d): %s", name, z.Group, z.Index, z.Pass, f.Error)
		}
	}
	for _, p := range passes {
		if p.Error != "" {
			t.Fatalf("%s: @moq/json Consumer failed at pass %d: %s", name, p.Pass, p.Error)
		}
	}
	if len(frames) != len(tr.frames) {
		t.Fatalf("%s: @moq/json Decoder answered for %d frames, want %d", name, len(frames), len(tr.frames))
	}
	dec := newGoDecoder()
	var js, consumer, goValue any
	fi, pi, compared := 0, 0, 0
	for pass := 0; pass <= rec.passes; pass++ {
		wrote := false
		for ; fi < len(tr.frames) && tr.frames[fi].Pass == pass; fi++ {
			z := tr.frames[fi]
			v, err := parseJSON(frames[fi].Value)
			if err != nil {
				t.Fatalf("%s frame %d.%d: the Decoder's value: %v", name, z.Group, z.Index, err)
			}
			js = v
			if goValue, err = dec.Frame(z.Index, z.Data); err != nil {
				t.Fatalf("%s frame %d.%d: the Go consumer: %v", name, z.Group, z.Index, err)
			}
			wrote = true
		}
		if wrote {
			if pi >= len(passes) || passes[pi].Pass != pass {
				t.Fatalf("%s: the Consumer yielded nothing for pass %d, which wrote frames", name, pass)
			}
			if d := passes[pi].Differs; d != nil {
				t.Fatalf("%s pass %d: @moq/json Snapshot.Consumer yields %s, its Decoder %s", name, pass, d, show(js))
			}
			consumer = js
			pi++
		}
		want, ok := tr.want[pass]
		if !ok {
			continue
		}
		for _, got := range []struct {
			who string
			v   any
		}{{"@moq/json Snapshot.Decoder", js}, {"@moq/json Snapshot.Consumer", consumer}, {"the Go consumer", goValue}} {
			if !equal(got.v, want) {
				t.Fatalf("%s pass %d: %s decodes %s\nthe plain frame is %s", name, pass, got.who, show(got.v), show(want))
			}
		}
		compared++
	}
	if pi != len(passes) {
		t.Fatalf("%s: the Consumer yielded for %d passes, %d of which wrote no frame", name, len(passes), len(passes)-pi)
	}
	return compared
}

// checkCoverage fails a run that did not exercise what it is there for.
func checkCoverage(t *testing.T, rec *recording) {
	t.Helper()
	r := rec.run
	t.Logf("%d passes: %d plain and %d compressed writes failed, %d groups rolled on the budget or the cap and %d after a failure, longest group %d frames, %d keys removed, %d counters went down",
		rec.passes, rec.rejectedPlain, rec.rejectedZ, rec.rolls, rec.resyncs, rec.longest, rec.removed, rec.decreased)
	var missing []string
	need := func(ok bool, what string) {
		if !ok {
			missing = append(missing, what)
		}
	}
	need(rec.rolls > 0, "a group rolled on the delta budget or the frame cap")
	need(rec.removed > 0, "a key removed")
	if r.failEvery > 0 {
		need(rec.rejectedPlain > 0, "a failed plain write")
		need(rec.rejectedZ > 0, "a failed compressed write")
		need(rec.resyncs > 0, "a group started after a failed write")
	}
	if r.config.Retention < 0 {
		need(rec.decreased > 0, "a counter going down (a key re-created from zero)")
	}
	if r.config.DeltaRatio > 1<<10 {
		need(rec.longest == 256, fmt.Sprintf("a group of 256 frames (longest: %d)", rec.longest))
	}
	if r.config.NewerCounters {
		fields := false
		for _, v := range rec.tracks[0].want {
			fields = fields || strings.Contains(show(v), `"datagrams":`)
		}
		need(fields, "the twelve fields")
	}
	if len(missing) > 0 {
		t.Errorf("the run never had: %s", strings.Join(missing, "; "))
	}
}
