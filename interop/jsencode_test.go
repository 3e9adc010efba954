package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/moqstats/moqstats/zframe"
)

// Frame shapes: the counters of a per-broadcast frame value, of the nine
// and of the twelve fields, and of a session frame value.
var (
	nineFields    = []string{"announced", "announced_closed", "broadcasts", "broadcasts_closed", "subscriptions", "subscriptions_closed", "bytes", "frames", "groups"}
	twelveFields  = []string{"announced", "announced_closed", "announced_bytes", "broadcasts", "broadcasts_closed", "subscriptions", "subscriptions_closed", "fetches", "bytes", "frames", "groups", "datagrams"}
	sessionFields = []string{"sessions", "sessions_closed"}
)

// maxSafe is the largest integer JavaScript represents exactly, 2^53 - 1:
// the largest counter a value given to @moq/json may hold.
const maxSafe = 1<<53 - 1

// sequence is a random sequence of stats-shaped values for the
// JavaScript encoder, and the writes to fail.
type sequence struct {
	id         string
	deltaRatio *int // nil: the encoder's default
	values     []json.RawMessage
	failed     []bool
}

// sequenceSpec configures makeSequence.
type sequenceSpec struct {
	id         string
	fields     []string
	deltaRatio *int
	steps      int
	// failEvery fails a write with probability 1/failEvery from step
	// failFrom on (0: never); changeAlways makes every value differ from
	// the one before.
	failEvery, failFrom int
	changeAlways        bool
	seed                uint64
}

func ratio(n int) *int { return &n }

// makeSequence draws values that add, change and remove keys, empty the
// frame, re-create keys from zero, reach 2^53 - 1, and repeat the value
// before (which writes nothing).
func makeSequence(spec sequenceSpec) sequence {
	r := rand.New(rand.NewPCG(spec.seed, 0x5e9))
	cur := map[string]map[string]uint64{}
	newEntry := func() map[string]uint64 {
		e := map[string]uint64{}
		for _, f := range spec.fields {
			e[f] = r.Uint64N(1000)
		}
		return e
	}
	seq := sequence{id: spec.id, deltaRatio: spec.deltaRatio}
	for step := range spec.steps {
		changes := r.IntN(4)
		if spec.changeAlways {
			changes++
		}
		for range changes {
			key := pick(r, paths)
			switch op := r.IntN(10); {
			case op < 3 || cur[key] == nil: // a new key, or the key re-created from zero
				cur[key] = newEntry()
			case op < 7: // counters go up
				e := cur[key]
				for range 1 + r.IntN(3) {
					f := pick(r, spec.fields)
					switch r.IntN(10) {
					case 0:
						e[f] = maxSafe
					case 1:
						e[f] = min(maxSafe, e[f]+1<<40+r.Uint64N(1<<45))
					default:
						e[f] = min(maxSafe, e[f]+1+r.Uint64N(5000))
					}
				}
			case op < 9:
				delete(cur, key)
			default:
				if r.IntN(4) == 0 {
					clear(cur)
				} else {
					cur[key] = newEntry()
				}
			}
		}
		if spec.changeAlways {
			cur[fmt.Sprint("step/", step)] = newEntry()
			delete(cur, fmt.Sprint("step/", step-1))
		}
		b, err := json.Marshal(cur)
		if err != nil {
			panic(err)
		}
		seq.values = append(seq.values, b)
		seq.failed = append(seq.failed, spec.failEvery > 0 && step >= spec.failFrom && r.IntN(spec.failEvery) == 0)
	}
	return seq
}

// encodeRequest and encodeResponse are encode.mjs's.
type (
	encodeRequest struct {
		Runs []encodeRun `json:"runs"`
	}
	encodeRun struct {
		ID         string            `json:"id"`
		DeltaRatio *int              `json:"deltaRatio,omitempty"`
		Values     []json.RawMessage `json:"values"`
		Failed     []bool            `json:"failed"`
	}
	encodeResponse struct {
		Runs []struct {
			ID    string
			Error string
			Steps []encodedStep
		}
	}
	encodedStep struct {
		Frame, Keyframe bool
		Data            []byte
	}
)

// encodeWithJS encodes each sequence with @moq/json's Snapshot.Encoder,
// compression on, in one node run.
func encodeWithJS(t *testing.T, node string, seqs []sequence) [][]encodedStep {
	t.Helper()
	var req encodeRequest
	for _, s := range seqs {
		req.Runs = append(req.Runs, encodeRun{s.id, s.deltaRatio, s.values, s.failed})
	}
	var resp encodeResponse
	runNode(t, node, "encode.mjs", req, &resp)
	if len(resp.Runs) != len(seqs) {
		t.Fatalf("encode.mjs answered for %d runs, want %d", len(resp.Runs), len(seqs))
	}
	out := make([][]encodedStep, len(seqs))
	for i, run := range resp.Runs {
		switch {
		case run.ID != seqs[i].id:
			t.Fatalf("encode.mjs answered for %q in the place of %q", run.ID, seqs[i].id)
		case run.Error != "":
			t.Fatalf("%s: @moq/json Encoder: %s", run.ID, run.Error)
		case len(run.Steps) != len(seqs[i].values):
			t.Fatalf("%s: %d steps encoded, want %d", run.ID, len(run.Steps), len(seqs[i].values))
		}
		out[i] = run.Steps
	}
	return out
}

