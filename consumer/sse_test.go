package consumer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moqstats/moqstats/zframe"
)

// fakeNode serves the stats endpoint contract: an index at base/, and per
// track an SSE stream starting at the latest frame (or after
// Last-Event-ID), with pings, and an end event once the track ends.
type fakeNode struct {
	t    *testing.T
	path string

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every change
	kick      chan struct{} // closed and replaced to break the streams
	tracks    []string
	frames    map[string][]fakeEvent
	ended     map[string]bool
	lastIDs   map[string][]string // Last-Event-ID of every stream request, by track
	dropAfter int                 // close a stream after this many events (0: never)
	silent    bool                // send headers, then nothing at all
}

type fakeEvent struct {
	id   [2]int64
	data string
	noID bool // sent without its id line (until an event with one follows it)
}

func newFakeNode(t *testing.T, path string, tracks ...string) (*fakeNode, *httptest.Server) {
	n := &fakeNode{t: t, path: path, tracks: tracks, changed: make(chan struct{}), kick: make(chan struct{}),
		frames: map[string][]fakeEvent{}, ended: map[string]bool{}, lastIDs: map[string][]string{}}
	srv := httptest.NewServer(http.StripPrefix("/stats", n))
	t.Cleanup(srv.Close)
	return n, srv
}

func (n *fakeNode) change() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// write appends a frame to track as the next group.
func (n *fakeNode) write(track, data string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fs := n.frames[track]
	g := int64(0)
	if len(fs) > 0 {
		g = fs[len(fs)-1].id[0] + 1
	}
	n.frames[track] = append(fs, fakeEvent{id: [2]int64{g, 0}, data: data})
	n.ended[track] = false
	n.change()
}

// put appends a frame to track with the id g.f (noID: sent without it).
func (n *fakeNode) put(track string, g, f int64, data string, noID bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.frames[track] = append(n.frames[track], fakeEvent{id: [2]int64{g, f}, data: data, noID: noID})
	n.ended[track] = false
	n.change()
}

// restart replaces track's frames with a new broadcast's, numbered from 0.
func (n *fakeNode) restart(track, data string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.frames[track] = []fakeEvent{{id: [2]int64{0, 0}, data: data}}
	n.ended[track] = false
	n.change()
}

// disconnect breaks every open stream.
func (n *fakeNode) disconnect() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.kick)
	n.kick = make(chan struct{})
}

func (n *fakeNode) end(track string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ended[track] = true
	n.change()
}

func (n *fakeNode) requests(track string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.lastIDs[track]...)
}

func (n *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	track := strings.TrimPrefix(r.URL.Path, "/")
	if track == "" {
		n.mu.Lock()
		body, _ := json.Marshal(Index{Path: n.path, Tracks: n.tracks})
		n.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
		return
	}
	n.mu.Lock()
	n.lastIDs[track] = append(n.lastIDs[track], r.Header.Get("Last-Event-ID"))
	silent, drop, kick := n.silent, n.dropAfter, n.kick
	n.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush()
	if silent {
		<-r.Context().Done()
		return
	}
	var after [2]int64
	resume := false
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		after, resume = parseEventID(id)
		n.mu.Lock()
		if fs := n.frames[track]; len(fs) > 0 && cmpID(after, fs[len(fs)-1].id) > 0 {
			resume = false // an id this broadcast never sent: start afresh
		}
		n.mu.Unlock()
	}
	fmt.Fprint(w, "retry: 10\n: ping\n\n")
	sent := 0
	started := false
	for {
		n.mu.Lock()
		fs, ended, changed := n.frames[track], n.ended[track], n.changed
		n.mu.Unlock()
		for i, f := range fs {
			switch {
			case !started && !resume && i < len(fs)-1:
				continue // a fresh subscriber starts at the latest frame
			case (started || resume) && cmpID(f.id, after) <= 0:
				continue
			}
			if f.noID {
				fmt.Fprintf(w, "data: %s\n\n", f.data)
			} else {
				fmt.Fprintf(w, "id: %d.%d\ndata: %s\n\n", f.id[0], f.id[1], f.data)
			}
			fl.Flush()
			if !f.noID {
				after = f.id // an event without an id leaves the last id as it was
			}
			started = true
			if sent++; drop > 0 && sent == drop {
				return
			}
		}
		if len(fs) > 0 {
			started = true
		}
		if ended {
			fmt.Fprint(w, "event: end\ndata:\n\n")
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		case <-kick:
			return
		case <-time.After(20 * time.Millisecond):
			fmt.Fprint(w, ": ping\n\n")
			fl.Flush()
		}
	}
}

