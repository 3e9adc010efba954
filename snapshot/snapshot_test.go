package snapshot

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moqstats/moqstats/internal/race"
	"github.com/moqstats/moqstats/internal/wiretest"
)

// gauge is a minimal Value: open/closed.
type gauge struct{ open, closed uint64 }

func (g gauge) Live() bool { return g.open != g.closed }

func appendGauges(dst []byte, keys []string, vals []gauge) []byte {
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = fmt.Appendf(dst, "%s:%d/%d", k, vals[i].open, vals[i].closed)
	}
	return dst
}

func newTrack() *Track[gauge] { return &Track[gauge]{Name: "t", AppendMembers: appendGauges} }

type row struct {
	key     string
	cur     gauge
	emitted Emitted[gauge]
}

// offer offers rows in order, encoding as it goes.
func offer(t *Track[gauge], rows []*row) {
	for _, r := range rows {
		t.Offer(r.key, `"`+r.key+`"`, r.cur, &r.emitted)
		t.Encode()
	}
}

// tick runs one tick over rows, as a caller does, writing the frame
// unless write is false (a failed write). It returns the frame and whether
// it was written.
func tick(t *Track[gauge], rows []*row, write bool) (string, bool) {
	t.Reset()
	offer(t, rows)
	if !t.Changed() {
		t.Commit(nil)
		return string(t.Last()), false
	}
	frame := t.Frame()
	if t.Unchanged(frame) {
		t.Commit(frame)
		return string(frame), false
	}
	if !write {
		return string(frame), false
	}
	t.Commit(frame)
	return string(frame), true
}

func TestNeverEmittedZeroValueDoesNotSurface(t *testing.T) {
	tr := newTrack()
	if got, wrote := tick(tr, []*row{{key: "idle"}}, true); got != "{}" || !wrote {
		t.Fatalf("first tick = %s (written %v), want {} written as the baseline", got, wrote)
	}
}

func TestLiveEmittedEveryTickChangedOnceMore(t *testing.T) {
	tr := newTrack()
	r := &row{key: "a", cur: gauge{1, 0}}
	rows := []*row{r}
	for i := range 3 {
		if got, _ := tick(tr, rows, true); got != `{"a":1/0}` {
			t.Fatalf("tick %d = %s, want the live key", i, got)
		}
	}
	r.cur = gauge{1, 1} // closed: not live, but changed
	if got, wrote := tick(tr, rows, true); got != `{"a":1/1}` || !wrote {
		t.Fatalf("closing tick = %s (written %v), want the final state written", got, wrote)
	}
	if got, _ := tick(tr, rows, true); got != `{}` {
		t.Fatalf("after close = %s, want the idle key dropped", got)
	}
}

func TestUnchangedFrameIsNotWrittenAgain(t *testing.T) {
	tr := newTrack()
	rows := []*row{{key: "a", cur: gauge{1, 0}}}
	if _, wrote := tick(tr, rows, true); !wrote {
		t.Fatal("first frame not written")
	}
	if _, wrote := tick(tr, rows, true); wrote {
		t.Fatal("byte-identical frame written again")
	}
}

func TestFailedWriteKeepsChangesForNextTick(t *testing.T) {
	tr := newTrack()
	tick(tr, nil, true)                   // baseline
	r := &row{key: "a", cur: gauge{1, 1}} // opened and closed within a tick
	rows := []*row{r}
	if got, wrote := tick(tr, rows, false); wrote || got != `{"a":1/1}` {
		t.Fatalf("failing tick = %s (written %v)", got, wrote)
	}
	if tr.Settled(r.cur, &r.emitted) {
		t.Fatalf("a value whose write failed counts as on the wire")
	}
	if got, wrote := tick(tr, rows, true); !wrote || got != `{"a":1/1}` {
		t.Fatalf("retry tick = %s (written %v), want the same change written", got, wrote)
	}
	if !tr.Settled(r.cur, &r.emitted) {
		t.Fatalf("a written value does not count as on the wire")
	}
	if got, _ := tick(tr, rows, true); got != `{}` {
		t.Fatalf("after the retry = %s, want the idle key dropped", got)
	}
}

