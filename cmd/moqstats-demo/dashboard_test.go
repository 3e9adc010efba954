package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/httpstats"
	"github.com/moqstats/moqstats/internal/promtest"
)

// screenshotEnv names a file, relative to the repository's root, that
// TestDashboardShowsTheFramesLive also saves its screenshot to:
//
//	MOQSTATS_SCREENSHOT=docs/dashboard.png go test -run Dashboard .
const screenshotEnv = "MOQSTATS_SCREENSHOT"

// egressTracks and ingressTracks are the tracks the page sums, in the
// order it sums them.
var (
	egressTracks  = []string{moqstats.TrackPublisher, moqstats.TrackInternalPublisher}
	ingressTracks = []string{moqstats.TrackSubscriber, moqstats.TrackInternalSubscriber}
	pageTracks    = append(append(slices.Clone(egressTracks), ingressTracks...), moqstats.TrackSessions)
)

// browser is a headless Chromium driven by chromedp, with every request
// its page made.
type browser struct {
	ctx context.Context

	mu       sync.Mutex
	requests []string
	output   promtest.LockedBuffer
}

// startBrowser launches Debian's Chromium with a fresh profile, with
// everything that could reach beyond this machine on its own turned off.
// QUIC is off unless quic is set (WebTransport needs it).
func startBrowser(t *testing.T, quic bool) *browser {
	t.Helper()
	exe := needBinary(t, "chromium", "/usr/bin/chromium", ".ci/install-chromium")
	b := &browser{}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI; the page is our own
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", !quic),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(&b.output),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v\n%s", exe, err, b.output.String())
	}
	b.ctx = ctx
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			b.mu.Lock()
			b.requests = append(b.requests, e.Request.URL)
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	return b
}

// run runs an action, bounded by the hang guard.
func run1[T any](t *testing.T, b *browser, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, hangGuard)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %v\nbrowser output:\n%s", err, b.output.String())
	}
	return v
}

// offHost returns the requests that went anywhere but host (an
// http://host/ URL). data: URLs never leave the page.
func offHost(requests []string, host string) []string {
	var out []string
	for _, r := range requests {
		u, err := url.Parse(r)
		if err != nil || !(u.Scheme == "data" || u.Scheme == "http" && u.Host == host) {
			out = append(out, r)
		}
	}
	return out
}

func TestOffHostCatchesEveryOtherDestination(t *testing.T) {
	got := offHost([]string{
		"http://127.0.0.1:4000/", "http://127.0.0.1:4000/stats/publisher.json", "data:,",
		"http://127.0.0.1:4001/", "https://127.0.0.1:4000/", "http://127.0.0.2:4000/", "http://localhost:4000/",
		"https://fonts.example/x.woff", "ws://127.0.0.1:4000/", "http://127.0.0.1:4000@evil.example/", "%zz",
	}, "127.0.0.1:4000")
	want := []string{
		"http://127.0.0.1:4001/", "https://127.0.0.1:4000/", "http://127.0.0.2:4000/", "http://localhost:4000/",
		"https://fonts.example/x.woff", "ws://127.0.0.1:4000/", "http://127.0.0.1:4000@evil.example/", "%zz",
	}
	if !slices.Equal(got, want) {
		t.Errorf("offHost = %q; want %q", got, want)
	}
}

// pageState is what the page shows, read from its DOM in one go, so it is
// one rendering's state.
type pageState struct {
	Conn     string
	Node     string
	Images   int
	Pwned    string
	Cards    map[string]string
	Rows     []pageRow
	Sessions []pageSession
	Tracks   []pageTrackRow
}

// pageRow is a broadcast's row: its data attributes and its cells' text.
type pageRow struct {
	Key, Viewers, Egress, Ingress, Sent string
	Cells                               []string
	Points                              int
}

// pageSession is a root's row in the sessions table.
type pageSession struct {
	Root, Live, Joined string
	Cells              []string
}

// pageTrackRow is a track's row in the tracks table: its state and the
// ids of the frames the page shows.
type pageTrackRow struct {
	Track, Status, ID, PrevID, DtMs, Stale, Frames, Rejected string
}

