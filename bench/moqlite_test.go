package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/wsconn"
)

// What serving the stats broadcast over moq-lite costs the pass. A write
// never waits on the network (moqlite's package doc): the pass copies each
// frame into its track and nudges every subscriber's writer, which sends
// it from its own goroutine. So the pass should cost about the same with
// 1,000 subscribers as with none.

// moqDrainTimeout bounds the wait for every subscriber to receive a pass.
const moqDrainTimeout = 2 * time.Minute

// moqSubscriberCounts are BenchmarkMoQPass's subscriber counts; -short
// keeps them small so that make test's single run stays quick.
func moqSubscriberCounts() []int {
	if testing.Short() {
		return []int{0, 10, 50}
	}
	return []int{0, 10, 100, 1000}
}

// moqKeys is how many broadcasts the workload counts.
func moqKeys() int {
	if testing.Short() {
		return 200
	}
	return 1000
}

// BenchmarkMoQPass measures Stats.Flush on a Stats publishing, with
// Config.Compressed, on a moqlite.Server that serves WebSocket on a
// loopback httptest server, with 0 to 1,000 subscribers each subscribed to
// all twelve tracks. Every pass changes 1% of the broadcasts on every
// (tier, role) and a session root on each tier, so each pass writes all
// twelve tracks. A twin Stats with the same keys and changes, on the same
// server with no subscriber, runs its pass just before, and both are
// timed:
//
//   - ns/op is the subscribed pass's wall time; twin-ns/pass the twin's;
//     x-twin their ratio (totals over the run).
//   - cpu-ns/pass and twin-cpu-ns/pass are each pass's own thread CPU time
//     (Linux), cpu-x-twin their ratio. On a machine with few cores the
//     wall time also holds the subscribers' writers, woken by the pass,
//     running on the pass's core; the thread time does not.
//   - delivered-B/s is what the subscribers (Go clients in this process)
//     received, divided by the time from the start of each pass until
//     every subscriber had all of it; B/pass/sub is what one subscriber
//     receives per pass.
//   - cut-groups/pass counts the groups the server gave up on for a
//     subscriber (WriteTimeout, MaxQueuedBytes) in each pass: a machine
//     too slow to deliver a pass in time shows it here.
//
// After each pass the benchmark waits, timer stopped, until every
// subscriber has the pass's last frame on every track, so each pass starts
// with the subscribers idle. Run it with a fixed count (-benchtime 20x):
// the wait is not timed, so a time-based benchtime would run long.
func BenchmarkMoQPass(b *testing.B) {
	for _, n := range moqSubscriberCounts() {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			benchmarkMoQPass(b, n)
		})
	}
}

func benchmarkMoQPass(b *testing.B, subscribers int) {
	rig := newMoQRig(b, moqKeys())
	rig.subscribe(b, subscribers)
	for range 2 { // every key new, then steady; every subscriber caught up
		rig.step()
		if err := rig.twin.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := rig.main.Flush(); err != nil {
			b.Fatal(err)
		}
		rig.drain(b)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var (
		wall, twinWall, cpu, twinCPU, delivery time.Duration
		cpuOK                                  = true
	)
	before, srv0 := rig.received(), rig.srv.Stats()
	passes := 0
	for b.Loop() {
		b.StopTimer()
		rig.step()
		w, c, ok := timedFlush(b, rig.twin)
		twinWall += w
		twinCPU += c
		cpuOK = cpuOK && ok
		b.StartTimer()
		w, c, ok = timedFlush(b, rig.main)
		b.StopTimer()
		wall += w
		cpu += c
		cpuOK = cpuOK && ok
		start := time.Now().Add(-w)
		rig.drain(b)
		delivery += time.Since(start)
		passes++
		b.StartTimer()
	}
	got, srv := rig.received()-before, rig.srv.Stats()
	b.ReportMetric(float64(srv.WriteTimeouts-srv0.WriteTimeouts+srv.GroupsSkipped-srv0.GroupsSkipped)/float64(passes), "cut-groups/pass")
	b.ReportMetric(float64(twinWall.Nanoseconds())/float64(passes), "twin-ns/pass")
	b.ReportMetric(float64(wall)/float64(twinWall), "x-twin")
	if cpuOK {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(passes), "cpu-ns/pass")
		b.ReportMetric(float64(twinCPU.Nanoseconds())/float64(passes), "twin-cpu-ns/pass")
		b.ReportMetric(float64(cpu)/float64(twinCPU), "cpu-x-twin")
	}
	if subscribers > 0 {
		b.ReportMetric(float64(got)/delivery.Seconds(), "delivered-B/s")
		b.ReportMetric(float64(got)/float64(passes*subscribers), "B/pass/sub")
	}
}