// A successor that continues a predecessor whose final value failed to
// reach the wire takes over its counts and Emitted (package registry does
// this): the next tick carries the key once, with everything counted, and
// nothing waits behind anything.
func TestContinuedKeyCarriesPendingFinalValue(t *testing.T) {
	tr := newTrack()
	pred := &row{key: "k", cur: gauge{3, 2}}
	a := &row{key: "a", cur: gauge{1, 0}}
	tick(tr, []*row{a, pred}, true)
	pred.cur = gauge{3, 3} // its final close
	if _, wrote := tick(tr, []*row{a, pred}, false); wrote {
		t.Fatal("a failed write reported as written")
	}
	succ := &row{key: "k", cur: gauge{3 + 1, 3}, emitted: pred.emitted} // continued, one guard open
	if got, wrote := tick(tr, []*row{a, succ}, true); !wrote || got != `{"a":1/0,"k":4/3}` {
		t.Fatalf("tick = %s (written %v), want k once with the continued counts", got, wrote)
	}
}

// A retained key's successor starts from OnWire(kept): it stays out of the
// frame until it moves, and then goes in with the continued counts.
func TestRetainedKeyReturnsOnlyWhenItMoves(t *testing.T) {
	tr := newTrack()
	a := &row{key: "a", cur: gauge{1, 0}}
	tick(tr, []*row{a}, true)
	succ := &row{key: "k", cur: gauge{5, 5}, emitted: OnWire(gauge{5, 5})}
	if got, wrote := tick(tr, []*row{a, succ}, true); wrote || got != `{"a":1/0}` {
		t.Fatalf("tick = %s (written %v), want the unmoved retained key left out", got, wrote)
	}
	succ.cur = gauge{6, 5}
	tr.Reset()
	offer(tr, []*row{a, succ})
	if !tr.Changed() || !tr.differs {
		t.Fatalf("Changed %v, differs %v: want both, the key was in no frame since", tr.Changed(), tr.differs)
	}
	if got := string(tr.Frame()); got != `{"a":1/0,"k":6/5}` {
		t.Fatalf("frame = %s, want the key back with its continued counts", got)
	}
}

// TestRecreatedKeyWithPredecessorCountsIsNotRewritten is the case only the
// bytes catch: a key collected with final counts {1 1}, re-created and
// brought to {1 1} again within one tick, yields the same frame.
func TestRecreatedKeyWithPredecessorCountsIsNotRewritten(t *testing.T) {
	tr := newTrack()
	pred := &row{key: "k", cur: gauge{1, 1}}
	if _, wrote := tick(tr, []*row{pred}, true); !wrote {
		t.Fatal("predecessor's final frame not written")
	}
	succ := &row{key: "k", cur: gauge{1, 1}} // the predecessor is dropped once settled
	if got, wrote := tick(tr, []*row{succ}, true); wrote || got != `{"k":1/1}` {
		t.Fatalf("tick = %s, written %v; want the identical frame skipped", got, wrote)
	}
	if !tr.Settled(succ.cur, &succ.emitted) {
		t.Fatalf("identical frame not committed for the successor")
	}
}

// randomRounds is how many rounds of random ticks the property tests run:
// 300, or 30 with -short (the arm64 race guest's CI boot, where 300 take
// minutes under the race detector), which still alternates retention.
func randomRounds() int {
	if testing.Short() {
		return 30
	}
	return 300
}