// errLog collects the errors a follower reports.
type errLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errLog) count(target error) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.errs {
		if errors.Is(e, target) {
			n++
		}
	}
	return n
}

func (l *errLog) has(target error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errs {
		if errors.Is(e, target) {
			return true
		}
	}
	return false
}

// eventually polls cond until it holds, failing after a generous
// hang-guard timeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startFollow(t *testing.T, agg *Aggregator, url string, opts HTTPOptions) (cancel func() error) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts.MinBackoff, opts.MaxBackoff = time.Millisecond, 20*time.Millisecond
	go func() { done <- FollowHTTP(ctx, agg, url, opts) }()
	var once sync.Once
	var err error
	cancel = func() error {
		once.Do(func() {
			stop()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Error("FollowHTTP did not return after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { cancel() }) // before the server closes: cleanups run last-in first-out
	return cancel
}

func pubFrame(bytes int) string {
	return `{"acme/live":{"broadcasts":1,"subscriptions":1,"bytes":` + strconv.Itoa(bytes) + `}}`
}

func totalBytes(a *Aggregator) uint64 { return a.View(time.Now()).Total("", Publisher).Bytes }

func TestFollowHTTPStreamsResumesAndEnds(t *testing.T) {
	node, srv := newFakeNode(t, ".stats/node/sjc/1", "publisher.json", "publisher.json.z", "sessions.json", "bogus")
	node.dropAfter = 2 // every stream breaks after two events
	node.write("publisher.json", pubFrame(1))
	node.write("publisher.json", pubFrame(10)) // the latest when the follower joins
	node.write("sessions.json", `{"acme":{"sessions":3,"sessions_closed":1}}`)
	agg := newAgg(t, Config{})
	var errs errLog
	stop := startFollow(t, agg, srv.URL+"/stats/", HTTPOptions{OnError: errs.add})

	eventually(t, "the latest frame", func() bool { return totalBytes(agg) == 10 })
	for i := 2; i <= 7; i++ {
		node.write("publisher.json", pubFrame(i*10))
		eventually(t, fmt.Sprint("frame ", i), func() bool { return totalBytes(agg) == uint64(i*10) })
	}
	v := agg.View(time.Now())
	if v.Broadcasts[0].Node != "sjc/1" || v.LiveSessions("", "acme") != 2 {
		t.Fatalf("node %q live sessions %d, want sjc/1 and 2", v.Broadcasts[0].Node, v.LiveSessions("", "acme"))
	}
	// The streams broke after every second event and resumed where they
	// left off.
	ids := node.requests("publisher.json")
	if len(ids) < 3 || ids[0] != "" || ids[1] != "2.0" {
		t.Fatalf("Last-Event-ID of successive requests %q, want \"\" then 2.0 ...", ids)
	}
	// "bogus" is reported; the compressed sibling of a plain track
	// followed is skipped without a report.
	if skipped := errs.count(ErrSkippedTrack); skipped == 0 || !errs.has(ErrNotStatsTrack) || skipped != errs.count(ErrNotStatsTrack) {
		t.Fatalf("skipped tracks reported: %v, want bogus only", errs.errs)
	}
	if reqs := node.requests("publisher.json.z"); len(reqs) != 0 {
		t.Fatalf("compressed track requested %d times", len(reqs))
	}

	node.end("publisher.json")
	node.end("sessions.json")
	eventually(t, "the tracks to end", func() bool {
		for _, tr := range agg.View(time.Now()).Tracks {
			if !tr.Ended {
				return false
			}
		}
		return true
	})
	if got := agg.View(time.Now()).TotalViewers(""); got != 0 {
		t.Fatalf("viewers after the end: %d", got)
	}
	// The server keeps serving the closed broadcast's last frame and end;
	// the follower polls it with backoff and does not count it twice.
	n := len(node.requests("publisher.json"))
	eventually(t, "the follower to poll the ended node", func() bool { return len(node.requests("publisher.json")) >= n+3 })
	if got := totalBytes(agg); got != 70 {
		t.Fatalf("total bytes %d after the ended broadcast was served again, want 70", got)
	}
	// The node publishes again: the follower finds it through the index,
	// and the new broadcast's counts are a new segment.
	node.restart("publisher.json", pubFrame(5))
	eventually(t, "the node to come back", func() bool { return totalBytes(agg) == 75 })
	if ids := node.requests("publisher.json"); ids[len(ids)-1] != "" {
		t.Fatalf("resumed a new broadcast with Last-Event-ID %q", ids[len(ids)-1])
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("FollowHTTP returned %v, want context.Canceled", err)
	}
}

func TestFollowHTTPTreatsAnEarlierIDAsANewBroadcast(t *testing.T) {
	node, srv := newFakeNode(t, ".stats/node", "publisher.json")
	node.write("publisher.json", pubFrame(1))
	node.write("publisher.json", pubFrame(100))
	agg := newAgg(t, Config{})
	stop := startFollow(t, agg, srv.URL+"/stats", HTTPOptions{})
	defer stop()
	eventually(t, "the first frame", func() bool { return totalBytes(agg) == 100 })
	// The producer restarted while the follower was away, counting from
	// 0 and numbering groups from 0: no counter goes down (200 > 100), but
	// the id does.
	node.restart("publisher.json", `{"acme/live":{"broadcasts":1,"subscriptions":1,"bytes":200}}`)
	node.disconnect()
	eventually(t, "the restart", func() bool { return totalBytes(agg) == 300 })
	if ids := node.requests("publisher.json"); len(ids) != 2 || ids[1] != "1.0" {
		t.Fatalf("requests with Last-Event-ID %q, want \"\" then 1.0", ids)
	}
	if v := agg.View(time.Now()); v.Broadcasts[0].Node != "" || v.Broadcasts[0].Segments != 2 {
		t.Fatalf("row %+v, want node \"\" with 2 segments", v.Broadcasts[0])
	}
}

func TestFollowHTTPSkipsOversizedEvents(t *testing.T) {
	node, srv := newFakeNode(t, ".stats/node/x", "publisher.json")
	node.write("publisher.json", `{"big":{"bytes":1},"pad":"`+strings.Repeat("x", 1<<20)+`"}`)
	agg := newAgg(t, Config{Decoder: Decoder{MaxFrameSize: 4096}})
	var errs errLog
	stop := startFollow(t, agg, srv.URL+"/stats", HTTPOptions{OnError: errs.add})
	defer stop()
	eventually(t, "the oversized event to be reported", func() bool { return errs.has(ErrFrameTooLarge) })
	node.write("publisher.json", pubFrame(9))
	eventually(t, "the next frame", func() bool { return totalBytes(agg) == 9 })
	if ids := node.requests("publisher.json"); len(ids) != 1 {
		t.Fatalf("the stream reconnected (%q): an oversized event should be skipped in place", ids)
	}
}

func TestFollowHTTPReconnectsAnIdleStream(t *testing.T) {
	node, srv := newFakeNode(t, ".stats/node/x", "publisher.json")
	node.silent = true
	agg := newAgg(t, Config{})
	var errs errLog
	stop := startFollow(t, agg, srv.URL+"/stats", HTTPOptions{IdleTimeout: 50 * time.Millisecond, OnError: errs.add})
	defer stop()
	eventually(t, "a reconnect", func() bool { return len(node.requests("publisher.json")) >= 3 })
}

func TestFollowHTTPRetriesABadIndex(t *testing.T) {
	var calls sync.WaitGroup
	calls.Add(3)
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		n++
		switch n {
		case 1:
			http.Error(w, "no", http.StatusServiceUnavailable)
		case 2:
			w.Write([]byte(`{"path": 7}`))
		case 3:
			w.Write([]byte(`{"path":"elsewhere","tracks":[]}`))
		default:
			w.Write([]byte(strings.Repeat(" ", 2<<20)))
		}
	}))
	defer srv.Close()
	agg := newAgg(t, Config{})
	var errs errLog
	stop := startFollow(t, agg, srv.URL, HTTPOptions{OnError: errs.add})
	eventually(t, "four index errors", func() bool {
		errs.mu.Lock()
		defer errs.mu.Unlock()
		return len(errs.errs) >= 4
	})
	stop()
	for i, want := range []string{"503", "cannot unmarshal", "not a stats broadcast", "larger than"} {
		if !strings.Contains(errs.errs[i].Error(), want) {
			t.Errorf("error %d: %v, want it to mention %q", i, errs.errs[i], want)
		}
	}
}

