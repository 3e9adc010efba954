package moqlite_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/wsconn"
)

// Writes, appends, subscribers joining, leaving and whole sessions closing
// race against each other and against Close. Checked against the ledger of
// what was written: every group a subscriber receives whole is exactly the
// group written with that sequence, sequences only increase, and every
// subscriber still connected at Close ends with the final group, whole,
// and no group is left open.
func TestStressRacingSubscribersAgainstWritesAndClose(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			testStress(t, seed, stressSetup{
				cfg: moqlite.ServerConfig{MaxQueuedBytes: 8 << 10, CloseTimeout: 5 * time.Second, EndLinger: quickLinger},
				connect: func(t *testing.T, srv *moqlite.Server, protocol string) *moqlite.Client {
					c, _, _ := connect(t, srv, protocol)
					return c
				},
			})
		})
	}
}

// The same race over WebSocket, whose streams apply the write deadline to
// their end too, with pauses longer than WriteTimeout between some groups,
// as when a track is idle: every group still ends whole, so a subscriber
// reading one group after the other never waits on one that is over.
func TestStressGroupsOutlivingWriteTimeoutOverWebSocket(t *testing.T) {
	const writeTimeout = 500 * time.Millisecond
	for seed := range uint64(2) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			dial := wsDialer(wsconn.FramingQMux)
			testStress(t, seed, stressSetup{
				cfg: moqlite.ServerConfig{MaxQueuedBytes: 8 << 10, WriteTimeout: writeTimeout, CloseTimeout: 5 * time.Second, EndLinger: quickLinger},
				connect: func(t *testing.T, srv *moqlite.Server, protocol string) *moqlite.Client {
					c, err := moqlite.NewClient(context.Background(), dial(t, srv, protocol), moqlite.ClientConfig{HandshakeTimeout: 5 * time.Second})
					if err != nil {
						t.Fatalf("NewClient over %q: %v", protocol, err)
					}
					t.Cleanup(func() { c.Close() })
					return c
				},
				pauseEvery: 100,
				pause:      writeTimeout + 200*time.Millisecond,
			})
		})
	}
}

// stressSetup is what a stress run varies: the server's bounds, the
// transport, and pauses of pause before one group in pauseEvery (none when
// pauseEvery is 0).
type stressSetup struct {
	cfg        moqlite.ServerConfig
	connect    func(t *testing.T, srv *moqlite.Server, protocol string) *moqlite.Client
	pauseEvery int
	pause      time.Duration
}