const readPage = `(() => {
  const a = (el, name) => el.getAttribute(name) ?? '';
  const cells = (tr) => [...tr.cells].map((td) => td.textContent);
  return {
    conn: a(document.getElementById('conn'), 'data-state'),
    node: document.getElementById('node').textContent,
    images: document.images.length,
    pwned: document.body.dataset.pwned ?? '',
    cards: Object.fromEntries([...document.querySelectorAll('.card .value')].map((el) => [el.id, a(el, 'data-value')])),
    rows: [...document.querySelectorAll('#broadcasts tbody tr')].map((tr) => ({
      key: a(tr, 'data-broadcast'), viewers: a(tr, 'data-viewers'), egress: a(tr, 'data-egress-bps'),
      ingress: a(tr, 'data-ingress-bps'), sent: a(tr, 'data-sent'), cells: cells(tr),
      points: Number(a(tr.querySelector('svg.sparkline'), 'data-points') || 0),
    })),
    sessions: [...document.querySelectorAll('#sessions tbody tr')].map((tr) => ({
      root: a(tr, 'data-root'), live: a(tr, 'data-live'), joined: a(tr, 'data-joined'), cells: cells(tr),
    })),
    tracks: [...document.querySelectorAll('#tracks tbody tr')].map((tr) => ({
      track: a(tr, 'data-track'), status: a(tr, 'data-status'), id: a(tr, 'data-frame-id'),
      prevID: a(tr, 'data-prev-frame-id'), dtMs: a(tr, 'data-dt-ms'), stale: a(tr, 'data-stale'),
      frames: a(tr, 'data-frames'), rejected: a(tr, 'data-rejected'),
    })),
  };
})()`

// pageTrack is one track's state as the page showed it, with the frames
// it names.
type pageTrack struct {
	id, prevID  string
	cur, prev   counts // nil: no such frame shown
	dt          float64
	stale, live bool
}

