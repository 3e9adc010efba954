package interop

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/zframe"
)

// inflateRequest and inflateResponse are inflate.mjs's.
type (
	inflateRequest struct {
		Groups []inflateGroup `json:"groups"`
	}
	inflateGroup struct {
		MaxFrameSize int      `json:"maxFrameSize,omitempty"`
		Frames       [][]byte `json:"frames"`
	}
	inflateResponse struct {
		DefaultMaxFrameSize int
		DefaultLevel        int
		Groups              [][]struct {
			Data  []byte
			Error string
		}
	}
)

// flateGroup is one group stream to inflate both ways: its frames, what
// was compressed into them when known (nil: from a Stats run), and the
// cap to inflate under (0: the default).
type flateGroup struct {
	name   string
	frames [][]byte
	plain  [][]byte
	cap    int
}

// frameText returns n bytes of frame-like JSON text.
func frameText(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"tenant-%d/live/%d":{"bytes":%d,"frames":%d}`, r.IntN(40), r.IntN(5000), r.Uint64N(1<<50), r.IntN(1<<20))
	}
	b.WriteByte('}')
	return b.Bytes()[:n]
}

// writerGroups compresses frames of the given sizes with zframe.Writer at
// ratio, each from gen, and splits them into groups as the writer does.
func writerGroups(name string, ratio int, sizes []int, gen func(n int) []byte) []flateGroup {
	w := zframe.NewWriter(ratio)
	var groups []flateGroup
	for _, n := range sizes {
		in := gen(n)
		var out []byte
		if w.Snapshotting() {
			groups = append(groups, flateGroup{name: fmt.Sprintf("%s group %d", name, len(groups)+1)})
			out = w.Snapshot(in)
		} else {
			out = w.Delta(in)
		}
		w.Commit(true)
		g := &groups[len(groups)-1]
		g.frames = append(g.frames, bytes.Clone(out))
		g.plain = append(g.plain, in)
	}
	return groups
}

// @moq/flate alone, one Decoder per group, inflates moqstats' group
// streams frame by frame to the same bytes as zframe.Decoder, and to what
// was compressed: the groups of a Stats run, large frames whose
// references reach back across the 32 KiB window, frames larger than
// pako's output chunk, stored blocks of incompressible bytes, long runs.
// Both inflate a frame of exactly the cap and reject one a byte over it,
// and @moq/flate's default cap and level are zframe's.
func TestMoqFlateInflatesOurGroupsToTheSameBytes(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	var groups []flateGroup

	rec := record(t, run{name: "flate", config: moqstats.Config{DeltaRatio: 2, NewerCounters: true}, passes: 150, failEvery: 12, seed: 7})
	for _, tr := range rec.tracks {
		for _, f := range tr.frames {
			if f.Index == 0 {
				groups = append(groups, flateGroup{name: fmt.Sprintf("%s.z group %d", tr.name, f.Group)})
			}
			g := &groups[len(groups)-1]
			g.frames = append(g.frames, f.Data)
		}
	}
	fromStats := len(groups)

	r := rand.New(rand.NewPCG(8, 9))
	var sizes []int
	for range 40 {
		sizes = append(sizes, 1+r.IntN(120<<10))
	}
	groups = append(groups, writerGroups("large frames", 3, sizes, func(n int) []byte { return frameText(r, n) })...)
	groups = append(groups, writerGroups("incompressible", 2, []int{70 << 10, 5, 40 << 10, 100 << 10}, func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	})...)
	groups = append(groups, writerGroups("long runs", 1<<20, []int{1 << 20, 3, 64 << 10, 1 << 20}, func(n int) []byte {
		return bytes.Repeat([]byte{"x{}0"[r.IntN(4)]}, n)
	})...)
	const limit = 64 << 10
	for _, n := range []int{limit, limit + 1} {
		g := writerGroups(fmt.Sprintf("%d bytes under a %d-byte cap", n, limit), 0, []int{1000, n}, func(n int) []byte {
			return bytes.Repeat([]byte("0"), n)
		})[0]
		g.cap = limit
		groups = append(groups, g)
	}

	var req inflateRequest
	for _, g := range groups {
		req.Groups = append(req.Groups, inflateGroup{g.cap, g.frames})
	}
	var resp inflateResponse
	runNode(t, node, "inflate.mjs", req, &resp)
	if resp.DefaultMaxFrameSize != zframe.DefaultMaxFrameSize || resp.DefaultLevel != zframe.Level {
		t.Errorf("@moq/flate defaults: cap %d, level %d; zframe's: cap %d, level %d",
			resp.DefaultMaxFrameSize, resp.DefaultLevel, zframe.DefaultMaxFrameSize, zframe.Level)
	}
	if len(resp.Groups) != len(groups) {
		t.Fatalf("inflate.mjs answered for %d groups, want %d", len(resp.Groups), len(groups))
	}
	frames, bytesOut := 0, 0
	for i, g := range groups {
		d := zframe.Decoder{MaxFrameSize: g.cap}
		got := resp.Groups[i]
		for j, f := range g.frames {
			var want []byte
			var err error
			if j == 0 {
				want, err = d.Snapshot(f)
			} else {
				want, err = d.Delta(f)
			}
			if g.cap > 0 && len(g.plain[j]) > g.cap {
				// Over the cap: both must refuse it.
				if !errors.Is(err, zframe.ErrFrameTooLarge) {
					t.Errorf("%s frame %d: zframe: %v, want ErrFrameTooLarge", g.name, j, err)
				}
				if j >= len(got) || !strings.Contains(got[j].Error, "exceeded") {
					t.Errorf("%s frame %d: @moq/flate did not refuse %d bytes over a %d-byte cap: %+v", g.name, j, len(g.plain[j]), g.cap, got[min(j, len(got)-1)])
				}
				break
			}
			if err != nil {
				t.Fatalf("%s frame %d: zframe: %v", g.name, j, err)
			}
			if j >= len(got) || got[j].Error != "" {
				t.Fatalf("%s frame %d: @moq/flate: %+v", g.name, j, got[min(j, len(got)-1)])
			}
			if !bytes.Equal(got[j].Data, want) {
				t.Fatalf("%s frame %d: @moq/flate inflates %d bytes, zframe %d; they differ", g.name, j, len(got[j].Data), len(want))
			}
			if g.plain != nil && !bytes.Equal(want, g.plain[j]) {
				t.Fatalf("%s frame %d: inflates to %d bytes, not the %d compressed", g.name, j, len(want), len(g.plain[j]))
			}
			frames++
			bytesOut += len(want)
		}
	}
	t.Logf("%d groups (%d from a Stats run), %d frames, %d bytes inflated alike", len(groups), fromStats, frames, bytesOut)
	if fromStats < 12 {
		t.Errorf("only %d groups from the Stats run", fromStats)
	}
}