// timedFlush runs one pass of s and returns its wall time and the calling
// thread's CPU time (ok is false where that is not measured). The caller
// holds runtime.LockOSThread, so the thread runs nothing else meanwhile.
func timedFlush(b *testing.B, s *moqstats.Stats) (wall, cpu time.Duration, ok bool) {
	c0, ok0 := threadCPU()
	start := time.Now()
	err := s.Flush()
	wall = time.Since(start)
	c1, ok1 := threadCPU()
	if err != nil {
		b.Fatal(err)
	}
	return wall, c1 - c0, ok0 && ok1
}

// moqRig is a moqlite.Server on a loopback WebSocket server with two
// Stats on it: main, which the subscribers follow, and twin, which has the
// same keys and changes and no subscriber.
type moqRig struct {
	srv        *moqlite.Server
	hs         *httptest.Server
	main, twin *moqstats.Stats
	mainW      *moqWorkload
	twinW      *moqWorkload
	marks      *markOrigin // main's: the last frame written on each track
	clients    *moqClients
}

func newMoQRig(tb testing.TB, keys int) *moqRig {
	tb.Helper()
	// WriteTimeout of a minute: with a thousand subscribers on two cores
	// a writer can wait longer than the default for its session's turn,
	// and a group given up on is not what this measures.
	r := &moqRig{srv: moqlite.NewServer(moqlite.ServerConfig{MaxSessions: 1 << 14, WriteTimeout: time.Minute, CloseTimeout: 10 * time.Second})}
	// No keepalive: with a thousand subscribers on two cores a session
	// can wait longer than the idle timeout for its turn, which is the
	// machine's limit, not the pass's.
	r.hs = httptest.NewServer(r.srv.WebSocketHandlerWith(wsconn.Config{IdleTimeout: -1}))
	r.marks = &markOrigin{origin: r.srv}
	var err error
	cfg := moqstats.Config{Origin: r.marks, Node: "main", Interval: time.Hour, Compressed: true, MaxEntries: maxTickEntries}
	if r.main, err = moqstats.New(cfg); err != nil {
		tb.Fatal(err)
	}
	cfg.Origin, cfg.Node = &markOrigin{origin: r.srv}, "twin"
	if r.twin, err = moqstats.New(cfg); err != nil {
		tb.Fatal(err)
	}
	r.mainW = newMoQWorkload(r.main, keys)
	r.twinW = newMoQWorkload(r.twin, keys)
	r.clients = newMoQClients("ws"+strings.TrimPrefix(r.hs.URL, "http")+"/", r.main.Path(), r.main.Tracks())
	tb.Cleanup(r.close)
	return r
}

// step makes the same changes on main and twin.
func (r *moqRig) step() {
	r.mainW.step()
	r.twinW.step()
}

func (r *moqRig) close() {
	r.clients.close()
	r.mainW.close()
	r.twinW.close()
	r.main.Close()
	r.twin.Close()
	r.srv.Close()
	r.hs.Close()
}

func (r *moqRig) subscribe(tb testing.TB, n int) {
	tb.Helper()
	if err := r.clients.subscribe(n); err != nil {
		tb.Fatal(err)
	}
}

func (r *moqRig) received() int64 { return r.clients.received() }

// drain waits until every subscriber has read the last frame main wrote
// on every track, or had that frame's group cut short.
func (r *moqRig) drain(tb testing.TB) {
	tb.Helper()
	want := make([]uint64, len(r.clients.tracks))
	for i, name := range r.clients.tracks {
		want[i] = r.marks.last(name)
	}
	if err := r.clients.reach(want, moqDrainTimeout); err != nil {
		tb.Fatalf("%v (server: %+v)", err, r.srv.Stats())
	}
}

