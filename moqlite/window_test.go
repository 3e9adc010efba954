package moqlite_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite"
)

// Writes and appends race against subscribers that read everything, that
// join and leave, and that stall (stop taking frames of a group larger
// than the transport's window, so their writer blocks) and resume, then
// against Close. While they stall, the groups the track holds stay within
// MaxQueuedBytes plus one group (its window), and a subscription holds at
// most two groups beyond that (the one it is in and one it abandoned):
// never the chain from a stalled subscriber's group to the latest. Checked
// against the ledger of what was written: every group received whole is
// exactly the group written with that sequence, sequences only increase,
// and every subscriber connected at Close ends with the final group whole.
func TestStressStalledSubscribersHoldBoundedGroups(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			testStalledSubscribers(t, seed)
		})
	}
}

func testStalledSubscribers(t *testing.T, seed uint64) {
	const maxQueued = 64 << 10
	srv := moqlite.NewServer(moqlite.ServerConfig{
		MaxQueuedBytes: maxQueued,
		WriteTimeout:   3 * time.Second,
		CloseTimeout:   10 * time.Second,
		EndLinger:      quickLinger,
	})
	b, err := srv.PublishBroadcast("s", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t, 90*time.Second)
	r := rand.New(rand.NewPCG(seed, 13))
	type result struct {
		name  string
		whole map[uint64][][]byte
		order []uint64
		kept  bool // stayed to the end
		err   error
	}
	var (
		wg      sync.WaitGroup
		results = make(chan result, 128)
		resume  = make(chan struct{}) // closed before Close: stallers read again
	)
	// kind: "all" reads every frame; "stall" stops taking frames of some
	// groups until resume, or for a while; "leave" takes a few groups and
	// leaves by ending the subscription or the session.
	subscribe := func(kind string) {
		// A staller's client reads little of a group it does not take
		// (MaxGroupBytes), so the transport's window holds the writer.
		c, _, _ := connectWith(t, srv, versions[r.IntN(3)].protocol, moqlite.ClientConfig{HandshakeTimeout: 5 * time.Second, MaxGroupBytes: 8 << 10})
		sub, err := c.Subscribe("s", "t")
		if err != nil {
			t.Fatal(err)
		}
		leaveAfter, bySession := 1+r.IntN(10), r.IntN(2) == 0
		stallSeed := r.Uint64()
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs := rand.New(rand.NewPCG(stallSeed, 1))
			res := result{name: kind, whole: map[uint64][][]byte{}, kept: kind != "leave"}
			defer func() { results <- res }()
			for n := 0; ; n++ {
				if kind == "leave" && n == leaveAfter {
					if bySession {
						c.Close()
					} else {
						sub.Close()
					}
					return
				}
				g, err := sub.NextGroup(ctx)
				if err == io.EOF {
					return
				}
				if err != nil {
					res.err = err
					return
				}
				var first [][]byte
				if kind == "stall" && rs.IntN(3) == 0 {
					// Take one frame, then nothing until resumed or for a
					// while: the group's stream fills and the writer blocks.
					if f, err := g.ReadFrame(ctx); err == nil {
						first = append(first, f)
					}
					select {
					case <-resume:
					case <-time.After(time.Duration(rs.IntN(1500)) * time.Millisecond):
					}
				}
				frames, err := readGroup(ctx, g)
				frames = append(first, frames...)
				res.order = append(res.order, g.Sequence)
				if err == io.EOF {
					res.whole[g.Sequence] = frames
				}
				if ctx.Err() != nil {
					res.err = fmt.Errorf("group %d never ended: %w", g.Sequence, err)
					return
				}
			}
		}()
	}
	subscribe("all")
	for range 3 {
		subscribe("stall")
	}
	var (
		ledger   [][][]byte // by sequence
		maxGroup int
	)
	for g := range 250 {
		var group [][]byte
		size := 0
		n := 1 + r.IntN(4)
		for i := range n {
			// Mostly small frames, some large enough that a group
			// outgrows the transport's window of an unread stream.
			l := r.IntN(2000)
			if r.IntN(3) == 0 {
				l = 30000 + r.IntN(30000)
			}
			f := fmt.Appendf(bytes.Repeat([]byte{byte(g)}, l), "%d/%d", g, i)
			group = append(group, f)
			size += len(f)
			write := b.AppendFrame
			if i == 0 {
				write = b.WriteFrame
			}
			if err := write("t", f); err != nil {
				t.Fatal(err)
			}
			window, worst := moqlite.HeldBytes(b, "t")
			bigGroup := max(maxGroup, size)
			if window > maxQueued+bigGroup {
				t.Fatalf("after group %d frame %d the track's window holds %d bytes of older groups, want at most MaxQueuedBytes (%d) plus one group (%d)", g, i, window, maxQueued, bigGroup)
			}
			if worst > 2*bigGroup {
				t.Fatalf("after group %d frame %d a subscription holds %d bytes of older groups outside the track's window, want at most two groups (%d each): the one it is in and the one it abandoned", g, i, worst, bigGroup)
			}
		}
		maxGroup = max(maxGroup, size)
		ledger = append(ledger, group)
		switch r.IntN(12) {
		case 0:
			subscribe("stall")
		case 1, 2:
			subscribe("leave")
		case 3:
			subscribe("all")
		}
		if r.IntN(8) == 0 {
			time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
		}
	}
	close(resume)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(results)
	if srv.Stats().GroupsSkipped == 0 {
		t.Fatal("no group skipped: no subscriber stalled past MaxQueuedBytes, so the bound was not tested")
	}
	final := uint64(len(ledger) - 1)
	for res := range results {
		if res.err != nil {
			t.Fatalf("%s subscriber: %v", res.name, res.err)
		}
		for i := 1; i < len(res.order); i++ {
			if res.order[i] <= res.order[i-1] {
				t.Fatalf("%s subscriber: group %d after %d: sequences must increase", res.name, res.order[i], res.order[i-1])
			}
		}
		for seq, frames := range res.whole {
			want := ledger[seq]
			if len(frames) != len(want) {
				t.Fatalf("%s subscriber: group %d whole with %d frames, %d written", res.name, seq, len(frames), len(want))
			}
			for i := range want {
				if !bytes.Equal(frames[i], want[i]) {
					t.Fatalf("%s subscriber: group %d frame %d differs from the one written", res.name, seq, i)
				}
			}
		}
		if res.kept {
			if _, ok := res.whole[final]; !ok {
				t.Fatalf("%s subscriber connected at Close lacks the final group %d whole (got %v)", res.name, final, res.order[max(0, len(res.order)-3):])
			}
		}
	}
}
