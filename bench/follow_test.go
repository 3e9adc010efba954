package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/follow"
	"github.com/moqstats/moqstats/moqlite/transport"
	"github.com/moqstats/moqstats/moqlite/wsconn"
)

// What reading a cluster over moq-lite costs: one follower (follow.Cluster
// into a consumer.Aggregator) following N nodes that publish on one
// moqlite.Server. The follower runs in a child process (this test binary,
// started again), so its CPU time and heap are its own: the nodes' passes
// and the server's writers run in the benchmark's process.

// The environment that makes this test binary the follower process of
// BenchmarkFollowCluster instead of running tests.
const (
	envFollowURL        = "FOLLOWBENCH_URL"
	envFollowNodes      = "FOLLOWBENCH_NODES"
	envFollowCompressed = "FOLLOWBENCH_COMPRESSED"
	// FOLLOWBENCH_CPUPROFILE, set by whoever runs the benchmark, makes
	// the follower process write a CPU profile of its whole run there.
	// Run a single sub-benchmark with it: each writes the same file.
	envFollowCPUProfile = "FOLLOWBENCH_CPUPROFILE"
	// FOLLOWBENCH_DUMP makes a follower that gives up waiting print its
	// goroutines' stacks, which show where the frames stopped.
	envFollowDump = "FOLLOWBENCH_DUMP"
)

// followKeys is how many broadcasts each node counts: a small edge
// relay's handful (moqWorkload: one in ten also on the internal tier, and
// a session root per tier).
const followKeys = 20

// followNodeCounts are BenchmarkFollowCluster's cluster sizes; -short
// keeps them small so that make test's single run stays quick.
func followNodeCounts() []int {
	if testing.Short() {
		return []int{10, 50}
	}
	return []int{10, 100, 1000}
}

// BenchmarkFollowCluster measures a follower following every node of a
// cluster: N moqstats.Stats (Node "edge/i", followKeys broadcasts each,
// Interval an hour so only Flush writes) publish on one moqlite.Server
// served over loopback WebSocket, and one follow.Cluster in a child
// process dials it, discovers them by ANNOUNCE_INTEREST and follows their
// six tracks, plain or compressed (".json.z"). Each op changes one
// broadcast of every (tier, role) and a session per tier on every node,
// flushes every node (each writes one frame on each of its six followed
// tracks) and waits until the follower has taken every frame written.
//
//   - frames/s and ns/frame: the frames the follower took, over the wall
//     time from the first node's Flush until the follower had the last
//     frame. The nodes' passes and the server's writers share the cores
//     with the follower meanwhile.
//   - flush-ns/op: the part of it spent flushing the N nodes.
//   - follower-cpu-ns/frame: the follower process's own CPU time (user
//     and system, Linux), per frame; follower-cores is that CPU time over
//     the wall time, the cores the follower kept busy.
//   - setup-errors: the failures Cluster reported while it subscribed
//     to every track at once, each a subscription the server refused
//     (its bound on a session's streams not yet read) and Cluster made
//     again.
//   - B/node and goroutines/node: the follower process's live heap
//     (after runtime.GC) and goroutines once it follows every node and
//     has applied a frame on every track, over what it held before it
//     dialed, divided by N.
//
// After the run the follower checks that its Aggregator applied exactly
// the frames it counted, with no error, or the benchmark fails; gaps/op
// is the Gaps reported meanwhile (a group whose stream ended before the
// group did), each of which also counted as a frame taken. Run it
// with a fixed count (-benchtime 20x): the setup is not timed and a
// time-based benchtime would repeat it.
func BenchmarkFollowCluster(b *testing.B) {
	for _, compressed := range []bool{false, true} {
		flavor := "plain"
		if compressed {
			flavor = "compressed"
		}
		for _, n := range followNodeCounts() {
			b.Run(fmt.Sprintf("%s/nodes=%d", flavor, n), func(b *testing.B) {
				benchmarkFollowCluster(b, n, compressed)
			})
		}
	}
}