func TestFollowHTTPGivesUpOnAServerThatNeverAnswers(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path == "/" {
			w.Write([]byte(`{"path":".stats/node/x","tracks":["publisher.json"]}`))
			return
		}
		select { // no headers, ever
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	agg := newAgg(t, Config{})
	stop := startFollow(t, agg, srv.URL, HTTPOptions{IdleTimeout: 50 * time.Millisecond})
	defer stop()
	eventually(t, "the request to be retried", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return calls["/publisher.json"] >= 3
	})
}

// An event whose id skips groups means frames were lost: the follower
// reports a Gap, so a key absent across it is not taken as re-created
// however long it was absent; with consecutive ids it is.
func TestFollowHTTPReportsSkippedFramesAsAGap(t *testing.T) {
	for _, c := range []struct {
		name string
		skip int
		want uint64
	}{
		{"consecutive ids", 0, 10 + 15},
		{"skipped ids", 3, 15},
	} {
		t.Run(c.name, func(t *testing.T) {
			node, srv := newFakeNode(t, ".stats/node", "publisher.json")
			var mu sync.Mutex
			clock := t0
			now := func() time.Time {
				mu.Lock()
				defer mu.Unlock()
				return clock
			}
			agg := newAgg(t, Config{Retention: NoRetention, RetentionSlack: time.Second})
			stop := startFollow(t, agg, srv.URL+"/stats", HTTPOptions{Now: now})
			defer stop()
			node.write("publisher.json", `{"k":{"subscriptions":1,"subscriptions_closed":1,"bytes":10}}`)
			eventually(t, "the first frame", func() bool { return totalBytes(agg) == 10 })
			mu.Lock()
			clock = clock.Add(time.Hour)
			mu.Unlock()
			// The next event is numbered as if skip frames came between.
			node.mu.Lock()
			fs := node.frames["publisher.json"]
			node.frames["publisher.json"] = append(fs, fakeEvent{id: [2]int64{fs[len(fs)-1].id[0] + 1 + int64(c.skip), 0},
				data: `{"k":{"subscriptions":2,"subscriptions_closed":2,"bytes":15}}`})
			node.change()
			node.mu.Unlock()
			eventually(t, "the key back", func() bool { return agg.View(now()).Tracks[0].Frames == 2 })
			if got := totalBytes(agg); got != c.want {
				t.Fatalf("total %d, want %d", got, c.want)
			}
		})
	}
}