// encodedStats is what a JavaScript-encoded sequence held.
type encodedStats struct {
	frames, keyframes, unchanged, failed int
	// rolls counts the snapshots that did not follow a failed write.
	rolls  int
	groups []int // frames per group on the wire
	// Of the values: keys removed from one to the next, and whether a
	// counter reached 2^53 - 1.
	removed int
	top     bool
}

// decodeInGo feeds the frames of a JavaScript-encoded sequence that
// reached the wire (not failed) to the Go consumer, as a subscriber
// receives them, and checks that after every step whose write did not
// fail the Go value is exactly the value given: after a frame, and after
// a value unchanged (no frame). It checks that a group starts with a
// snapshot and that the frame after a failed write is one.
func decodeInGo(t *testing.T, seq sequence, steps []encodedStep) encodedStats {
	t.Helper()
	var st encodedStats
	dec := newGoDecoder()
	var value any
	index, resync := -1, false
	var prev any
	for i, step := range steps {
		want, err := parseJSON(seq.values[i])
		if err != nil {
			t.Fatal(err)
		}
		st.removed += removedKeys(prev, want)
		st.top = st.top || bytes.Contains(seq.values[i], []byte(strconv.FormatUint(maxSafe, 10)))
		prev = want
		switch {
		case !step.Frame:
			st.unchanged++
			if index < 0 {
				t.Fatalf("%s step %d: nothing written for the first value", seq.id, i)
			}
			if resync {
				t.Fatalf("%s step %d: nothing written after a failed write", seq.id, i)
			}
		case seq.failed[i]:
			st.failed++
			resync = true
			continue // never reached the wire: the value stays the last one
		default:
			st.frames++
			if step.Keyframe {
				st.keyframes++
				if index >= 0 && !resync {
					st.rolls++
				}
				st.groups = append(st.groups, 0)
				index, resync = 0, false
			} else {
				if index < 0 || resync {
					t.Fatalf("%s step %d: a delta with no snapshot before it on the wire (after a failed write: %v)", seq.id, i, resync)
				}
				index++
			}
			st.groups[len(st.groups)-1]++
			if value, err = dec.Frame(index, step.Data); err != nil {
				t.Fatalf("%s step %d (frame %d of group %d): the Go consumer: %v", seq.id, i, index, len(st.groups), err)
			}
		}
		if !equal(value, want) {
			t.Fatalf("%s step %d: the Go consumer decodes %s\nthe value given was %s", seq.id, i, show(value), show(want))
		}
	}
	return st
}

// Every frame @moq/json's Snapshot.Encoder writes, compression on, with
// its default delta budget, a small one, deltas off, and a budget only the
// frame cap reaches, decodes in the Go consumer to exactly the value it
// was given, through writes that failed and were never committed, which
// the encoder answers with a snapshot in a new group.
func TestGoDecodesWhatTheJSEncoderWrites(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	specs := []sequenceSpec{
		{id: "nine fields, default ratio", fields: nineFields, steps: 400, failEvery: 30, seed: 1},
		{id: "twelve fields, ratio 1", fields: twelveFields, deltaRatio: ratio(1), steps: 400, failEvery: 10, seed: 2},
		{id: "sessions, ratio 2", fields: sessionFields, deltaRatio: ratio(2), steps: 300, failEvery: 30, seed: 3},
		{id: "twelve fields, deltas off", fields: twelveFields, deltaRatio: ratio(0), steps: 100, failEvery: 10, seed: 4},
		{id: "nine fields, frame cap", fields: nineFields, deltaRatio: ratio(1 << 20), steps: 300, changeAlways: true, failEvery: 5, failFrom: 280, seed: 5},
	}
	var seqs []sequence
	for _, spec := range specs {
		seqs = append(seqs, makeSequence(spec))
	}
	encoded := encodeWithJS(t, node, seqs)
	for i, seq := range seqs {
		t.Run(seq.id, func(t *testing.T) {
			st := decodeInGo(t, seq, encoded[i])
			t.Logf("%d steps: %d frames in %d groups (%d rolled on their own), %d unchanged, %d failed; group sizes %v", len(seq.values), st.frames, st.keyframes, st.rolls, st.unchanged, st.failed, st.groups)
			var missing []string
			need := func(ok bool, what string) {
				if !ok {
					missing = append(missing, what)
				}
			}
			need(st.failed > 0, "a failed write")
			need(st.rolls > 0, "a group rolled on its own")
			switch r := seq.deltaRatio; {
			case r != nil && *r == 0:
				need(st.keyframes == st.frames, "deltas off: every frame a snapshot")
			case r != nil && *r > 1<<10:
				need(len(st.groups) > 1 && st.groups[0] == zframe.MaxGroupFrames,
					fmt.Sprintf("a first group of zframe.MaxGroupFrames = %d frames, as the frame cap ends it (groups: %v)", zframe.MaxGroupFrames, st.groups))
			default:
				need(st.frames > st.keyframes, "a delta")
				need(st.unchanged > 0, "an unchanged value")
			}
			need(st.removed > 0, "a key removed")
			need(st.top, "a counter at 2^53 - 1")
			if len(missing) > 0 {
				t.Errorf("the sequence never had: %s", strings.Join(missing, "; "))
			}
		})
	}
}