func benchmarkFollowCluster(b *testing.B, nodes int, compressed bool) {
	rig := newFollowRig(b, nodes, compressed)
	f := startFollower(b, rig.srv, rig.url, nodes, compressed)
	for range 2 { // every key known to the follower, then steady
		rig.step()
		rig.flush(b)
		f.wait(b, rig.takeWritten())
	}
	var (
		wall, flushWall, cpu time.Duration
		frames               int64
		ops                  int
		cpuOK                = true
	)
	for b.Loop() {
		b.StopTimer()
		rig.step()
		b.StartTimer()
		start := time.Now()
		rig.flush(b)
		flushWall += time.Since(start)
		written := rig.takeWritten()
		c, ok := f.wait(b, written)
		wall += time.Since(start)
		cpu += c
		cpuOK = cpuOK && ok
		frames += written
		ops++
	}
	b.StopTimer()
	gaps := f.check(b)
	b.ReportMetric(float64(frames)/wall.Seconds(), "frames/s")
	b.ReportMetric(float64(wall.Nanoseconds())/float64(frames), "ns/frame")
	b.ReportMetric(float64(flushWall.Nanoseconds())/float64(ops), "flush-ns/op")
	if cpuOK {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(frames), "follower-cpu-ns/frame")
		b.ReportMetric(float64(cpu)/float64(wall), "follower-cores")
	}
	b.ReportMetric(float64(gaps)/float64(ops), "gaps/op")
	b.ReportMetric(f.setupErrs, "setup-errors")
	b.ReportMetric(f.heap/float64(nodes), "B/node")
	b.ReportMetric(f.goroutines/float64(nodes), "goroutines/node")
}

// followRig is a moqlite.Server on a loopback WebSocket server with N
// Stats publishing on it.
type followRig struct {
	srv   *moqlite.Server
	hs    *httptest.Server
	url   string
	stats []*moqstats.Stats
	work  []*moqWorkload
	// written counts the frames written on the followed tracks (the
	// compressed ones, or the plain ones) since takeWritten.
	written atomic.Int64
}

func newFollowRig(tb testing.TB, nodes int, compressed bool) *followRig {
	tb.Helper()
	// As newMoQRig: a minute's WriteTimeout and no keepalive, since on
	// two cores a session can wait long for its turn. The follower's one
	// session holds a subscription, a bidi stream, on each of six tracks
	// per node: past the default MaxSubscriptions and MaxIncomingStreams
	// (256 each) from 43 nodes on. The streams allowance is twice that:
	// a subscription refused for a moment (follow retries it) takes a
	// stream too, and one the allowance is short of waits to open.
	r := &followRig{srv: moqlite.NewServer(moqlite.ServerConfig{
		MaxSessions: 1 << 14, MaxSubscriptions: 6*nodes + 16,
		WriteTimeout: time.Minute, CloseTimeout: 10 * time.Second,
	})}
	r.hs = httptest.NewServer(r.srv.WebSocketHandlerWith(wsconn.Config{IdleTimeout: -1, MaxIncomingStreams: uint64(12*nodes + 256)}))
	r.url = "ws" + strings.TrimPrefix(r.hs.URL, "http") + "/"
	tb.Cleanup(r.close)
	origin := &countOrigin{origin: r.srv, compressed: compressed, n: &r.written}
	for i := range nodes {
		s, err := moqstats.New(moqstats.Config{
			Origin: origin, Node: fmt.Sprintf("edge/%d", i), Interval: time.Hour,
			Compressed: compressed, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			tb.Fatal(err)
		}
		r.stats = append(r.stats, s)
		r.work = append(r.work, newMoQWorkload(s, followKeys))
	}
	r.flush(tb) // the keys' first frames, before the follower joins
	r.takeWritten()
	return r
}

func (r *followRig) step() {
	for _, w := range r.work {
		w.step()
	}
}

func (r *followRig) flush(tb testing.TB) {
	for _, s := range r.stats {
		if err := s.Flush(); err != nil {
			tb.Fatal(err)
		}
	}
}

func (r *followRig) takeWritten() int64 { return r.written.Swap(0) }

func (r *followRig) close() {
	for _, w := range r.work {
		w.close()
	}
	for _, s := range r.stats {
		s.Close()
	}
	r.srv.Close()
	r.hs.Close()
}

// countOrigin passes broadcasts through to origin, counting the frames
// written on the tracks a follower follows: the compressed siblings if
// compressed, else the plain tracks.
type countOrigin struct {
	origin     moqstats.Origin
	compressed bool
	n          *atomic.Int64
}

func (o *countOrigin) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	b, err := o.origin.Publish(path, tracks)
	if err != nil {
		return nil, err
	}
	app, ok := b.(moqstats.Appender)
	if !ok {
		return nil, fmt.Errorf("the broadcast of %q cannot append", path)
	}
	return &countBroadcast{Broadcast: b, app: app, o: o}, nil
}

type countBroadcast struct {
	moqstats.Broadcast
	app moqstats.Appender
	o   *countOrigin
}

func (b *countBroadcast) count(track string) {
	if strings.HasSuffix(track, moqstats.CompressedSuffix) == b.o.compressed {
		b.o.n.Add(1)
	}
}

func (b *countBroadcast) WriteFrame(track string, frame []byte) error {
	if err := b.Broadcast.WriteFrame(track, frame); err != nil {
		return err
	}
	b.count(track)
	return nil
}