// TestChangedNeverHidesAByteChange checks the value-based shortcuts
// against their definition over random ticks: keys open, bump and close;
// collected keys are dropped once settled, and come back either from zero,
// from what they left (retention), or, while their final value is not on
// the wire, continuing their predecessor; writes fail. Whenever Changed
// reports false the frame's bytes equal the last frame written; whenever
// differs is set they differ; and what gets written is exactly the frames
// whose bytes differ, built the same whether encoded as they go or at the
// end.
func TestChangedNeverHidesAByteChange(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	type inc struct {
		row
		dead bool
	}
	for round := range randomRounds() {
		retain := round%2 == 0
		tr := newTrack()
		var rows []*inc
		kept := map[string]gauge{}
		last, written := "", false
		for tickN := range 80 {
			key := fmt.Sprint("k", r.IntN(6))
			i := slices.IndexFunc(rows, func(x *inc) bool { return x.key == key })
			switch {
			case i < 0:
				succ := &inc{row: row{key: key}}
				if v, ok := kept[key]; ok {
					succ.cur, succ.emitted = v, OnWire(v)
					delete(kept, key)
				}
				rows = append(rows, succ)
			case rows[i].dead: // continue the unsettled predecessor
				rows[i] = &inc{row: row{key: key, cur: rows[i].cur, emitted: rows[i].emitted}}
			}
			for _, x := range rows {
				for range r.IntN(3) { // several events within one tick
					if x.dead {
						break
					}
					switch r.IntN(5) {
					case 0:
						x.cur.open++
					case 1:
						if x.cur.closed < x.cur.open {
							x.cur.closed++
						}
					case 2:
						x.dead = !x.cur.Live() // collected: frozen from now on
					}
				}
			}
			rows = slices.DeleteFunc(rows, func(x *inc) bool {
				if !x.dead || !tr.Settled(x.cur, &x.emitted) {
					return false
				}
				if retain && x.cur != (gauge{}) {
					kept[x.key] = x.cur
				}
				return true
			})
			slices.SortFunc(rows, func(a, b *inc) int { return strings.Compare(a.key, b.key) })

			tr.Reset()
			var want strings.Builder // the frame, built independently
			want.WriteByte('{')
			for _, x := range rows {
				before := len(tr.keys)
				tr.Offer(x.key, `"`+x.key+`"`, x.cur, &x.emitted)
				if len(tr.keys) > before {
					if before > 0 {
						want.WriteByte(',')
					}
					fmt.Fprintf(&want, `"%s":%d/%d`, x.key, x.cur.open, x.cur.closed)
				}
				if r.IntN(2) == 0 {
					tr.Encode()
				}
			}
			want.WriteByte('}')
			frame := want.String()
			differs := !written || frame != last
			if !tr.Changed() {
				if differs {
					t.Fatalf("round %d tick %d: Changed() = false, but frame %s differs from %s", round, tickN, frame, last)
				}
				tr.Commit(nil)
				continue
			}
			if tr.differs && !differs {
				t.Fatalf("round %d tick %d: differs set, but frame %s equals the last", round, tickN, frame)
			}
			b := tr.Frame()
			if string(b) != frame {
				t.Fatalf("round %d tick %d: Frame() = %s, want %s", round, tickN, b, frame)
			}
			if tr.Unchanged(b) == differs {
				t.Fatalf("round %d tick %d: Unchanged = %v for %s after %s", round, tickN, !differs, frame, last)
			}
			if differs && r.IntN(5) == 0 {
				continue // the write failed: nothing committed
			}
			tr.Commit(b)
			last, written = frame, true
		}
	}
}

func TestSteadyTickAllocatesNothing(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates")
	}
	tr := &Track[gauge]{Name: "t", AppendMembers: func(dst []byte, keys []string, _ []gauge) []byte {
		for range keys {
			dst = append(dst, "0123456789,"...)
		}
		return dst
	}}
	rows := make([]*row, 1000)
	for i := range rows {
		rows[i] = &row{key: fmt.Sprintf(`"%d"`, i), cur: gauge{uint64(i) + 1, 0}}
	}
	run := func() {
		tr.Reset()
		for _, r := range rows {
			r.cur.open++ // every key changed: the frame is encoded
			tr.Offer(r.key, r.key, r.cur, &r.emitted)
			tr.Encode()
		}
		b := tr.Frame()
		tr.Unchanged(b)
		tr.Commit(b)
	}
	run()
	run() // both buffers sized
	if n := testing.AllocsPerRun(20, run); n != 0 {
		t.Fatalf("a changed tick allocates %v times, want 0", n)
	}
	idle := func() {
		tr.Reset()
		for _, r := range rows {
			tr.Offer(r.key, r.key, r.cur, &r.emitted)
			tr.Encode()
		}
		if tr.Changed() {
			t.Fatal("idle tick reported a change")
		}
		tr.Commit(nil)
	}
	if n := testing.AllocsPerRun(20, idle); n != 0 {
		t.Fatalf("an idle tick allocates %v times, want 0", n)
	}
}

