package snapshot

import (
	"fmt"
	"slices"
	"testing"

	"github.com/moqstats/moqstats/internal/race"
)

// gauge is a minimal Value: open/closed.
type gauge struct{ open, closed uint64 }

func (g gauge) Live() bool { return g.open != g.closed }

type row struct {
	key     string
	cur     gauge
	emitted gauge
}

// tick offers rows, encodes a toy frame and commits it when write says so.
// It returns the frame and whether it was written.
func tick(t *Track[gauge], rows []*row, write bool) (string, bool) {
	t.Reset()
	for _, r := range rows {
		t.Offer(r.key, `"`+r.key+`"`, r.cur, &r.emitted)
	}
	b := t.Buffer()
	b = append(b, '{')
	for i, k := range t.Keys() {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "%s:%d/%d", k, t.Values()[i].open, t.Values()[i].closed)
	}
	b = append(b, '}')
	if t.Unchanged(b) {
		t.Commit(b)
		return string(b), false
	}
	if !write {
		return string(b), false
	}
	t.Commit(b)
	return string(b), true
}

func TestNeverEmittedZeroValueDoesNotSurface(t *testing.T) {
	var tr Track[gauge]
	rows := []*row{{key: "idle"}}
	if got, wrote := tick(&tr, rows, true); got != "{}" || !wrote {
		t.Fatalf("first tick = %s (written %v), want {} written as the baseline", got, wrote)
	}
}

func TestLiveEmittedEveryTickChangedOnceMore(t *testing.T) {
	var tr Track[gauge]
	r := &row{key: "a", cur: gauge{1, 0}}
	rows := []*row{r}
	for i := range 3 {
		if got, _ := tick(&tr, rows, true); got != `{"a":1/0}` {
			t.Fatalf("tick %d = %s, want the live key", i, got)
		}
	}
	r.cur = gauge{1, 1} // closed: not live, but changed
	if got, wrote := tick(&tr, rows, true); got != `{"a":1/1}` || !wrote {
		t.Fatalf("closing tick = %s (written %v), want the final state written", got, wrote)
	}
	if got, _ := tick(&tr, rows, true); got != `{}` {
		t.Fatalf("after close = %s, want the idle key dropped", got)
	}
}

func TestUnchangedFrameIsNotWrittenAgain(t *testing.T) {
	var tr Track[gauge]
	rows := []*row{{key: "a", cur: gauge{1, 0}}}
	if _, wrote := tick(&tr, rows, true); !wrote {
		t.Fatal("first frame not written")
	}
	if _, wrote := tick(&tr, rows, true); wrote {
		t.Fatal("byte-identical frame written again")
	}
}

func TestFailedWriteKeepsChangesForNextTick(t *testing.T) {
	var tr Track[gauge]
	r := &row{key: "a", cur: gauge{1, 1}} // opened and closed within a tick
	rows := []*row{r}
	if got, wrote := tick(&tr, rows, false); wrote || got != `{"a":1/1}` {
		t.Fatalf("failing tick = %s (written %v)", got, wrote)
	}
	if r.emitted != (gauge{}) {
		t.Fatalf("emitted = %+v after a failed write, want unchanged", r.emitted)
	}
	if got, wrote := tick(&tr, rows, true); !wrote || got != `{"a":1/1}` {
		t.Fatalf("retry tick = %s (written %v), want the same change written", got, wrote)
	}
	if r.emitted != r.cur {
		t.Fatalf("emitted = %+v after a successful write, want %+v", r.emitted, r.cur)
	}
}

func TestOlderIncarnationGoesFirstSuccessorWaits(t *testing.T) {
	var tr Track[gauge]
	old := &row{key: "k", cur: gauge{3, 3}, emitted: gauge{3, 2}} // final close pending
	succ := &row{key: "k", cur: gauge{1, 0}}                      // re-created, live
	rows := []*row{{key: "a", cur: gauge{1, 0}}, old, succ, {key: "z", cur: gauge{2, 0}}}
	if got, _ := tick(&tr, rows, true); got != `{"a":1/0,"k":3/3,"z":2/0}` {
		t.Fatalf("tick with both incarnations = %s, want the old one only", got)
	}
	if succ.emitted != (gauge{}) {
		t.Fatalf("deferred successor was committed: %+v", succ.emitted)
	}
	// Next tick: the old one is settled; the successor goes out.
	if got, _ := tick(&tr, []*row{rows[0], old, succ, rows[3]}, true); got != `{"a":1/0,"k":1/0,"z":2/0}` {
		t.Fatalf("next tick = %s, want the successor", got)
	}
}

func TestResetDropsPointersIntoEntries(t *testing.T) {
	var tr Track[gauge]
	tick(&tr, []*row{{key: "a", cur: gauge{1, 0}}}, true)
	tr.Reset()
	if slices.ContainsFunc(tr.emitted[:cap(tr.emitted)], func(p *gauge) bool { return p != nil }) {
		t.Fatal("Reset left pointers to emitted state in the backing array")
	}
}

func TestSteadyTickAllocatesNothing(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates")
	}
	var tr Track[gauge]
	rows := make([]*row, 1000)
	for i := range rows {
		rows[i] = &row{key: fmt.Sprint(i), cur: gauge{uint64(i), 0}}
	}
	run := func() {
		tr.Reset()
		for _, r := range rows {
			tr.Offer(r.key, r.key, r.cur, &r.emitted)
		}
		b := append(tr.Buffer(), "frame"...)
		for range tr.Keys() {
			b = append(b, "0123456789"...)
		}
		tr.Unchanged(b)
		tr.Commit(b) // written, or identical to the last frame
	}
	run()
	run() // both buffers sized
	if n := testing.AllocsPerRun(20, run); n != 0 {
		t.Fatalf("a steady tick allocates %v times, want 0", n)
	}
}