func (b *countBroadcast) AppendFrame(track string, frame []byte) error {
	if err := b.app.AppendFrame(track, frame); err != nil {
		return err
	}
	b.count(track)
	return nil
}

// follower is the child process that follows the cluster, driven over
// its stdin and stdout, one line each way per command.
type follower struct {
	cmd        *exec.Cmd
	srv        *moqlite.Server
	stdin      io.WriteCloser
	stdout     *bufio.Reader
	heap       float64 // what it reported once it followed every node
	goroutines float64
	setupErrs  float64 // the failures Cluster reported, and recovered from, by then
}

func startFollower(tb testing.TB, srv *moqlite.Server, url string, nodes int, compressed bool) *follower {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envFollowURL+"="+url,
		envFollowNodes+"="+strconv.Itoa(nodes),
		envFollowCompressed+"="+strconv.FormatBool(compressed))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	f := &follower{cmd: cmd, srv: srv, stdin: stdin, stdout: bufio.NewReader(stdout)}
	// Registered after the rig's Cleanup, so it runs first: the follower
	// leaves before the server closes.
	tb.Cleanup(f.close)
	line, err := f.stdout.ReadString('\n')
	if err != nil {
		tb.Fatalf("follower process: %v (server: %+v)", err, srv.Stats())
	}
	if _, err := fmt.Sscanf(line, "ready heap=%g goroutines=%g errors=%g", &f.heap, &f.goroutines, &f.setupErrs); err != nil {
		tb.Fatalf("follower process said %q: %v", line, err)
	}
	return f
}

func (f *follower) read(tb testing.TB) string {
	tb.Helper()
	line, err := f.stdout.ReadString('\n')
	if err != nil {
		tb.Fatalf("follower process: %v", err)
	}
	return strings.TrimSuffix(line, "\n")
}

// wait has the follower wait until it has taken n more frames, and
// returns the CPU time it used since the last wait (ok is false where
// that is not measured).
func (f *follower) wait(tb testing.TB, n int64) (cpu time.Duration, ok bool) {
	tb.Helper()
	if _, err := fmt.Fprintf(f.stdin, "wait %d\n", n); err != nil {
		tb.Fatalf("follower process: %v", err)
	}
	line, err := f.stdout.ReadString('\n')
	if err != nil {
		tb.Fatalf("follower process: %v (server: %+v)", err, f.srv.Stats())
	}
	var ns int64
	if _, err := fmt.Sscanf(line, "done cpu=%d", &ns); err != nil {
		tb.Fatalf("follower process said %q: %v", line, err)
	}
	return time.Duration(ns), ns >= 0
}

// check fails tb unless the follower's Aggregator applied every frame the
// follower counted since it was ready, with no error reported, and
// returns the Gaps it reported since: a group whose stream ended before
// the group did (follow stamps those with Options.Now too).
func (f *follower) check(tb testing.TB) (gaps int64) {
	tb.Helper()
	if _, err := fmt.Fprintln(f.stdin, "check"); err != nil {
		tb.Fatalf("follower process: %v", err)
	}
	line := f.read(tb)
	var applied, counted, errs int64
	if _, err := fmt.Sscanf(line, "check applied=%d gaps=%d counted=%d errors=%d", &applied, &gaps, &counted, &errs); err != nil {
		tb.Fatalf("follower process said %q: %v", line, err)
	}
	if applied+gaps != counted || errs != 0 {
		tb.Fatalf("the follower applied %d frames and %d gaps of the %d it stamped, with %d errors", applied, gaps, counted, errs)
	}
	return gaps
}

func (f *follower) close() {
	f.stdin.Close()
	if err := f.cmd.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, "follower process:", err)
	}
}

// followerDeadline bounds the follower's waits: for every node's tracks
// to be followed, and for a pass's frames.
const followerDeadline = 2 * time.Minute