// moqClients are subscribers, each a WebSocket session subscribed to
// every track of one broadcast, with a reader per subscription that takes
// each frame and records how far it got.
type moqClients struct {
	url, path string
	tracks    []string
	ctx       context.Context
	cancel    context.CancelFunc
	subs      []*moqSubscriber
	wg        sync.WaitGroup // the readers

	errMu sync.Mutex
	errs  map[string]int // what ended readers before close, by message
}

func newMoQClients(url, path string, tracks []string) *moqClients {
	c := &moqClients{url: url, path: path, tracks: tracks, errs: map[string]int{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// moqSubscriber is one client session subscribed to every track.
type moqSubscriber struct {
	c      *moqlite.Client
	tracks []trackProgress // in moqClients.tracks' order
}

// trackProgress is what one subscription's reader has taken: the mark of
// its last frame (see mark) and the bytes of every frame.
type trackProgress struct {
	mark  atomic.Uint64
	bytes atomic.Int64
}

// subscribe connects n more subscribers, eight at a time.
func (c *moqClients) subscribe(n int) error {
	subs := make([]*moqSubscriber, n)
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs = make(chan error, 8)
	)
	for range min(n, 8) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				s, err := c.connect()
				if err != nil {
					errs <- err
					return
				}
				subs[i] = s
			}
		}()
	}
	wg.Wait()
	close(errs)
	for _, s := range subs {
		if s != nil {
			c.subs = append(c.subs, s)
		}
	}
	return <-errs
}

func (c *moqClients) connect() (*moqSubscriber, error) {
	sess, err := wsconn.Dial(c.ctx, c.url, wsconn.Config{Protocols: moqlite.Protocols, IdleTimeout: -1}, nil)
	if err != nil {
		return nil, err
	}
	cl, err := moqlite.NewClient(c.ctx, sess, moqlite.ClientConfig{})
	if err != nil {
		return nil, err
	}
	s := &moqSubscriber{c: cl, tracks: make([]trackProgress, len(c.tracks))}
	for i, name := range c.tracks {
		sub, err := cl.Subscribe(c.path, name)
		if err != nil {
			cl.Close()
			return nil, fmt.Errorf("subscribing to %s: %w", name, err)
		}
		c.wg.Add(1)
		go c.read(sub, &s.tracks[i])
	}
	return s, nil
}

func (c *moqClients) read(sub *moqlite.Subscription, p *trackProgress) {
	defer c.wg.Done()
	for {
		g, err := sub.NextGroup(c.ctx)
		if err != nil {
			if c.ctx.Err() == nil {
				c.errMu.Lock()
				c.errs[err.Error()]++
				c.errMu.Unlock()
			}
			return
		}
		for n := uint64(1); ; n++ {
			f, err := g.ReadFrame(c.ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				// Cut short (the server gave up on the group after
				// WriteTimeout, or skipped it): nothing more of it comes.
				p.mark.Store(mark(g.Sequence, math.MaxUint32))
				break
			}
			p.bytes.Add(int64(len(f)))
			p.mark.Store(mark(g.Sequence, n))
		}
	}
}

// received is the bytes of frames every subscriber has read so far.
func (c *moqClients) received() int64 {
	var n int64
	for _, s := range c.subs {
		for i := range s.tracks {
			n += s.tracks[i].bytes.Load()
		}
	}
	return n
}

// reach waits until every subscription has read up to want[track], at
// most d; the error says how many did not and where they stopped.
func (c *moqClients) reach(want []uint64, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		behind := 0
		for _, s := range c.subs {
			for i := range s.tracks {
				if s.tracks[i].mark.Load() < want[i] {
					behind++
				}
			}
		}
		if behind == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			where := map[string]int{}
			for _, s := range c.subs {
				for i := range s.tracks {
					if m := s.tracks[i].mark.Load(); m < want[i] {
						where[fmt.Sprintf("%s at %d.%d of %d.%d", c.tracks[i], m>>32, m&math.MaxUint32, want[i]>>32, want[i]&math.MaxUint32)]++
					}
				}
			}
			c.errMu.Lock()
			defer c.errMu.Unlock()
			return fmt.Errorf("%d of %d subscriptions still behind after %v: %v; readers ended by %v", behind, len(c.subs)*len(c.tracks), d, where, c.errs)
		}
		time.Sleep(500 * time.Microsecond)
	}
}

func (c *moqClients) close() {
	for _, s := range c.subs {
		s.c.Close()
	}
	c.cancel()
	c.wg.Wait()
}