// zgroup compresses a group's frames as a producer does and returns each
// in standard base64, as httpstats sends them.
func zgroup(frames ...string) []string {
	w := zframe.NewWriter(1 << 20)
	var out []string
	for i, f := range frames {
		var b []byte
		if i == 0 {
			b = w.Snapshot([]byte(f))
		} else {
			b = w.Delta([]byte(f))
		}
		out = append(out, base64.StdEncoding.EncodeToString(b))
		w.Commit(true)
	}
	return out
}

// With Compressed, the follower streams the ".z" flavor of every track
// the index lists it for (the plain one otherwise), places each event by
// its G.F id, and rebuilds the values: hostile events (bad base64, no id)
// are reported and change nothing; a group broken by one is skipped to
// its end (ErrMissingSnapshot), never applied wrong; the next group's
// snapshot resumes it; an earlier id is a new broadcast, whose groups the
// track takes afresh.
func TestFollowHTTPCompressedTracks(t *testing.T) {
	node, srv := newFakeNode(t, ".stats/node/sjc/1", "publisher.json", "publisher.json.z", "sessions.json", "bogus")
	g5 := zgroup(`{"acme/live":{"subscriptions":1,"bytes":1}}`, `{"acme/live":{"bytes":2}}`, `{"acme/live":{"bytes":3}}`, `{"acme/live":{"bytes":4}}`)
	node.put("publisher.json.z", 5, 0, g5[0], false)
	node.write("sessions.json", `{"acme":{"sessions":3,"sessions_closed":1}}`)
	agg := newAgg(t, Config{})
	var errs errLog
	stop := startFollow(t, agg, srv.URL+"/stats", HTTPOptions{Compressed: true, OnError: errs.add})
	defer stop()
	eventually(t, "the snapshot", func() bool { return totalBytes(agg) == 1 })
	node.put("publisher.json.z", 5, 1, g5[1], false)
	eventually(t, "a delta", func() bool { return totalBytes(agg) == 2 })
	node.put("publisher.json.z", 5, 2, "not base64!", false)
	eventually(t, "the bad event reported", func() bool { return errs.has(ErrCompression) })
	node.put("publisher.json.z", 5, 3, g5[3], false)
	eventually(t, "the broken group reported", func() bool { return errs.has(ErrMissingSnapshot) })
	if got := totalBytes(agg); got != 2 {
		t.Fatalf("bytes %d after a broken group, want 2", got)
	}
	g6 := zgroup(`{"acme/live":{"subscriptions":1,"bytes":10}}`, `{"acme/live":{"bytes":11}}`)
	node.put("publisher.json.z", 6, 0, g6[0], false)
	eventually(t, "the next group", func() bool { return totalBytes(agg) == 10 })
	node.put("publisher.json.z", 6, 1, zgroup(`{}`)[0], true) // no id: cannot be placed
	eventually(t, "the event without an id reported", func() bool { return errs.has(ErrFrameOrder) })
	node.put("publisher.json.z", 6, 1, g6[1], false)
	eventually(t, "the group going on", func() bool { return totalBytes(agg) == 11 })

	if got := agg.View(time.Now()).LiveSessions("", "acme"); got != 2 {
		t.Fatalf("live sessions %d from the plain sessions track, want 2", got)
	}
	if n := len(node.requests("publisher.json")); n != 0 {
		t.Fatalf("the plain publisher track requested %d times", n)
	}
	if n := len(node.requests("sessions.json")); n == 0 {
		t.Fatal("the sessions track, listed plain only, was not followed")
	}
	if skipped := errs.count(ErrSkippedTrack); skipped == 0 || skipped != errs.count(ErrNotStatsTrack) {
		t.Fatalf("skipped tracks reported: %v, want bogus only", errs.errs)
	}

	// The producer restarted: ids from 0 again, values from zero.
	node.restart("publisher.json.z", zgroup(`{"acme/live":{"subscriptions":1,"bytes":5}}`)[0])
	node.disconnect()
	eventually(t, "the new broadcast", func() bool { return totalBytes(agg) == 16 })
	if v := agg.View(time.Now()); v.Broadcasts[0].Segments != 2 || v.Broadcasts[0].Track.Compressed {
		t.Fatalf("row %+v, want the plain track's, with 2 segments", v.Broadcasts[0])
	}
}
