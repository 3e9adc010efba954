package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/internal/promtest"
)

// hangGuard bounds waits that only guard against hangs: generous, since
// the machines tests run on are shared and the race detector is slow.
const hangGuard = 2 * time.Minute

// demo is the demo running in this process on a loopback port.
type demo struct {
	addr   string // 127.0.0.1:port, TCP and UDP
	base   string // http://127.0.0.1:port
	out    *promtest.LockedBuffer
	cancel context.CancelFunc
	done   chan error
}

// startDemo runs the demo with o on 127.0.0.1:0 until stop or the end of
// the test.
func startDemo(t *testing.T, o options) *demo {
	t.Helper()
	ln, pc, err := listenBoth("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &demo{addr: ln.Addr().String(), base: "http://" + ln.Addr().String(), out: &promtest.LockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- run(ctx, o, ln, pc, d.out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-d.done:
		case <-time.After(hangGuard):
			t.Error("the demo did not stop")
		}
	})
	return d
}

// stop ends the demo as Ctrl-C does and returns run's error and output.
func (d *demo) stop(t *testing.T) (string, error) {
	t.Helper()
	d.cancel()
	select {
	case err := <-d.done:
		d.done <- err // for the cleanup
		return d.out.String(), err
	case <-time.After(hangGuard):
		t.Fatalf("the demo did not stop within %v; output:\n%s", hangGuard, d.out.String())
	}
	return "", nil
}

// testOptions are small, fast settings with a fixed seed.
func testOptions() options {
	return options{interval: 100 * time.Millisecond, node: "test", broadcasts: 4, viewers: 30, seed: 7}
}

// recorder is a moqstats.Origin (and its broadcasts moqstats.Appenders,
// as compressed stats need) that keeps every frame written, per track, in
// write order, and the groups they form: what the demo published, to
// check its output against.
type recorder struct {
	mu     sync.Mutex
	frames map[string][][]byte
	groups map[string][][][]byte // track -> group sequence -> frames
}

func newRecorder() *recorder {
	return &recorder{frames: map[string][][]byte{}, groups: map[string][][][]byte{}}
}

func (r *recorder) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	return recorderBroadcast{r}, nil
}

// track returns a copy of the frames written to track so far.
func (r *recorder) track(name string) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.frames[name])
}

// group returns a copy of the frames of track's group seq (numbered from
// 0 in write order, as moq-lite numbers them), and whether a later group
// has started, so this one is whole.
func (r *recorder) group(track string, seq uint64) (frames [][]byte, whole bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	gs := r.groups[track]
	if seq >= uint64(len(gs)) {
		return nil, false
	}
	return slices.Clone(gs[seq]), seq+1 < uint64(len(gs))
}

type recorderBroadcast struct{ r *recorder }

func (b recorderBroadcast) WriteFrame(track string, frame []byte) error {
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	f := bytes.Clone(frame)
	b.r.frames[track] = append(b.r.frames[track], f)
	b.r.groups[track] = append(b.r.groups[track], [][]byte{f})
	return nil
}

func (b recorderBroadcast) AppendFrame(track string, frame []byte) error {
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	gs := b.r.groups[track]
	if len(gs) == 0 {
		return fmt.Errorf("recorder: append to %s before its first group", track)
	}
	f := bytes.Clone(frame)
	b.r.frames[track] = append(b.r.frames[track], f)
	gs[len(gs)-1] = append(gs[len(gs)-1], f)
	return nil
}

func (b recorderBroadcast) Close() error { return nil }

// counts is a per-broadcast frame, decoded independently of package
// consumer.
type counts map[string]map[string]uint64

func decodeFrame(t *testing.T, frame []byte) counts {
	t.Helper()
	var c counts
	if err := json.Unmarshal(frame, &c); err != nil {
		t.Fatalf("frame is not JSON: %v: %s", err, frame)
	}
	return c
}

// viewersIn is broadcasts - broadcasts_closed of key in c, 0 if absent.
func viewersIn(c counts, key string) uint64 {
	e := c[key]
	return e["broadcasts"] - e["broadcasts_closed"]
}

// sseEvent is one event of a stats track's stream.
type sseEvent struct {
	id    string
	event string
	data  string
}

// follower reads the Server-Sent Events of stats tracks and keeps every
// frame by event id: the frames a browser on the same tracks received.
type follower struct {
	mu     sync.Mutex
	frames map[string]map[string][]byte // track -> id -> frame
	errs   []error
}

// follow starts reading base/stats/<track> for each track until the test
// ends, and returns once every stream was answered.
func follow(t *testing.T, base string, tracks ...string) *follower {
	t.Helper()
	f := &follower{frames: map[string]map[string][]byte{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, track := range tracks {
		f.frames[track] = map[string][]byte{}
	}
	for _, track := range tracks {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/stats/"+track, nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			resp.Body.Close()
			t.Fatalf("GET /stats/%s as a stream: %s, Content-Type %q; want 200, text/event-stream", track, resp.Status, resp.Header.Get("Content-Type"))
		}
		wg.Go(func() {
			defer resp.Body.Close()
			err := readEvents(resp.Body, func(e sseEvent) {
				if e.event != "" || e.id == "" {
					return
				}
				f.mu.Lock()
				f.frames[track][e.id] = []byte(e.data)
				f.mu.Unlock()
			})
			if err != nil && ctx.Err() == nil {
				f.mu.Lock()
				f.errs = append(f.errs, fmt.Errorf("stream %s: %w", track, err))
				f.mu.Unlock()
			}
		})
	}
	return f
}

// frame returns the frame track carried with event id.
func (f *follower) frame(track, id string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.frames[track][id]
	return b, ok
}

func (f *follower) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return errors.Join(f.errs...)
}

// readEvents parses an event stream, calling fn for every event, until
// the stream ends.
func readEvents(r io.Reader, fn func(sseEvent)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var e sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if data != nil {
				e.data = strings.Join(data, "\n")
				fn(e)
			}
			e, data = sseEvent{}, nil
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			e.id = value
		case "event":
			e.event = value
		case "data":
			data = append(data, value)
		}
	}
	return sc.Err()
}

// needBinary finds a program the test needs, installed by a script in
// .ci. Without it the test skips, unless CI is set: CI installs it, so
// there a missing program is a failure.
func needBinary(t *testing.T, name, path, script string) string {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set but %s is missing (not at %s, not on PATH); %s installs it", name, path, script)
	}
	t.Skipf("%s is missing (not at %s, not on PATH): install Debian's %s package (%s) to run this test", name, path, name, script)
	return ""
}

// eventually polls cond every 50 ms until it is true or the hang guard
// expires, failing then with what describe says.
func eventually(t *testing.T, describe func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v: %s", hangGuard, describe())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