func testStress(t *testing.T, seed uint64, setup stressSetup) {
	srv := moqlite.NewServer(setup.cfg)
	b, err := srv.PublishBroadcast("s", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		ledger [][][]byte // by sequence
	)
	ctx := timeout(t, 60*time.Second)
	type result struct {
		whole map[uint64][][]byte
		order []uint64
		kept  bool // stayed to the end
		err   error
	}
	var wg sync.WaitGroup
	results := make(chan result, 64)
	r := rand.New(rand.NewPCG(seed, 5))
	subscribe := func(stay bool, lite string) {
		c := setup.connect(t, srv, lite)
		sub, err := c.Subscribe("s", "t")
		if err != nil {
			t.Error(err)
			return
		}
		leaveAfter := 1 + r.IntN(20)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := result{whole: map[uint64][][]byte{}, kept: stay}
			defer func() { results <- res }()
			for n := 0; ; n++ {
				if !stay && n == leaveAfter {
					if n%2 == 0 {
						sub.Close()
					} else {
						c.Close()
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
				frames, err := readGroup(ctx, g)
				res.order = append(res.order, g.Sequence)
				if err == io.EOF {
					res.whole[g.Sequence] = frames
				}
				if ctx.Err() != nil {
					// Every group ends, whole or cut short, by Close at
					// the latest: one still open now was never ended.
					res.err = fmt.Errorf("group %d never ended: %w", g.Sequence, err)
					return
				}
			}
		}()
	}
	for i := range 4 {
		subscribe(true, versions[i%3].protocol)
	}
	for g := range 300 {
		if setup.pauseEvery > 0 && r.IntN(setup.pauseEvery) == 0 {
			time.Sleep(setup.pause)
		}
		var group [][]byte
		n := 1 + r.IntN(4)
		for i := range n {
			f := bytes.Repeat([]byte{byte(g)}, r.IntN(2000))
			f = fmt.Appendf(f, "%d/%d", g, i)
			group = append(group, f)
			write := b.AppendFrame
			if i == 0 {
				write = b.WriteFrame
			}
			if err := write("t", f); err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		ledger = append(ledger, group)
		mu.Unlock()
		if r.IntN(10) == 0 {
			subscribe(r.IntN(3) == 0, versions[r.IntN(3)].protocol)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(results)
	final := uint64(len(ledger) - 1)
	for res := range results {
		if res.err != nil {
			t.Fatal(res.err)
		}
		for i := 1; i < len(res.order); i++ {
			if res.order[i] <= res.order[i-1] {
				t.Fatalf("group %d after %d: sequences must increase", res.order[i], res.order[i-1])
			}
		}
		for seq, frames := range res.whole {
			want := ledger[seq]
			if len(frames) != len(want) {
				t.Fatalf("group %d whole with %d frames, %d written", seq, len(frames), len(want))
			}
			for i := range want {
				if !bytes.Equal(frames[i], want[i]) {
					t.Fatalf("group %d frame %d differs from the one written", seq, i)
				}
			}
		}
		if res.kept {
			if _, ok := res.whole[final]; !ok {
				t.Fatalf("a subscriber connected at Close lacks the final group %d whole (got %v)", final, res.order[max(0, len(res.order)-3):])
			}
		}
	}
}

// Every frame written reaches every subscriber without waiting for Close:
// after each write the subscribers that stay must all have it, exactly as
// written, while others join and leave around them (so the subscriber
// list a write's wake-up goroutine holds races with joins and leaves).
// A wake-up lost, or sent to a stale list, leaves a subscriber short.
func TestStressEveryWriteWakesEverySubscriber(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			testEveryWriteWakes(t, seed)
		})
	}
}

func testEveryWriteWakes(t *testing.T, seed uint64) {
	srv := moqlite.NewServer(moqlite.ServerConfig{CloseTimeout: 5 * time.Second})
	b, err := srv.PublishBroadcast("s", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t, 60*time.Second)
	r := rand.New(rand.NewPCG(seed, 9))

	// A staying subscriber's reader appends every frame to got, in order,
	// with its group.
	type frame struct {
		seq  uint64
		data []byte
	}
	type stayer struct {
		mu  sync.Mutex
		got []frame
	}
	var wg sync.WaitGroup
	errs := make(chan error, 256)
	stayers := make([]*stayer, 8)
	for i := range stayers {
		c, _, _ := connect(t, srv, versions[i%3].protocol)
		sub, err := c.Subscribe("s", "t")
		if err != nil {
			t.Fatal(err)
		}
		st := &stayer{}
		stayers[i] = st
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				g, err := sub.NextGroup(ctx)
				if err == io.EOF {
					return
				}
				if err != nil {
					errs <- fmt.Errorf("staying subscriber: %w", err)
					return
				}
				for {
					f, err := g.ReadFrame(ctx)
					if err == io.EOF {
						break
					}
					if err != nil {
						errs <- fmt.Errorf("staying subscriber, group %d: %w", g.Sequence, err)
						return
					}
					st.mu.Lock()
					st.got = append(st.got, frame{g.Sequence, f})
					st.mu.Unlock()
				}
			}
		}()
	}
	// Subscribers that join, take a few frames and leave, by closing the
	// subscription or the whole session.
	churn := func() {
		c, _, _ := connect(t, srv, versions[r.IntN(3)].protocol)
		sub, err := c.Subscribe("s", "t")
		if err != nil {
			t.Fatal(err)
		}
		take, bySession := r.IntN(6), r.IntN(2) == 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if bySession {
					c.Close()
				} else {
					sub.Close()
				}
			}()
			for n := 0; n < take; {
				g, err := sub.NextGroup(ctx)
				if err != nil {
					return
				}
				for ; n < take; n++ {
					if _, err := g.ReadFrame(ctx); err != nil {
						break
					}
				}
			}
		}()
	}

	var written []frame
	for g := range 150 {
		for i := range 1 + r.IntN(3) {
			f := fmt.Appendf(bytes.Repeat([]byte{byte(g)}, r.IntN(500)), "%d/%d", g, i)
			write := b.AppendFrame
			if i == 0 {
				write = b.WriteFrame
			}
			if err := write("t", f); err != nil {
				t.Fatal(err)
			}
			written = append(written, frame{uint64(g), f})
			if r.IntN(4) == 0 {
				churn()
			}
			for k, st := range stayers {
				deadline := time.Now().Add(10 * time.Second)
				for {
					st.mu.Lock()
					n := len(st.got)
					st.mu.Unlock()
					if n >= len(written) {
						break
					}
					select {
					case err := <-errs:
						t.Fatal(err)
					default:
					}
					if time.Now().After(deadline) {
						t.Fatalf("subscriber %d has %d frames 10s after frame %d (group %d) was written: a wake-up was lost", k, n, len(written), g)
					}
					time.Sleep(100 * time.Microsecond)
				}
			}
		}
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for k, st := range stayers {
		if len(st.got) != len(written) {
			t.Fatalf("subscriber %d took %d frames, %d written", k, len(st.got), len(written))
		}
		for i, w := range written {
			if g := st.got[i]; g.seq != w.seq || !bytes.Equal(g.data, w.data) {
				t.Fatalf("subscriber %d frame %d: group %d %q, want group %d %q", k, i, g.seq, g.data, w.seq, w.data)
			}
		}
	}
}
