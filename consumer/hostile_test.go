package consumer

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats/zframe"
)

// The tests in this file measure the live heap, so none of them runs in
// parallel with another test, and each keeps its allocations to tens of
// MiB: the bounds are set well above what the fixed code keeps and well
// below what each attack made it keep before.

// liveHeap returns the bytes of heap in use after two collections (the
// second frees what finalizers of the first released).
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// heapBound fails the test if the live heap grew by more than limit bytes
// since base.
func heapBound(t *testing.T, what string, base, limit int64) {
	t.Helper()
	if grew := liveHeap() - base; grew > limit {
		t.Fatalf("%s: the live heap grew by %d bytes (%.1f MiB), want at most %d (%.1f MiB)",
			what, grew, float64(grew)/(1<<20), limit, float64(limit)/(1<<20))
	}
}

// goroutinesBack waits until no more goroutines run than before, failing
// after a hang-guard timeout.
func goroutinesBack(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after the follower stopped, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// padded is a JSON object member holding n bytes of padding, which a
// decoder skips: the frame is large, what it means small.
func padded(n int) string { return `"pad":"` + strings.Repeat("x", n) + `"` }

// hostileNode is an HTTP stats endpoint under an attacker's control: it
// serves an index of tracks and answers each stream request with serve.
type hostileNode struct {
	srv      *httptest.Server
	requests atomic.Int64
}

func newHostileNode(t *testing.T, tracks []string, serve func(w http.ResponseWriter, r *http.Request, track string)) *hostileNode {
	h := &hostileNode{}
	index, _ := json.Marshal(Index{Path: ".stats/node/evil", Tracks: tracks})
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		if r.URL.Path == "/" {
			w.Write(index)
			return
		}
		serve(w, r, strings.TrimPrefix(r.URL.Path, "/"))
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// sseHeaders starts an event stream.
func sseHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
}

// holdOpen keeps a stream open until the follower goes away, as a node
// with nothing more to say does.
func holdOpen(r *http.Request) { <-r.Context().Done() }

// An attack: the node it needs, what the follower is configured with,
// when the attack has landed, and the bound on the live heap then, with
// the follower still connected, and after it stopped.
type attack struct {
	name   string
	cfg    Config
	opts   HTTPOptions
	tracks []string
	serve  func(w http.ResponseWriter, r *http.Request, track string)
	landed func(agg *Aggregator, errs *errLog) bool
	bound  int64
	check  func(t *testing.T, agg *Aggregator, errs *errLog)
}

// runAttack follows a hostile node until the attack landed, checks the
// live heap while connected and after the follower stopped (with the
// Aggregator still in use), and that every goroutine it started is gone.
func runAttack(t *testing.T, a attack) {
	goroutines := runtime.NumGoroutine()
	base := liveHeap()
	agg := newAgg(t, a.cfg)
	node := newHostileNode(t, a.tracks, a.serve)
	var errs errLog
	a.opts.OnError = errs.add
	stop := startFollow(t, agg, node.srv.URL, a.opts)
	eventually(t, "the attack to land", func() bool { return a.landed(agg, &errs) })
	heapBound(t, "while following", base, a.bound)
	stop()
	node.srv.Close()
	heapBound(t, "after the follower stopped", base, a.bound)
	if a.check != nil {
		a.check(t, agg, &errs)
	}
	runtime.KeepAlive(agg)
	goroutinesBack(t, goroutines)
}

// compressedEvents writes a compressed group as events: frame 0 the
// snapshot, then each patch as the next delta.
func compressedEvents(snapshot string, patches []string) []byte {
	zw := zframe.NewWriter(1 << 20) // a budget no patch here reaches
	var out []byte
	event := func(g, i int, data []byte) {
		out = fmt.Appendf(out, "id: %d.%d\ndata: %s\n\n", g, i, base64.StdEncoding.EncodeToString(data))
	}
	event(1, 0, zw.Snapshot([]byte(snapshot)))
	zw.Commit(true)
	for i, p := range patches {
		event(1, i+1, zw.Delta([]byte(p)))
		zw.Commit(true)
	}
	return out
}

// TestHostileNode follows a node that attacks its followers, one attack
// per subtest, and holds the follower to a bound on the memory it keeps
// (measured as the live heap after a collection) and on its goroutines
// once it stopped. Each bound fails without the fix it guards.
func TestHostileNode(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MiB per attack")
	}
	const mib = 1 << 20

	// Patches whose every key pins its patch's inflated text: 8 keys,
	// each set by a patch of 6 MiB of padding that compresses to a few
	// KiB. Cloned keys keep none of it; shared ones kept 48 MiB.
	const patchPad = 6 * mib
	var patches []string
	for i := range 8 {
		patches = append(patches, `{"k`+strconv.Itoa(i)+`":{"bytes":1,`+padded(patchPad)+`}}`)
	}
	patchStream := compressedEvents(`{}`, patches)
	patches = nil

	// Frames of one new key each, 4 MiB long, past MaxKeyLen: refused,
	// where the Aggregator kept a copy of each (32 MiB).
	longKeys := make([][]byte, 8)
	for i := range longKeys {
		longKeys[i] = []byte(`data: {"` + strconv.Itoa(i) + strings.Repeat("k", 4*mib) + `":{"bytes":1}}` + "\n\n")
	}

	// One frame of 24 MiB whose only key is live: the live set held the
	// key as decoded, and with it the whole frame.
	livePin := []byte(`data: {"a":{"broadcasts":1},"b":{` + padded(24*mib) + `}}` + "\n\n")

	// An 8 MiB event on each of six tracks: each stream kept its event
	// buffer for as long as it lived (48 MiB).
	bigTracks := []string{"publisher.json", "subscriber.json", "internal/publisher.json", "internal/subscriber.json", "t1/publisher.json", "t2/publisher.json"}
	bigEvent := []byte(`data: {"a":{` + padded(8*mib) + `}}` + "\n\n")

	// A comment line that never ends: 32 MiB of it, then the node waits.
	// It was buffered up to the frame limit (16 MiB here), and is now
	// read and dropped.
	endless := make([]byte, 32*mib)
	for i := range endless {
		endless[i] = 'x'
	}
	copy(endless, ": ")
	var endlessSent atomic.Bool

	// Frames of 4,000 new keys each from one node: past its quota of
	// 5,000 they are refused, and another node's 5,000 keys still fit in
	// the 15,000 held at most.
	flood := func(from, n int) []byte {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"k%06d":{"bytes":1}`, from+i)
		}
		b.WriteString("}")
		return []byte(b.String())
	}

	attacks := []attack{{
		name:   "compressed patches pinning their text",
		opts:   HTTPOptions{Compressed: true},
		tracks: []string{"publisher.json.z"},
		serve: func(w http.ResponseWriter, r *http.Request, _ string) {
			sseHeaders(w)
			w.Write(patchStream)
			w.(http.Flusher).Flush()
			holdOpen(r)
		},
		landed: func(agg *Aggregator, _ *errLog) bool { return agg.Keys() == 8 },
		bound:  16 * mib,
	}, {
		name:   "keys longer than MaxKeyLen",
		tracks: []string{"publisher.json"},
		serve: func(w http.ResponseWriter, r *http.Request, _ string) {
			sseHeaders(w)
			for i, ev := range longKeys {
				fmt.Fprintf(w, "id: %d.0\n", i+1)
				w.Write(ev)
			}
			w.Write([]byte("id: 100.0\ndata: {\"ok\":{\"bytes\":1}}\n\n"))
			w.(http.Flusher).Flush()
			holdOpen(r)
		},
		landed: func(agg *Aggregator, _ *errLog) bool { return agg.Keys() > 0 },
		bound:  12 * mib,
		check: func(t *testing.T, agg *Aggregator, errs *errLog) {
			if n := errs.count(ErrKeyTooLong); n != 8 {
				t.Errorf("%d ErrKeyTooLong reported, want 8 (one per frame)", n)
			}
			if agg.Keys() != 1 {
				t.Errorf("%d keys held, want only the frame after the refused ones", agg.Keys())
			}
		},
	}, {
		name:   "a live key pinning its frame",
		tracks: []string{"publisher.json"},
		serve: func(w http.ResponseWriter, r *http.Request, _ string) {
			sseHeaders(w)
			w.Write([]byte("id: 1.0\n"))
			w.Write(livePin)
			w.(http.Flusher).Flush()
			holdOpen(r)
		},
		landed: func(agg *Aggregator, _ *errLog) bool { return agg.Keys() == 2 },
		bound:  12 * mib,
		check: func(t *testing.T, agg *Aggregator, _ *errLog) {
			if v := agg.View(time.Now()); v.Viewers("", "a") != 1 {
				t.Errorf("viewers of the live key %d, want 1", v.Viewers("", "a"))
			}
		},
	}, {
		name:   "a large event on every track",
		tracks: bigTracks,
		serve: func(w http.ResponseWriter, r *http.Request, _ string) {
			sseHeaders(w)
			w.Write([]byte("id: 1.0\n"))
			w.Write(bigEvent)
			w.(http.Flusher).Flush()
			holdOpen(r)
		},
		landed: func(agg *Aggregator, _ *errLog) bool { return agg.Keys() == len(bigTracks) },
		bound:  20 * mib,
	}, {
		name:   "a line without end",
		cfg:    Config{Decoder: Decoder{MaxFrameSize: 16 * mib}},
		tracks: []string{"publisher.json"},
		serve: func(w http.ResponseWriter, r *http.Request, _ string) {
			sseHeaders(w)
			w.Write(endless) // returns once the follower read most of it
			w.(http.Flusher).Flush()
			endlessSent.Store(true)
			holdOpen(r)
		},
		landed: func(*Aggregator, *errLog) bool { return endlessSent.Load() },
		bound:  8 * mib,
	}, {
		name:   "one node flooding the key budget",
		cfg:    Config{MaxKeys: 15000, MaxKeysPerNode: 5000},
		tracks: []string{"publisher.json"},
		serve: func(w http.ResponseWriter, r *http.Request, _ string) {
			sseHeaders(w)
			for i := range 3 {
				fmt.Fprintf(w, "id: %d.0\ndata: %s\n\n", i+1, flood(4000*i, 4000))
			}
			w.(http.Flusher).Flush()
			holdOpen(r)
		},
		landed: func(agg *Aggregator, errs *errLog) bool { return errs.count(ErrKeyLimit) == 2 || agg.Keys() == 12000 },
		bound:  8 * mib,
		check: func(t *testing.T, agg *Aggregator, _ *errLog) {
			if err := agg.Observe("good", "publisher.json", time.Now(), flood(0, 5000)); err != nil {
				t.Fatalf("another node's 5,000 keys: %v, want them taken", err)
			}
		},
	}}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) { runAttack(t, a) })
	}
}

// A line without end that the node then abandons is reported as such,
// naming the line: not as a bare EOF.
func TestHostileNodeEndlessLineErrorNamesTheLine(t *testing.T) {
	node := newHostileNode(t, []string{"publisher.json"}, func(w http.ResponseWriter, r *http.Request, _ string) {
		sseHeaders(w)
		w.Write([]byte("data: "))
		w.Write([]byte(strings.Repeat("x", 1<<20)))
	})
	agg := newAgg(t, Config{Decoder: Decoder{MaxFrameSize: 64 << 10}})
	var errs errLog
	stop := startFollow(t, agg, node.srv.URL, HTTPOptions{OnError: errs.add})
	eventually(t, "the broken line to be reported", func() bool { return len(errs.snapshot()) > 0 })
	stop()
	err := errs.snapshot()[0]
	if !strings.Contains(err.Error(), "without a line end") || !strings.Contains(err.Error(), "event limit") {
		t.Fatalf("error %q, want it to name a data line over the event limit without a line end", err)
	}
}

func (l *errLog) snapshot() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

// A node that never sends headers is dropped at IdleTimeout, and the
// error names the timeout, not a bare "context canceled".
func TestIdleTimeoutDuringHeadersIsNamed(t *testing.T) {
	node := newHostileNode(t, []string{"publisher.json"}, func(w http.ResponseWriter, r *http.Request, _ string) {
		holdOpen(r)
	})
	agg := newAgg(t, Config{})
	var errs errLog
	stop := startFollow(t, agg, node.srv.URL, HTTPOptions{IdleTimeout: 50 * time.Millisecond, OnError: errs.add})
	eventually(t, "an idle timeout", func() bool { return errs.has(ErrIdleTimeout) })
	stop()
	for _, err := range errs.snapshot() {
		if errors.Is(err, ErrIdleTimeout) && !strings.Contains(err.Error(), "response headers") {
			t.Fatalf("error %q, want it to say the headers did not come", err)
		}
	}
}

// The default client does not follow a redirect: a node cannot make its
// followers request another host.
func TestDefaultClientRefusesRedirects(t *testing.T) {
	var elsewhere atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer target.Close()
	var index, stream atomic.Bool
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && !index.Swap(true) {
			http.Redirect(w, r, target.URL+"/", http.StatusFound)
			return
		}
		if r.URL.Path == "/" {
			w.Write([]byte(`{"path":".stats/node/x","tracks":["publisher.json"]}`))
			return
		}
		stream.Store(true)
		http.Redirect(w, r, target.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer node.Close()
	agg := newAgg(t, Config{})
	var errs errLog
	stop := startFollow(t, agg, node.URL, HTTPOptions{OnError: errs.add})
	eventually(t, "both redirects refused", func() bool { return errs.count(ErrRedirect) >= 2 && stream.Load() })
	stop()
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests, want 0", n)
	}
}

// A patch's keys are copied out of it: a value whose keys were each set
// by a different patch holds none of those patches.
func TestPatchedKeysDoNotPinTheirPatch(t *testing.T) {
	const pad, n = 4 << 20, 8
	base := liveHeap()
	f := TrafficFrame{}
	var d Decoder
	for i := range n {
		patch := []byte(`{"k` + strconv.Itoa(i) + `":{"bytes":1,` + padded(pad) + `}}`)
		if err := d.PatchTraffic(f, patch); err != nil {
			t.Fatal(err)
		}
	}
	heapBound(t, "a value of 8 keys, each from a 4 MiB patch", base, pad)
	if len(f) != n {
		t.Fatalf("%d keys, want %d", len(f), n)
	}
	// The same key updated by patch after patch holds none of them either.
	for range n {
		if err := d.PatchTraffic(f, []byte(`{"k0":{"bytes":2,`+padded(pad)+`}}`)); err != nil {
			t.Fatal(err)
		}
	}
	heapBound(t, "a key updated by 8 patches of 4 MiB", base, pad)
	runtime.KeepAlive(f)
}

// A snapshot's keys are copied out of its text too, which the value
// would otherwise hold for the whole group.
func TestCompressedSnapshotKeysDoNotPinTheSnapshot(t *testing.T) {
	base := liveHeap()
	ct := NewCompressedTrack(Publisher, Decoder{})
	zw := zframe.NewWriter(0)
	snap := zw.Snapshot([]byte(`{"a":{"bytes":1,` + padded(24<<20) + `}}`))
	if err := ct.Apply(1, 0, snap); err != nil {
		t.Fatal(err)
	}
	zw.Commit(true)
	// A small delta, of another key: the track's inflate buffer no longer
	// holds the snapshot, and "a" is still the snapshot's key.
	if err := ct.Apply(1, 1, zw.Delta([]byte(`{"b":{"bytes":2}}`))); err != nil {
		t.Fatal(err)
	}
	// The inflater keeps its output buffer (one frame's worth: 33 MiB here, as it grew),
	// documented; the snapshot's text would be a second 24 MiB.
	heapBound(t, "a compressed track after a 24 MiB snapshot", base, 44<<20)
	if ct.Traffic()["a"].Bytes != 1 || ct.Traffic()["b"].Bytes != 2 {
		t.Fatalf("value %v", ct.Traffic())
	}
	runtime.KeepAlive(ct)
}

// A group is capped at MaxGroupFrames: the frame past it is refused with
// ErrGroupTooLong, and the track waits for the next group.
func TestCompressedGroupLongerThanMaxGroupFramesRefused(t *testing.T) {
	for _, limit := range []int{0, 4} {
		want := limit
		if want == 0 {
			want = DefaultMaxGroupFrames
		}
		ct := NewCompressedTrack(Publisher, Decoder{MaxGroupFrames: limit})
		zw := zframe.NewWriter(1 << 20)
		if err := ct.Apply(1, 0, zw.Snapshot([]byte(`{}`))); err != nil {
			t.Fatal(err)
		}
		zw.Commit(true)
		var err error
		i := 1
		for ; err == nil && i <= want; i++ {
			err = ct.Apply(1, i, zw.Delta([]byte(`{"k":{"bytes":`+strconv.Itoa(i)+`}}`)))
			zw.Commit(true)
			if zw.Frames() >= zframe.MaxGroupFrames {
				break // the writer's own cap; the Decoder's is the same by default
			}
		}
		switch {
		case limit == 0 && want != zframe.MaxGroupFrames:
			t.Fatalf("DefaultMaxGroupFrames %d, want the producers' cap %d", want, zframe.MaxGroupFrames)
		case limit > 0 && !errors.Is(err, ErrGroupTooLong):
			t.Fatalf("MaxGroupFrames %d: frame %d gave %v, want ErrGroupTooLong", limit, i-1, err)
		case limit > 0 && i-1 != limit:
			t.Fatalf("MaxGroupFrames %d: refused frame %d, want frame %d", limit, i-1, limit)
		}
		if limit > 0 {
			if _, _, ok := ct.Current(); ok {
				t.Fatal("the track is current after a refused frame")
			}
			zw = zframe.NewWriter(0)
			if err := ct.Apply(2, 0, zw.Snapshot([]byte(`{"k":{"bytes":99}}`))); err != nil || ct.Traffic()["k"].Bytes != 99 {
				t.Fatalf("next group: %v, value %v", err, ct.Traffic())
			}
		}
	}
}

// A key longer than MaxKeyLen is refused, with an error that says so and
// names the key truncated; one at the limit is not.
func TestKeyLongerThanMaxKeyLenRefused(t *testing.T) {
	for _, c := range []struct {
		d     Decoder
		limit int
	}{{Decoder{}, DefaultMaxKeyLen}, {Decoder{MaxKeyLen: 10}, 10}} {
		at := `{"` + strings.Repeat("k", c.limit) + `":{"bytes":1}}`
		if _, err := c.d.Traffic([]byte(at)); err != nil {
			t.Fatalf("a key of %d bytes, limit %d: %v", c.limit, c.limit, err)
		}
		over := `{"a":{"bytes":1},"` + strings.Repeat("k", c.limit+1) + `":{"bytes":1}}`
		_, err := c.d.Traffic([]byte(over))
		var fe *FrameError
		if !errors.As(err, &fe) || !errors.Is(err, ErrKeyTooLong) || !strings.Contains(err.Error(), "limit "+strconv.Itoa(c.limit)) || len(fe.Entry) > 70 {
			t.Fatalf("a key of %d bytes, limit %d: %v, want ErrKeyTooLong naming the limit, with the key truncated", c.limit+1, c.limit, err)
		}
		f := TrafficFrame{"a": {}}
		if err := c.d.PatchTraffic(f, []byte(over)); !errors.Is(err, ErrKeyTooLong) || len(f) != 1 || f["a"].Bytes != 0 {
			t.Fatalf("a patch with a long key: %v, frame %v; want ErrKeyTooLong and the frame unchanged", err, f)
		}
	}
	if DefaultMaxKeyLen < 1024 {
		t.Fatalf("DefaultMaxKeyLen %d is below moqstats' MaxPathLen, 1024", DefaultMaxKeyLen)
	}
}

// A live key is held in memory of its own: the frame it came in is not
// kept, by the live set either, after Observe returns.
func TestLiveKeyDoesNotPinItsFrame(t *testing.T) {
	agg := newAgg(t, Config{})
	base := liveHeap()
	frame := []byte(`{"a":{"broadcasts":1},"b":{` + padded(32<<20) + `}}`)
	if err := agg.Observe("n", "publisher.json", t0, frame); err != nil {
		t.Fatal(err)
	}
	frame = nil
	heapBound(t, "an Aggregator after a 32 MiB frame with a live 1-byte key", base, 8<<20)
	if v := agg.View(t0); v.Viewers("", "a") != 1 {
		t.Fatalf("viewers %d, want 1", v.Viewers("", "a"))
	}
	runtime.KeepAlive(agg)
}

// One node cannot take the key budget of the others: past its quota, its
// frames are refused, and the other nodes' new keys are not.
func TestOneNodeCannotStarveTheOthersOfKeys(t *testing.T) {
	agg := newAgg(t, Config{MaxKeys: 1000, MaxKeysPerNode: 500})
	flood := func(from, n int) []byte {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"k%06d":{"bytes":1}`, from+i)
		}
		b.WriteString("}")
		return []byte(b.String())
	}
	if err := agg.Observe("evil", "publisher.json", t0, flood(0, 400)); err != nil {
		t.Fatal(err)
	}
	err := agg.Observe("evil", "subscriber.json", at(1), flood(400, 400))
	if !errors.Is(err, ErrKeyLimit) || !strings.Contains(err.Error(), "per node") {
		t.Fatalf("the flood past the node's quota: %v, want ErrKeyLimit naming the per-node limit", err)
	}
	for i, node := range []string{"good/1", "good/2"} {
		if err := agg.Observe(node, "publisher.json", at(2), flood(0, 250)); err != nil {
			t.Fatalf("node %d: %v, want its keys taken: the flood stays within its own quota", i, err)
		}
	}
	if agg.Keys() != 900 {
		t.Fatalf("%d keys held, want 900", agg.Keys())
	}
	if _, err := New(Config{MaxKeysPerNode: -1}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("negative MaxKeysPerNode: %v, want ErrInvalidConfig", err)
	}
}

// The quota counts a node's keys over its tracks as they come and go:
// keys dropped by expiry make room for the node again.
func TestNodeQuotaFreedByExpiry(t *testing.T) {
	agg := newAgg(t, Config{MaxKeys: 100, MaxKeysPerNode: 10, Retention: NoRetention, RetentionSlack: time.Second, ExpireAfter: 2 * time.Second})
	idle := func(prefix string, n int) []byte {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = `"` + prefix + strconv.Itoa(i) + `":{"bytes":1}`
		}
		return []byte("{" + strings.Join(parts, ",") + "}")
	}
	if err := agg.Observe("n", "publisher.json", t0, idle("a", 10)); err != nil {
		t.Fatal(err)
	}
	if err := agg.Observe("n", "publisher.json", at(1), idle("b", 1)); !errors.Is(err, ErrKeyLimit) {
		t.Fatalf("an 11th key: %v, want ErrKeyLimit", err)
	}
	if got := agg.Expire(at(10)); got != 10 {
		t.Fatalf("expired %d keys, want 10", got)
	}
	if err := agg.Observe("n", "publisher.json", at(11), idle("b", 10)); err != nil {
		t.Fatalf("after expiry: %v, want the node's quota free again", err)
	}
}