// followProcess follows the cluster the environment names and answers
// the benchmark's commands on stdin:
//
//   - first, unasked, "ready heap=H goroutines=G errors=E" once every
//     node's six tracks have had a frame applied and no more frames
//     come: what the process holds over what it held before it dialed,
//     and the failures Cluster reported (and recovered from) on the way;
//   - "wait N": answers "done cpu=C" once N more frames were taken, C
//     the process's CPU nanoseconds since the last answer (-1 where not
//     measured);
//   - "check": answers "check applied=A gaps=G counted=C errors=E": the
//     frames and Gaps the Aggregator applied and the stamps taken since
//     ready, and the
//     failures Cluster reported since.
//
// It returns the exit code when stdin closes.
func followProcess(url string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "follower process:", err)
		return 1
	}
	nodes, err := strconv.Atoi(os.Getenv(envFollowNodes))
	if err != nil {
		return fail(err)
	}
	compressed, err := strconv.ParseBool(os.Getenv(envFollowCompressed))
	if err != nil {
		return fail(err)
	}
	if p := os.Getenv(envFollowCPUProfile); p != "" {
		out, err := os.Create(p)
		if err != nil {
			return fail(err)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			return fail(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			out.Close()
		}()
	}
	heap0, g0 := heapInUse(), runtime.NumGoroutine()
	agg, err := consumer.New(consumer.Config{})
	if err != nil {
		return fail(err)
	}
	// Options.Now is called once per frame taken, just before it is
	// applied; after ready nothing else calls it (no Gap: no subscription
	// opens and no group is cut, which check confirms).
	var (
		taken, target atomic.Int64
		errs          atomic.Int64
		reached       = make(chan struct{}, 1)
	)
	now := func() time.Time {
		if taken.Add(1) >= target.Load() {
			select {
			case reached <- struct{}{}:
			default:
			}
		}
		return time.Now()
	}
	report := func(err error) {
		if errs.Add(1) <= 5 {
			fmt.Fprintln(os.Stderr, "follower process:", err)
		}
	}
	dial := func(ctx context.Context) (transport.Session, error) {
		// A group's stream stays open until its next group, so the
		// server holds one open toward the follower per track, and
		// opens the next group's beside it: up to two per track, past
		// the default MaxIncomingStreams (256) from 22 nodes on, and a
		// group the server cannot open a stream for waits.
		return wsconn.Dial(ctx, url, wsconn.Config{Protocols: moqlite.Protocols, IdleTimeout: -1, MaxIncomingStreams: uint64(12*nodes + 256)}, nil)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- follow.Cluster(ctx, agg, dial, follow.Options{Compressed: compressed, MaxNodes: 1 << 14, Now: now, OnError: report})
	}()
	defer func() {
		cancel()
		<-done
	}()

	applied := func() (tracks int, frames, gaps int64) {
		for _, t := range agg.View(time.Now()).Tracks {
			if t.Frames > 0 {
				tracks++
			}
			frames += int64(t.Frames)
			gaps += int64(t.Gaps)
		}
		return tracks, frames, gaps
	}
	// Each subscription's Gap is stamped with Options.Now too, so taken
	// runs ahead of the frames applied: ready waits until every track has
	// a frame and neither count moved for 100ms.
	deadline := time.Now().Add(followerDeadline)
	last := [2]int64{-1, -1}
	for {
		tracks, frames, _ := applied()
		cur := [2]int64{frames, taken.Load()}
		if tracks == nodes*len(moqstats.Tracks()) && cur == last {
			break
		}
		last = cur
		if time.Now().After(deadline) {
			if os.Getenv(envFollowDump) != "" {
				pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			}
			return fail(fmt.Errorf("after %v, %d of %d tracks have frames (%d applied, %d taken)", followerDeadline, tracks, nodes*len(moqstats.Tracks()), frames, taken.Load()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, applied0, gaps0 := applied()
	taken0, errs0 := taken.Load(), errs.Load()
	fmt.Printf("ready heap=%d goroutines=%d errors=%d\n", int64(heapInUse())-int64(heap0), runtime.NumGoroutine()-g0, errs0)

	cpu0, _ := processCPU()
	want := taken0
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "wait":
			n, err := strconv.ParseInt(arg, 10, 64)
			if err != nil {
				return fail(err)
			}
			want += n
			target.Store(want)
			timeout := time.NewTimer(followerDeadline)
			for taken.Load() < want {
				select {
				case <-reached:
				case <-timeout.C:
					if os.Getenv(envFollowDump) != "" {
						pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
					}
					return fail(fmt.Errorf("after %v, %d of %d frames taken", followerDeadline, taken.Load()-taken0, want-taken0))
				}
			}
			timeout.Stop()
			cpu, ok := processCPU()
			ns := int64(cpu - cpu0)
			if !ok {
				ns = -1
			}
			cpu0 = cpu
			fmt.Printf("done cpu=%d\n", ns)
		case "check":
			// A frame is stamped just before it is applied: the last
			// ones may still be on their way into the Aggregator.
			_, frames, gaps := applied()
			for end := time.Now().Add(5 * time.Second); frames-applied0+gaps-gaps0 < taken.Load()-taken0 && time.Now().Before(end); {
				time.Sleep(10 * time.Millisecond)
				_, frames, gaps = applied()
			}
			fmt.Printf("check applied=%d gaps=%d counted=%d errors=%d\n", frames-applied0, gaps-gaps0, taken.Load()-taken0, errs.Load()-errs0)
		default:
			return fail(fmt.Errorf("unknown command %q", in.Text()))
		}
	}
	return 0
}
