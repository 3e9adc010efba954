package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/moqlite"
)

// subscribePage is a page that connects to the moq-lite URL given in its
// query with @moq/lite, WebTransport only, subscribes to every track
// named there, and keeps each frame received, with its group's sequence
// and its index in the group, in window.moq for the test to read.
const subscribePage = `<!doctype html>
<meta charset="utf-8">
<script type="importmap">%s</script>
<script type="module">
import { Connection, Path } from "@moq/lite";
const q = new URLSearchParams(location.search);
const state = window.moq = { version: "", error: "", frames: {} };
const b64 = (u8) => btoa(String.fromCharCode(...u8));
try {
  // An http:// URL makes @moq/lite fetch /certificate.sha256 beside it
  // and connect to the https:// URL with that hash as
  // serverCertificateHashes.
  const conn = await Connection.connect(new URL(q.get("url")), { websocket: { enabled: false } });
  state.version = conn.version;
  const broadcast = conn.consume(Path.from(q.get("broadcast")));
  for (const name of q.getAll("track")) {
    const frames = state.frames[name] = [];
    const track = broadcast.subscribe(name, 0);
    (async () => {
      for (let group; (group = await track.recvGroup()); ) {
        (async () => {
          for (let i = 0, f; (f = await group.readFrame()); i++) frames.push({ group: group.sequence, index: i, data: b64(f) });
        })().catch((e) => { state.error ||= String(e); });
      }
    })().catch((e) => { state.error ||= String(e); });
  }
} catch (e) {
  state.error = String(e && e.stack || e);
}
</script>
`

// browserFrame is a frame as the page received it.
type browserFrame struct {
	Group uint64
	Index int
	Data  string // base64
}

type browserState struct {
	Version string
	Error   string
	Frames  map[string][]browserFrame
}

// servePage serves subscribePage with an import map of the installed
// @moq/lite, and the modules, on a loopback port of its own: a page of
// another origin than the demo, as a page embedding the stats would be.
func servePage(t *testing.T, modules string) string {
	t.Helper()
	im, err := importMap(modules, "/node_modules/")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/node_modules/", http.StripPrefix("/node_modules", moduleFiles(modules)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, subscribePage, im)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestBrowserSubscribesOverWebTransport loads a page in headless Chromium
// that subscribes with @moq/lite 0.2.2 to every track of the demo's stats
// broadcast, plain and compressed, over WebTransport with the demo's
// self-signed certificate given by hash (fetched from
// /certificate.sha256, across origins). The session must speak
// moq-lite-04, and every frame the page received must be, byte for byte,
// the frame the Stats wrote at that group and index.
func TestBrowserSubscribesOverWebTransport(t *testing.T) {
	modules := needInteropModules(t)
	b := startBrowser(t, true)
	rec := newRecorder()
	o := testOptions()
	o.record = rec
	var mu sync.Mutex
	var sessions []moqlite.ConnInfo
	o.moqAuthorize = func(info moqlite.ConnInfo, req moqlite.Request) error {
		if req.Action == moqlite.ActionConnect {
			mu.Lock()
			sessions = append(sessions, info)
			mu.Unlock()
		}
		return nil
	}
	d := startDemo(t, o)
	page := servePage(t, modules)

	tracks := trackList()
	q := "?url=" + d.base + moqPath + "&broadcast=.stats/node/" + o.node
	for _, name := range tracks {
		q += "&track=" + name
	}
	run1(t, b, chromedp.Navigate(page+"/"+q))

	// Enough frames: some on every track (a track is written only when it
	// changes, so a quiet one has its first group alone), three groups
	// of publisher.json, which changes every tick, and a compressed
	// track's delta (a frame past a group's first) somewhere.
	var s browserState
	eventually(t, func() string {
		return fmt.Sprintf("the page did not receive frames of every track: %+v\nbrowser output:\n%s", s, b.output.String())
	}, func() bool {
		s = run1(t, b, chromedp.Evaluate[browserState](`window.moq ?? {}`))
		if s.Error != "" {
			t.Fatalf("the page failed: %s\nbrowser output:\n%s", s.Error, b.output.String())
		}
		deltas := 0
		for _, name := range tracks {
			groups := map[uint64]bool{}
			for _, f := range s.Frames[name] {
				groups[f.Group] = true
				if f.Index > 0 {
					deltas++
				}
			}
			if len(groups) == 0 || name == moqstats.TrackPublisher && len(groups) < 3 {
				return false
			}
		}
		return deltas > 0
	})
	if s.Version != "moq-lite-04" {
		t.Errorf("the page's session speaks %q; want moq-lite-04", s.Version)
	}
	mu.Lock()
	for _, info := range sessions {
		if info.Transport != "webtransport" {
			t.Errorf("a session over %q; want WebTransport only", info.Transport)
		}
	}
	if len(sessions) == 0 {
		t.Error("the demo's moq-lite server saw no session")
	}
	mu.Unlock()

	n := 0
	for _, name := range tracks {
		for _, f := range s.Frames[name] {
			got, err := base64.StdEncoding.DecodeString(f.Data)
			if err != nil {
				t.Fatal(err)
			}
			group, _ := rec.group(name, f.Group)
			if f.Index >= len(group) {
				t.Errorf("%s: the page received frame %d of group %d, which the Stats never wrote (%d frames there)", name, f.Index, f.Group, len(group))
				continue
			}
			if !bytes.Equal(got, group[f.Index]) {
				t.Errorf("%s group %d frame %d: the page received %q; the Stats wrote %q", name, f.Group, f.Index, got, group[f.Index])
			}
			n++
		}
		// Within a group, frames arrive in order, none missing.
		next := map[uint64]int{}
		for _, f := range s.Frames[name] {
			if f.Index != next[f.Group] {
				t.Errorf("%s group %d: frame %d arrived after %d frames", name, f.Group, f.Index, next[f.Group])
			}
			next[f.Group] = f.Index + 1
		}
	}
	t.Logf("%d frames over WebTransport, all as written", n)

	// The demo stops cleanly with the page subscribed: the subscriptions
	// end with the final frames.
	out, err := d.stop(t)
	if err != nil {
		t.Errorf("the demo stopped with %v while the page was subscribed; output:\n%s", err, out)
	}
}

// trackList is every track of the demo's stats: the plain ones, each
// followed by its compressed sibling.
func trackList() []string {
	var out []string
	for _, name := range moqstats.Tracks() {
		out = append(out, name, name+moqstats.CompressedSuffix)
	}
	return out
}