// jsonGauge encodes gauges as JSON values, for patch tests.
func jsonGauge(dst []byte, v gauge) []byte {
	return fmt.Appendf(dst, `{"o":%d,"c":%d}`, v.open, v.closed)
}

func jsonGaugePatch(dst []byte, old, cur gauge) []byte {
	dst = append(dst, '{')
	if cur.open != old.open {
		dst = fmt.Appendf(dst, `"o":%d`, cur.open)
	}
	if cur.closed != old.closed {
		if cur.open != old.open {
			dst = append(dst, ',')
		}
		dst = fmt.Appendf(dst, `"c":%d`, cur.closed)
	}
	return append(dst, '}')
}

func newPatchTrack() *Track[gauge] {
	return &Track[gauge]{
		Name: "t",
		AppendMembers: func(dst []byte, keys []string, vals []gauge) []byte {
			for i := range keys {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, keys[i]...)
				dst = append(dst, ':')
				dst = jsonGauge(dst, vals[i])
			}
			return dst
		},
		AppendValue: jsonGauge,
		AppendPatch: jsonGaugePatch,
	}
}

// Over random ticks (keys opening, bumping, closing, collected and
// forgotten, re-created from zero or continuing, writes failing), each
// tick's patch turns the frame built the tick before into this tick's
// frame, and is empty exactly when the two frames hold the same value.
func TestPatchTurnsTheFrameBeforeIntoThisOne(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	type inc struct {
		row
		dead bool
	}
	for round := range randomRounds() {
		tr := newPatchTrack()
		var rows []*inc
		kept := map[string]gauge{}
		var before any = map[string]any{}
		for tickN := range 60 {
			key := fmt.Sprint("k", r.IntN(5))
			i := slices.IndexFunc(rows, func(x *inc) bool { return x.key == key })
			switch {
			case i < 0:
				succ := &inc{row: row{key: key}}
				if v, ok := kept[key]; ok {
					succ.cur, succ.emitted = v, OnWire(v)
					delete(kept, key)
				}
				rows = append(rows, succ)
			case rows[i].dead:
				rows[i] = &inc{row: row{key: key, cur: rows[i].cur, emitted: rows[i].emitted}}
			}
			for _, x := range rows {
				for range r.IntN(3) {
					if x.dead {
						break
					}
					switch r.IntN(5) {
					case 0:
						x.cur.open++
					case 1:
						if x.cur.closed < x.cur.open {
							x.cur.closed++
						}
					case 2:
						x.dead = !x.cur.Live()
					}
				}
			}
			slices.SortFunc(rows, func(a, b *inc) int { return strings.Compare(a.key, b.key) })
			tr.Reset()
			for _, x := range rows {
				tr.Offer(x.key, `"`+x.key+`"`, x.cur, &x.emitted)
			}
			var frame []byte
			if tr.Changed() {
				frame = tr.Frame()
			} else {
				frame = tr.Last()
			}
			patch, changed := tr.Patch()
			var now, p any
			if err := json.Unmarshal(frame, &now); err != nil {
				t.Fatalf("frame %s: %v", frame, err)
			}
			if err := json.Unmarshal(patch, &p); err != nil {
				t.Fatalf("patch %s: %v", patch, err)
			}
			if changed == reflect.DeepEqual(now, before) {
				t.Fatalf("round %d tick %d: patch %s (changed %v) from %v to %s", round, tickN, patch, changed, before, frame)
			}
			if got := wiretest.MergePatch(before, p); !reflect.DeepEqual(got, now) {
				t.Fatalf("round %d tick %d: %v + %s = %v, want %s", round, tickN, before, patch, got, frame)
			}
			json.Unmarshal(frame, &before)
			if r.IntN(5) == 0 && tr.Changed() {
				continue // the write failed: nothing committed
			}
			tr.Commit(frame)
			// Settled dead rows are forgotten, with the frame's last value
			// kept half the time.
			rows = slices.DeleteFunc(rows, func(x *inc) bool {
				if !x.dead || !tr.Settled(x.cur, &x.emitted) {
					return false
				}
				tr.Gone(x.key, `"`+x.key+`"`, &x.emitted)
				if r.IntN(2) == 0 && x.cur != (gauge{}) {
					kept[x.key] = x.cur
				}
				return true
			})
		}
	}
}