// checkPage checks everything the page shows against the frames the
// server sent with the ids the page names, and returns how many
// broadcasts had a known, non-zero egress rate.
func checkPage(t *testing.T, s pageState, f *follower) (rated int) {
	t.Helper()
	tracks := map[string]*pageTrack{}
	for _, tr := range s.Tracks {
		pt := &pageTrack{id: tr.ID, prevID: tr.PrevID, stale: tr.Stale == "true", live: tr.Status == "live"}
		for _, x := range []struct {
			id  string
			dst *counts
		}{{tr.ID, &pt.cur}, {tr.PrevID, &pt.prev}} {
			if x.id == "" {
				continue
			}
			frame, ok := f.frame(tr.Track, x.id)
			if !ok {
				t.Fatalf("the page shows frame %s of %s, which the server never sent", x.id, tr.Track)
			}
			*x.dst = decodeFrame(t, frame)
		}
		if tr.DtMs != "" {
			dt, err := strconv.ParseFloat(tr.DtMs, 64)
			if err != nil || dt <= 0 {
				t.Fatalf("%s: data-dt-ms %q; want a positive number", tr.Track, tr.DtMs)
			}
			pt.dt = dt
		}
		tracks[tr.Track] = pt
	}
	for _, name := range pageTracks {
		if tracks[name] == nil {
			t.Fatalf("the tracks table lacks %s", name)
		}
	}

	// The rows are exactly the keys of the traffic tracks' frames.
	var keys []string
	for _, name := range append(slices.Clone(egressTracks), ingressTracks...) {
		for k := range tracks[name].cur {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	var shown []string
	for _, r := range s.Rows {
		shown = append(shown, r.Key)
	}
	if !slices.Equal(shown, keys) {
		t.Fatalf("rows %q; the frames shown have keys %q", shown, keys)
	}

	// rate mirrors the page's rule: over the tracks whose current frame
	// has the key, the increase of bytes since the track's previous
	// frame (all of it after a counter went down), in bits per second
	// over the time between the two frames; unknown without a previous
	// frame carrying the key; 0 on a quiet track.
	rate := func(names []string, key string) (bps float64, known bool) {
		known = true
		for _, name := range names {
			pt := tracks[name]
			cur, ok := pt.cur[key]
			if !ok {
				continue
			}
			if pt.stale {
				continue
			}
			prev, ok := pt.prev[key]
			if pt.prev == nil || !ok || pt.dt <= 0 {
				known = false
				continue
			}
			d := cur["bytes"] - prev["bytes"]
			for _, field := range counterNames {
				if cur[field] < prev[field] {
					d = cur["bytes"]
					break
				}
			}
			bps += float64(d*8000) / pt.dt
		}
		return bps, known
	}
	checkRate := func(key, what, attr, text string, names []string) {
		want, known := rate(names, key)
		if !known {
			if attr != "" || text != "–" {
				t.Errorf("%s %s: shows %q (%q); the frames give no rate yet", key, what, attr, text)
			}
			return
		}
		got, err := strconv.ParseFloat(attr, 64)
		if err != nil || !closeTo(got, want) {
			t.Errorf("%s %s: data %q; the frames give %v bit/s", key, what, attr, want)
		}
		if text != formatBitrate(got) {
			t.Errorf("%s %s: shows %q for %v; want %q", key, what, text, got, formatBitrate(got))
		}
	}
	var viewersSum uint64
	for _, r := range s.Rows {
		var viewers, sent uint64
		for _, name := range egressTracks {
			viewers += viewersIn(tracks[name].cur, r.Key)
			sent += tracks[name].cur[r.Key]["bytes"]
		}
		viewersSum += viewers
		if r.Viewers != strconv.FormatUint(viewers, 10) || r.Cells[1] != r.Viewers {
			t.Errorf("%s: shows %q viewers (data %q); frame %s of publisher.json says %d", r.Key, r.Cells[1], r.Viewers, tracks[moqstats.TrackPublisher].id, viewers)
		}
		if r.Sent != strconv.FormatUint(sent, 10) || r.Cells[5] != formatBytes(sent) {
			t.Errorf("%s: sent %q (data %q); the egress frames say %d (%s)", r.Key, r.Cells[5], r.Sent, sent, formatBytes(sent))
		}
		if r.Cells[0] != r.Key {
			t.Errorf("row %q shows its key as %q", r.Key, r.Cells[0])
		}
		checkRate(r.Key, "ingress", r.Ingress, r.Cells[2], ingressTracks)
		checkRate(r.Key, "egress", r.Egress, r.Cells[3], egressTracks)
		if v, err := strconv.ParseFloat(r.Egress, 64); err == nil && v > 0 {
			rated++
		}
	}
	if s.Cards["sum-viewers"] != strconv.FormatUint(viewersSum, 10) || s.Cards["sum-broadcasts"] != strconv.Itoa(len(s.Rows)) {
		t.Errorf("cards %v; want %d broadcasts and %d viewers", s.Cards, len(s.Rows), viewersSum)
	}

	// Sessions by root: the sessions.json frame shown.
	sess := tracks[moqstats.TrackSessions].cur
	var roots []string
	for _, r := range s.Sessions {
		roots = append(roots, r.Root)
		e, ok := sess[r.Root]
		if !ok {
			t.Errorf("root %q shown; not in sessions.json frame %s", r.Root, tracks[moqstats.TrackSessions].id)
			continue
		}
		live := strconv.FormatUint(e["sessions"]-e["sessions_closed"], 10)
		if r.Live != live || r.Cells[1] != live || r.Joined != strconv.FormatUint(e["sessions"], 10) {
			t.Errorf("root %q: shows %q connected, %q joined; sessions.json frame %s says %s and %d", r.Root, r.Cells[1], r.Joined, tracks[moqstats.TrackSessions].id, live, e["sessions"])
		}
	}
	if len(roots) != len(sess) {
		t.Errorf("roots shown %q; sessions.json frame %s has %d", roots, tracks[moqstats.TrackSessions].id, len(sess))
	}
	return rated
}

// counterNames are the per-broadcast counters a frame carries.
var counterNames = []string{"announced", "announced_closed", "broadcasts", "broadcasts_closed",
	"subscriptions", "subscriptions_closed", "bytes", "frames", "groups"}

// closeTo compares rates computed by the page and here the same way, up to
// the last bits of a float64.
func closeTo(a, b float64) bool {
	d := a - b
	return d <= 1e-9*max(1, b) && -d <= 1e-9*max(1, b)
}

// TestDashboardShowsTheFramesLive runs the demo and its page in headless
// Chromium: it waits for live numbers, checks what the page shows against
// the frames the server sent with the ids the page names (several times,
// as viewers come and go), saves a screenshot, checks that the page made
// no request beyond the demo's address, and that it notices the stats
// broadcast closing when the demo stops.
func TestDashboardShowsTheFramesLive(t *testing.T) {
	b := startBrowser(t, false)
	o := testOptions()
	minPoints := 5
	save := os.Getenv(screenshotEnv)
	if save != "" {
		// A screenshot worth keeping: ticks as a person would see them,
		// and a sparkline with some history.
		o.interval, minPoints, o.node = 500*time.Millisecond, 60, "demo/1"
	}
	d := startDemo(t, o)
	f := follow(t, d.base, pageTracks...)
	host := strings.TrimPrefix(d.base, "http://")

	run1(t, b, chromedp.Steps(chromedp.EmulateViewport(1280, 820), chromedp.Navigate(d.base+"/")))

	var s pageState
	eventually(t, func() string { return fmt.Sprintf("the page never showed live numbers; last state %+v", s) }, func() bool {
		s = run1(t, b, chromedp.Evaluate[pageState](readPage))
		if s.Conn != "live" || len(s.Rows) < o.broadcasts {
			return false
		}
		for _, tr := range s.Tracks {
			if tr.Status != "live" {
				return false
			}
		}
		watched := 0
		for _, r := range s.Rows {
			if r.Ingress == "" || r.Egress == "" || r.Points < minPoints {
				return false
			}
			if r.Viewers != "0" {
				watched++
			}
		}
		return watched >= 2
	})
	if s.Node != ".stats/node/"+o.node {
		t.Errorf("page names the stats broadcast %q; want .stats/node/%s", s.Node, o.node)
	}

	png := run1(t, b, chromedp.FullScreenshot(100))
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a PNG: % x", png[:min(len(png), 8)])
	}
	if err := os.WriteFile(filepath.Join(t.TempDir(), "dashboard.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if save != "" {
		if !filepath.IsAbs(save) {
			save = filepath.Join("..", "..", save) // the repository's root
		}
		if err := os.MkdirAll(filepath.Dir(save), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(save, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot saved to %s", save)
	}

	rated := 0
	for i := range 3 {
		if i > 0 {
			time.Sleep(5 * o.interval)
		}
		s = run1(t, b, chromedp.Evaluate[pageState](readPage))
		rated += checkPage(t, s, f)
	}
	if rated == 0 {
		t.Error("no broadcast showed a non-zero egress rate, so rates went unchecked")
	}
	if err := f.err(); err != nil {
		t.Error(err)
	}

	// The demo stops: the page sees the end events and clears its rows.
	if _, err := d.stop(t); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string { return fmt.Sprintf("the page did not notice the demo stopping: %+v", s) }, func() bool {
		s = run1(t, b, chromedp.Evaluate[pageState](readPage))
		return (s.Conn == "closed" || s.Conn == "offline") && len(s.Rows) == 0 && len(s.Sessions) == 0
	})

	b.mu.Lock()
	requests := slices.Clone(b.requests)
	b.mu.Unlock()
	if off := offHost(requests, host); off != nil {
		t.Errorf("the page made requests beyond %s: %q", host, off)
	}
	for _, want := range []string{d.base + "/", d.base + "/dashboard.js", d.base + "/dashboard.css", d.base + "/stats/", d.base + "/stats/publisher.json", d.base + "/stats/internal/subscriber.json"} {
		if !slices.Contains(requests, want) {
			t.Errorf("the page never requested %s; requests seen: %q", want, requests)
		}
	}
}

// TestDashboardShowsHostileKeysAsText runs the page on broadcast paths
// and roots a client could choose: markup, and names of Object.prototype
// members. They must show as text, unchanged, with no element created
// from them, and count like any other key.
func TestDashboardShowsHostileKeysAsText(t *testing.T) {
	b := startBrowser(t, false)
	o := testOptions()
	o.catalog = []broadcastSpec{
		{`acme/<img src=x onerror="document.body.dataset.pwned=1">`, 2_000_000},
		{"__proto__/live", 1_000_000},
		{"constructor", 1_000_000},
		{"acme/&lt;b&gt;&amp;", 1_000_000},
	}
	o.viewers = 40
	d := startDemo(t, o)
	f := follow(t, d.base, pageTracks...)
	run1(t, b, chromedp.Navigate(d.base+"/"))

	var s pageState
	eventually(t, func() string { return fmt.Sprintf("the page never showed every key with a rate: %+v", s) }, func() bool {
		s = run1(t, b, chromedp.Evaluate[pageState](readPage))
		if len(s.Rows) < len(o.catalog) || len(s.Sessions) < 2 {
			return false
		}
		for _, r := range s.Rows {
			if r.Ingress == "" {
				return false
			}
		}
		return true
	})
	checkPage(t, s, f)
	var keys []string
	for _, r := range s.Rows {
		keys = append(keys, r.Key)
	}
	for _, spec := range o.catalog {
		if !slices.Contains(keys, spec.path) {
			t.Errorf("key %q not shown as is; rows %q", spec.path, keys)
		}
	}
	if s.Images != 0 || s.Pwned != "" {
		t.Errorf("a key became markup: %d images, pwned %q", s.Images, s.Pwned)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if off := offHost(b.requests, strings.TrimPrefix(d.base, "http://")); off != nil {
		t.Errorf("the page made requests beyond the demo: %q", off)
	}
}

// TestDashboardComputesFromFramesWrittenByHand serves the page over an
// httpstats Origin whose frames the test writes itself, and checks the
// page's arithmetic on each: viewers are broadcasts - broadcasts_closed,
// a key's first frame has no rate, a rate is the increase of bytes over
// the time between two frames, all of the bytes after a counter went
// down (a new segment), 0 once the track went quiet; keys leave with the
// frames; and after the stats broadcast closes and a new one starts, the
// page follows the new one.
func TestDashboardComputesFromFramesWrittenByHand(t *testing.T) {
	b := startBrowser(t, false)
	origin, err := httpstats.New(httpstats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	handleDashboard(mux)
	mux.Handle("/stats/", http.StripPrefix("/stats", origin))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(origin.Shutdown) // first: it ends the streams Close waits for

	publish := func(node string) moqstats.Broadcast {
		t.Helper()
		bc, err := origin.Publish(".stats/node/"+node, moqstats.Tracks())
		if err != nil {
			t.Fatal(err)
		}
		for _, track := range moqstats.Tracks() {
			if err := bc.WriteFrame(track, []byte("{}")); err != nil {
				t.Fatal(err)
			}
		}
		return bc
	}
	bc := publish("hand")
	f := follow(t, srv.URL, pageTracks...)
	written := map[string]int{}
	for _, track := range pageTracks {
		written[track] = 1
	}
	var s pageState
	read := func() pageState { return run1(t, b, chromedp.Evaluate[pageState](readPage)) }
	// shown waits until the page rendered every frame written so far.
	shown := func() {
		t.Helper()
		eventually(t, func() string {
			return fmt.Sprintf("the page did not render the frames written %v: %+v", written, s.Tracks)
		}, func() bool {
			s = read()
			for _, tr := range s.Tracks {
				if tr.Status != "live" || tr.Frames != strconv.Itoa(written[tr.Track]) {
					return false
				}
			}
			return len(s.Tracks) == len(pageTracks)
		})
	}
	write := func(track, frame string) {
		t.Helper()
		if err := bc.WriteFrame(track, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		written[track]++
	}
	row := func(key string) pageRow {
		t.Helper()
		for _, r := range s.Rows {
			if r.Key == key {
				return r
			}
		}
		t.Fatalf("no row for %s: %+v", key, s.Rows)
		return pageRow{}
	}
	dt := func(track string) float64 {
		t.Helper()
		for _, tr := range s.Tracks {
			if tr.Track == track {
				v, err := strconv.ParseFloat(tr.DtMs, 64)
				if err != nil {
					t.Fatalf("%s: data-dt-ms %q", track, tr.DtMs)
				}
				return v
			}
		}
		t.Fatalf("no track %s", track)
		return 0
	}
	wantRate := func(what, got string, want float64) {
		t.Helper()
		v, err := strconv.ParseFloat(got, 64)
		if err != nil || !closeTo(v, want) {
			t.Errorf("%s: %q; want %v", what, got, want)
		}
	}

	run1(t, b, chromedp.Navigate(srv.URL+"/"))
	shown()
	if len(s.Rows) != 0 || s.Node != ".stats/node/hand" {
		t.Fatalf("baseline frames: rows %+v, node %q; want none, .stats/node/hand", s.Rows, s.Node)
	}

	// First frames carrying the keys: counts, no rates.
	write(moqstats.TrackPublisher, `{"a/x":{"broadcasts":3,"broadcasts_closed":1,"bytes":1000},"b/y":{"broadcasts":1,"bytes":10}}`)
	write(moqstats.TrackSubscriber, `{"a/x":{"bytes":500}}`)
	write(moqstats.TrackSessions, `{"acme":{"sessions":5,"sessions_closed":2},"zeta":{"sessions":1,"sessions_closed":1}}`)
	shown()
	checkPage(t, s, f)
	if r := row("a/x"); r.Viewers != "2" || r.Egress != "" || r.Cells[3] != "–" || r.Ingress != "" || r.Sent != "1000" {
		t.Errorf("a/x after its first frame: %+v; want 2 viewers, no rates, 1000 bytes sent", r)
	}
	if r := row("b/y"); r.Viewers != "1" || r.Ingress != "0" {
		t.Errorf("b/y: %+v; want 1 viewer, ingress 0 (not on the ingress tracks)", r)
	}
	if len(s.Sessions) != 2 || s.Sessions[0].Root != "acme" || s.Sessions[0].Live != "3" || s.Sessions[0].Joined != "5" || s.Sessions[1].Live != "0" {
		t.Errorf("sessions %+v; want acme 3 connected of 5 joined, zeta 0", s.Sessions)
	}

	// Frames that are not JSON objects are counted and skipped.
	before := s
	for _, bad := range []string{`[1,2]`, `{"a/x":`} {
		if err := bc.WriteFrame(moqstats.TrackPublisher, []byte(bad)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, func() string { return fmt.Sprintf("the page did not count the bad frames: %+v", s.Tracks) }, func() bool {
		s = read()
		for _, tr := range s.Tracks {
			if tr.Track == moqstats.TrackPublisher {
				return tr.Rejected == "2"
			}
		}
		return false
	})
	checkPage(t, s, f)
	if !reflect.DeepEqual(s.Rows, before.Rows) {
		t.Errorf("rows after bad frames %+v; want them unchanged, %+v", s.Rows, before.Rows)
	}

	// An increase: a rate over the time between the frames; b/y left.
	write(moqstats.TrackPublisher, `{"a/x":{"broadcasts":3,"broadcasts_closed":1,"bytes":5000}}`)
	shown()
	checkPage(t, s, f)
	if len(s.Rows) != 1 {
		t.Errorf("rows %+v; want b/y gone with its key", s.Rows)
	}
	wantRate("a/x egress after +4000 bytes", row("a/x").Egress, 4000*8000/dt(moqstats.TrackPublisher))

	// A counter went down: a new segment, grown from zero.
	write(moqstats.TrackPublisher, `{"a/x":{"broadcasts":1,"bytes":300}}`)
	shown()
	checkPage(t, s, f)
	if r := row("a/x"); r.Viewers != "1" {
		t.Errorf("a/x viewers %q after the reset; want 1", r.Viewers)
	}
	wantRate("a/x egress after a reset to 300 bytes", row("a/x").Egress, 300*8000/dt(moqstats.TrackPublisher))

	// Quiet: no frame for a while means no change, so the rate reads 0.
	eventually(t, func() string { return fmt.Sprintf("publisher.json never went quiet: %+v", s.Tracks) }, func() bool {
		s = read()
		return slices.ContainsFunc(s.Tracks, func(tr pageTrackRow) bool {
			return tr.Track == moqstats.TrackPublisher && tr.Stale == "true"
		})
	})
	checkPage(t, s, f)
	if r := row("a/x"); r.Egress != "0" || r.Cells[3] != "0 bit/s" || r.Viewers != "1" {
		t.Errorf("a/x on a quiet track: %+v; want egress 0, still 1 viewer", r)
	}

	// The broadcast closes: the page drops its counts and waits.
	if err := bc.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string { return fmt.Sprintf("the page did not notice the close: %+v", s) }, func() bool {
		s = read()
		return s.Conn == "closed" && len(s.Rows) == 0 && len(s.Sessions) == 0
	})

	// A new broadcast: the page finds it again and starts over.
	bc = publish("again")
	f = follow(t, srv.URL, pageTracks...)
	if err := bc.WriteFrame(moqstats.TrackPublisher, []byte(`{"c/z":{"broadcasts":2,"bytes":42}}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string { return fmt.Sprintf("the page did not follow the new broadcast: %+v", s) }, func() bool {
		s = read()
		return s.Conn == "live" && len(s.Rows) == 1 && s.Rows[0].Key == "c/z"
	})
	checkPage(t, s, f)
	if r := row("c/z"); r.Viewers != "2" || r.Egress != "" || s.Node != ".stats/node/again" {
		t.Errorf("after the new broadcast: %+v, node %q; want c/z with 2 viewers and no rate yet, node .stats/node/again", r, s.Node)
	}
}