// mark orders frames: group sequence, then the frame's position in its
// group counting from 1. A compressed track's group holds at most 256
// frames.
func mark(seq, n uint64) uint64 { return seq<<32 | n }

// markOrigin passes a Stats' broadcast through to origin, recording the
// mark of the last frame written on each track, which is what a
// subscriber that has all of a pass last reads.
type markOrigin struct {
	origin moqstats.Origin
	bc     *markBroadcast
}

func (o *markOrigin) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	b, err := o.origin.Publish(path, tracks)
	if err != nil {
		return nil, err
	}
	app, ok := b.(moqstats.Appender)
	if !ok {
		return nil, fmt.Errorf("the broadcast of %q cannot append", path)
	}
	mb := &markBroadcast{Broadcast: b, app: app, tracks: make(map[string]*trackMark, len(tracks))}
	for _, t := range tracks {
		mb.tracks[t] = new(trackMark)
	}
	o.bc = mb
	return mb, nil
}

func (o *markOrigin) last(track string) uint64 { return o.bc.tracks[track].last.Load() }

type markBroadcast struct {
	moqstats.Broadcast
	app    moqstats.Appender
	tracks map[string]*trackMark
}

// trackMark: groups and frames are the pass's alone; last is read by
// drain.
type trackMark struct {
	groups, frames uint64
	last           atomic.Uint64
}

func (b *markBroadcast) WriteFrame(track string, frame []byte) error {
	if err := b.Broadcast.WriteFrame(track, frame); err != nil {
		return err
	}
	m := b.tracks[track]
	m.groups++
	m.frames = 1
	m.last.Store(mark(m.groups-1, 1))
	return nil
}

func (b *markBroadcast) AppendFrame(track string, frame []byte) error {
	if err := b.app.AppendFrame(track, frame); err != nil {
		return err
	}
	m := b.tracks[track]
	m.frames++
	m.last.Store(mark(m.groups-1, m.frames))
	return nil
}

// moqWorkload is a relay's traffic on a Stats: keys broadcasts, each with
// an external publisher and subscriber track, one in ten also with
// internal ones, and keys/20 session roots per tier with a session open
// on each. step changes 1% of the tracks of every (tier, role) and opens
// and closes a session on one root per tier, the same on every Stats built
// with the same keys.
type moqWorkload struct {
	r        *rand.Rand
	s        *moqstats.Stats
	tracks   [4][]*moqstats.TrackGuard // external publisher, subscriber, internal publisher, subscriber
	roots    [2][]string
	sessions []*moqstats.SessionGuard
}

func newMoQWorkload(s *moqstats.Stats, keys int) *moqWorkload {
	w := &moqWorkload{r: rand.New(rand.NewPCG(7, 11)), s: s}
	for i, p := range tickPaths(keys) {
		ext := s.Tier(moqstats.External).Broadcast(p)
		w.tracks[0] = append(w.tracks[0], ext.PublisherTrack("video"))
		w.tracks[1] = append(w.tracks[1], ext.SubscriberTrack("video"))
		if i%10 == 0 {
			in := s.Tier(moqstats.Internal).Broadcast(p)
			w.tracks[2] = append(w.tracks[2], in.PublisherTrack("video"))
			w.tracks[3] = append(w.tracks[3], in.SubscriberTrack("video"))
		}
	}
	for _, ts := range w.tracks {
		for _, t := range ts {
			t.Bytes(1200)
			t.Frame()
		}
	}
	for tier := range w.roots {
		for i := range max(1, keys/20) {
			root := fmt.Sprintf("customer-%d", i)
			w.roots[tier] = append(w.roots[tier], root)
			w.sessions = append(w.sessions, s.Tier(moqstats.Tier(tier)).Session(root))
		}
	}
	return w
}

func (w *moqWorkload) step() {
	for _, ts := range w.tracks {
		for range max(1, len(ts)/100) {
			t := ts[w.r.IntN(len(ts))]
			t.Bytes(1200)
			t.Frame()
		}
	}
	for tier, roots := range w.roots {
		w.s.Tier(moqstats.Tier(tier)).Session(roots[w.r.IntN(len(roots))]).Close()
	}
}

func (w *moqWorkload) close() {
	for _, ts := range w.tracks {
		closeAll(ts)
	}
	for _, g := range w.sessions {
		g.Close()
	}
}
