package httpstats_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/moqstats/moqstats/httpstats"
)

// wantJSONError checks an error response: status, a JSON {"error":msg}
// body, and that the body does not contain any of leaks.
func wantJSONError(t *testing.T, what string, resp *http.Response, body string, status int, msg string, leaks ...string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("%s: status = %d, want %d", what, resp.StatusCode, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type = %q, want application/json", what, ct)
	}
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != msg {
		t.Errorf("%s: body = %q (%v), want {\"error\":%q}", what, body, err, msg)
	}
	for _, leak := range leaks {
		if strings.Contains(body, leak) {
			t.Errorf("%s: body %q contains %q, want it withheld", what, body, leak)
		}
	}
}

func TestListing(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	c := ts.Client()

	resp, body := get(t, c, "GET", ts.URL+"/stats/")
	wantJSONError(t, "GET / before Publish", resp, body, http.StatusNotFound, "no broadcast announced")

	b := publish(t, o, ".stats/node/sjc/1", "publisher.json", "internal/publisher.json", "publisher.json.z")
	resp, body = get(t, c, "GET", ts.URL+"/stats/")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET / = %d %q, want 200 application/json", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	want := `{"path":".stats/node/sjc/1","tracks":["publisher.json","internal/publisher.json","publisher.json.z"]}` + "\n"
	if body != want {
		t.Errorf("GET / body = %q, want %q", body, want)
	}

	resp, body = get(t, c, "HEAD", ts.URL+"/stats/")
	if resp.StatusCode != http.StatusOK || body != "" || resp.ContentLength != int64(len(want)) {
		t.Errorf("HEAD / = %d, body %q, Content-Length %d; want 200, no body, %d", resp.StatusCode, body, resp.ContentLength, len(want))
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	resp, body = get(t, c, "GET", ts.URL+"/stats/")
	wantJSONError(t, "GET / after Close", resp, body, http.StatusNotFound, "no broadcast announced")
}

func TestGetLatestFrame(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	c := ts.Client()
	url := ts.URL + "/stats/internal/publisher.json"

	resp, body := get(t, c, "GET", url)
	wantJSONError(t, "GET track before Publish", resp, body, http.StatusNotFound, "no broadcast announced")

	b := publish(t, o, "p", "publisher.json", "internal/publisher.json")
	resp, body = get(t, c, "GET", url)
	if resp.StatusCode != http.StatusNoContent || body != "" || resp.Header.Get("ETag") != "" {
		t.Errorf("GET track before its first frame = %d %q ETag %q, want 204, no body, no ETag", resp.StatusCode, body, resp.Header.Get("ETag"))
	}

	write(t, b, "internal/publisher.json", `{"a":1}`)
	write(t, b, "internal/publisher.json", `{"a":2}`)
	write(t, b, "publisher.json", `{"other":1}`)
	resp, body = get(t, c, "GET", url)
	if resp.StatusCode != http.StatusOK || body != `{"a":2}` {
		t.Fatalf("GET track = %d %q, want 200 {\"a\":2}", resp.StatusCode, body)
	}
	for k, want := range map[string]string{
		"Content-Type":           "application/json",
		"Cache-Control":          "no-cache",
		"Vary":                   "Accept",
		"X-Content-Type-Options": "nosniff",
		"Content-Length":         "7",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("GET track header %s = %q, want %q", k, got, want)
		}
	}
	etag := resp.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `.`+id(firstGroup+1, 0)+`"`) {
		t.Errorf("ETag = %s, want a strong tag ending in the group and frame %s", etag, id(firstGroup+1, 0))
	}

	resp, body = get(t, c, "HEAD", url)
	if resp.StatusCode != http.StatusOK || body != "" || resp.Header.Get("ETag") != etag || resp.ContentLength != 7 {
		t.Errorf("HEAD track = %d %q ETag %s Content-Length %d; want 200, no body, %s, 7", resp.StatusCode, body, resp.Header.Get("ETag"), resp.ContentLength, etag)
	}
}

func TestIfNoneMatch(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	c := ts.Client()
	url := ts.URL + "/stats/t.json"
	b := publish(t, o, "p", "t.json")

	resp, _ := get(t, c, "GET", url, "If-None-Match", "*")
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("If-None-Match: * before any frame: status %d, want 204", resp.StatusCode)
	}
	write(t, b, "t.json", `{"v":1}`)
	resp, _ = get(t, c, "GET", url)
	etag := resp.Header.Get("ETag")
	for _, tc := range []struct {
		inm  string
		want int
	}{
		{etag, http.StatusNotModified},
		{"W/" + etag, http.StatusNotModified},
		{`"x", ` + etag + `, "y"`, http.StatusNotModified},
		{"*", http.StatusNotModified},
		{`"x", "y"`, http.StatusOK},
		{strings.TrimSuffix(etag, `"`) + `0"`, http.StatusOK},
		{"garbage", http.StatusOK},
	} {
		resp, body := get(t, c, "GET", url, "If-None-Match", tc.inm)
		if resp.StatusCode != tc.want {
			t.Errorf("If-None-Match %s: status %d, want %d", tc.inm, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusNotModified && (body != "" || resp.Header.Get("ETag") != etag) {
			t.Errorf("If-None-Match %s: 304 with body %q, ETag %s; want no body and ETag %s", tc.inm, body, resp.Header.Get("ETag"), etag)
		}
	}

	write(t, b, "t.json", `{"v":2}`)
	resp, body := get(t, c, "GET", url, "If-None-Match", etag)
	if resp.StatusCode != http.StatusOK || body != `{"v":2}` || resp.Header.Get("ETag") == etag {
		t.Errorf("If-None-Match with the old ETag after a write: %d %q ETag %s; want 200, the new frame and a new ETag", resp.StatusCode, body, resp.Header.Get("ETag"))
	}
}

// TestETagsNeverRepeatForDifferentContent: every (broadcast, frame)
// state gets its own ETag, across writes, appends, a Close and a new
// Publish, and across Origins whose groups start from the same clock.
func TestETagsNeverRepeatForDifferentContent(t *testing.T) {
	seen := map[string]string{} // ETag -> body
	check := func(c *http.Client, url string) {
		t.Helper()
		resp, body := get(t, c, "GET", url)
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != http.StatusOK || etag == "" {
			t.Fatalf("GET %s = %d ETag %q, want 200 with an ETag", url, resp.StatusCode, etag)
		}
		if prev, dup := seen[etag]; dup {
			t.Errorf("ETag %s served for %q and again for %q, want a new one", etag, prev, body)
		}
		seen[etag] = body
	}
	for range 2 { // two Origins with the same clock
		o := newOrigin(t, httpstats.Options{})
		ts := serve(t, o)
		c := ts.Client()
		for round := range 2 {
			b := publish(t, o, "p", "t.json", "t.json.z")
			for i := range 3 {
				write(t, b, "t.json", fmt.Sprintf(`{"round":%d,"i":%d}`, round, i))
				check(c, ts.URL+"/stats/t.json")
				write(t, b, "t.json.z", fmt.Sprint("snapshot", round, i))
				check(c, ts.URL+"/stats/t.json.z")
				appendFrame(t, b, "t.json.z", "delta")
				check(c, ts.URL+"/stats/t.json.z")
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestGroupTrackServesCurrentGroup: a ".z" track's GET is its whole
// current group, and a WriteFrame starts the next group.
func TestGroupTrackServesCurrentGroup(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	c := ts.Client()
	url := ts.URL + "/stats/publisher.json.z"
	b := publish(t, o, "p", "publisher.json", "publisher.json.z")

	type group struct {
		Group  uint64   `json:"group"`
		Frames [][]byte `json:"frames"` // encoding/json decodes std base64
	}
	fetch := func() (group, string) {
		t.Helper()
		resp, body := get(t, c, "GET", url)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET .z track = %d %q, want 200 application/json", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var g group
		if err := json.Unmarshal([]byte(body), &g); err != nil {
			t.Fatalf("GET .z body %q: %v", body, err)
		}
		return g, resp.Header.Get("ETag")
	}
	frames := [][]byte{{0x78, 0x00, 0xff}, {0x0a, '\n', 0}, {}}
	if err := b.WriteFrame("publisher.json.z", frames[0]); err != nil {
		t.Fatal(err)
	}
	g, etag0 := fetch()
	if g.Group != firstGroup || len(g.Frames) != 1 || string(g.Frames[0]) != string(frames[0]) {
		t.Errorf("after WriteFrame: group %d frames %x, want group %d frames [%x]", g.Group, g.Frames, firstGroup, frames[0])
	}
	for _, f := range frames[1:] {
		if err := b.AppendFrame("publisher.json.z", f); err != nil {
			t.Fatal(err)
		}
	}
	g, etag2 := fetch()
	if g.Group != firstGroup || len(g.Frames) != 3 {
		t.Fatalf("after two appends: group %d, %d frames; want group %d, 3 frames", g.Group, len(g.Frames), firstGroup)
	}
	for i := range frames {
		if string(g.Frames[i]) != string(frames[i]) {
			t.Errorf("frame %d = %x, want %x", i, g.Frames[i], frames[i])
		}
	}
	if wantSuffix := "." + id(firstGroup, 2) + `"`; etag2 == etag0 || !strings.HasSuffix(etag2, wantSuffix) {
		t.Errorf("ETag after appends = %s (before: %s), want a new one ending %s", etag2, etag0, wantSuffix)
	}
	// The raw body spells the frames in std base64 with padding.
	_, body := get(t, c, "GET", url)
	want := `{"group":1000,"frames":["` + base64.StdEncoding.EncodeToString(frames[0]) + `","` +
		base64.StdEncoding.EncodeToString(frames[1]) + `",""]}`
	if body != want {
		t.Errorf("body = %s, want %s", body, want)
	}

	if err := b.WriteFrame("publisher.json.z", []byte("next")); err != nil {
		t.Fatal(err)
	}
	if g, _ := fetch(); g.Group != firstGroup+1 || len(g.Frames) != 1 || string(g.Frames[0]) != "next" {
		t.Errorf("after a new WriteFrame: group %d frames %q, want group %d frames [next]", g.Group, g.Frames, firstGroup+1)
	}
}

func TestBinaryTrack(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	b := publish(t, o, "p", "raw.bin")
	write(t, b, "raw.bin", "\x00\xffbytes")
	resp, body := get(t, ts.Client(), "GET", ts.URL+"/stats/raw.bin")
	if resp.StatusCode != http.StatusOK || body != "\x00\xffbytes" || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("GET binary track = %d %q %q, want 200, the frame, application/octet-stream", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
}

func TestUnknownTrackIs404(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	publish(t, o, "p", "internal/publisher.json")
	for _, path := range []string{"internal", "internal/", "internal/publisher.json/", "publisher.json"} {
		resp, body := get(t, ts.Client(), "GET", ts.URL+"/stats/"+path)
		wantJSONError(t, "GET "+path, resp, body, http.StatusNotFound, "unknown track")
		resp, body = get(t, ts.Client(), "GET", ts.URL+"/stats/"+path, "Accept", "text/event-stream")
		wantJSONError(t, "stream "+path, resp, body, http.StatusNotFound, "unknown track")
	}
}

func TestOnlyGetAndHeadAllowed(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	publish(t, o, "p", "t.json")
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"} {
		for _, path := range []string{"/stats/", "/stats/t.json"} {
			resp, body := get(t, ts.Client(), m, ts.URL+path)
			wantJSONError(t, m+" "+path, resp, body, http.StatusMethodNotAllowed, "method not allowed")
			if got := resp.Header.Get("Allow"); got != "GET, HEAD" {
				t.Errorf("%s %s: Allow = %q, want \"GET, HEAD\"", m, path, got)
			}
		}
	}
}

func TestRequestLimits(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	b := publish(t, o, "p", "t.json")
	write(t, b, "t.json", "{}")
	c := ts.Client()
	url := ts.URL + "/stats/t.json"

	resp, body := get(t, c, "GET", ts.URL+"/stats/"+strings.Repeat("a", httpstats.MaxTrackName+1))
	wantJSONError(t, "over-long path", resp, body, http.StatusRequestURITooLong, "path too long")
	resp, _ = get(t, c, "GET", ts.URL+"/stats/"+strings.Repeat("a", httpstats.MaxTrackName))
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("path of MaxTrackName bytes: status %d, want 404", resp.StatusCode)
	}

	for _, tc := range []struct{ header, value string }{
		{"Accept", strings.Repeat("a", httpstats.MaxHeader+1)},
		{"If-None-Match", strings.Repeat("a", httpstats.MaxHeader+1)},
		{"Last-Event-ID", strings.Repeat("1", httpstats.MaxLastEventID+1)},
	} {
		resp, body := get(t, c, "GET", url, tc.header, tc.value)
		wantJSONError(t, "over-long "+tc.header, resp, body, http.StatusRequestHeaderFieldsTooLarge, "request header too large")
		// At the limit it is read.
		resp, _ = get(t, c, "GET", url, tc.header, tc.value[1:])
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s of the maximum length: status %d, want 200", tc.header, resp.StatusCode)
		}
	}
	// Several header lines count together.
	half := strings.Repeat("a", httpstats.MaxHeader/2+1)
	resp, body = get(t, c, "GET", url, "Accept", half, "Accept", half)
	wantJSONError(t, "two Accept lines over the limit together", resp, body, http.StatusRequestHeaderFieldsTooLarge, "request header too large")
}

func TestAuthorize(t *testing.T) {
	var sawPaths []string
	o := newOrigin(t, httpstats.Options{
		Authorize: func(r *http.Request) error {
			sawPaths = append(sawPaths, r.URL.Path)
			switch r.Header.Get("Authorization") {
			case "Bearer good":
				return nil
			case "":
				return fmt.Errorf("no token for customer acme: %w", httpstats.ErrUnauthorized)
			default:
				return errors.New("token for customer globex may not read acme")
			}
		},
	})
	ts := serve(t, o)
	c := ts.Client()
	b := publish(t, o, "acme/stats", "t.json")
	write(t, b, "t.json", `{"acme/live":1}`)

	for _, path := range []string{"/stats/", "/stats/t.json", "/stats/missing.json"} {
		resp, body := get(t, c, "GET", ts.URL+path)
		wantJSONError(t, "no token "+path, resp, body, http.StatusUnauthorized, "unauthorized", "acme", "customer")
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="moqstats"` {
			t.Errorf("no token %s: WWW-Authenticate = %q, want the default challenge", path, got)
		}
		resp, body = get(t, c, "GET", ts.URL+path, "Authorization", "Bearer bad")
		wantJSONError(t, "bad token "+path, resp, body, http.StatusForbidden, "forbidden", "acme", "globex", "customer")
		if got := resp.Header.Get("WWW-Authenticate"); got != "" {
			t.Errorf("bad token %s: WWW-Authenticate = %q, want none on 403", path, got)
		}
	}
	// A rejected stream request never opens a stream.
	resp, body := get(t, c, "GET", ts.URL+"/stats/t.json", "Accept", "text/event-stream", "Authorization", "Bearer bad")
	wantJSONError(t, "bad token stream", resp, body, http.StatusForbidden, "forbidden")
	resp, _ = get(t, c, "HEAD", ts.URL+"/stats/t.json", "Authorization", "Bearer bad")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("HEAD with a bad token: status %d, want 403", resp.StatusCode)
	}

	resp, body = get(t, c, "GET", ts.URL+"/stats/t.json", "Authorization", "Bearer good")
	if resp.StatusCode != http.StatusOK || body != `{"acme/live":1}` {
		t.Errorf("good token: %d %q, want 200 and the frame", resp.StatusCode, body)
	}
	s := openStream(t, c, ts.URL+"/stats/t.json", "Authorization", "Bearer good")
	if ev := s.next(t); ev.Data != `{"acme/live":1}` {
		t.Errorf("good token stream: first event %+v, want the frame", ev)
	}
	if !slices.Contains(sawPaths, "/t.json") || !slices.Contains(sawPaths, "/") {
		t.Errorf("hook saw paths %q, want them relative to the mount point (/ and /t.json)", sawPaths)
	}
}

func TestAuthorizeCustomChallenge(t *testing.T) {
	o := newOrigin(t, httpstats.Options{
		Challenge: `Basic realm="stats"`,
		Authorize: func(*http.Request) error { return httpstats.ErrUnauthorized },
	})
	ts := serve(t, o)
	resp, _ := get(t, ts.Client(), "GET", ts.URL+"/stats/")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="stats"` {
		t.Errorf("status %d, WWW-Authenticate %q; want 401, Basic realm=\"stats\"", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

// TestAcceptNegotiation: only an explicit text/event-stream with q > 0
// opens a stream.
func TestAcceptNegotiation(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	b := publish(t, o, "p", "t.json")
	write(t, b, "t.json", "{}")
	for accept, stream := range map[string]bool{
		"text/event-stream":                         true,
		"TEXT/Event-Stream":                         true,
		"application/json, text/event-stream;q=0.5": true,
		`text/html;x="a,b", text/event-stream`:      true,
		"text/event-stream; charset=utf-8":          true,
		"text/event-stream;q=0":                     false,
		"text/event-stream;q=0.000":                 false,
		"*/*":                                       false,
		"text/*":                                    false,
		"application/json":                          false,
		"":                                          false,
		`text/html;x="text/event-stream", text/html`: false,
	} {
		s, resp := tryStream(t, ts.Client(), ts.URL+"/stats/t.json", "Accept", accept)
		ct := resp.Header.Get("Content-Type")
		if got := ct == "text/event-stream"; got != stream || resp.StatusCode != http.StatusOK {
			t.Errorf("Accept %q: %d %s, want 200 and a stream: %v", accept, resp.StatusCode, ct, stream)
		}
		s.close()
	}
	wantNoStreams(t, o)
}

func TestStreamHeadOpensNoStream(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	publish(t, o, "p", "t.json")
	resp, body := get(t, ts.Client(), "HEAD", ts.URL+"/stats/t.json", "Accept", "text/event-stream")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || body != "" {
		t.Errorf("HEAD stream = %d %q %q, want 200 text/event-stream and no body", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if n := o.Streams(); n != 0 {
		t.Errorf("Streams() after HEAD = %d, want 0", n)
	}
	resp, _ = get(t, ts.Client(), "HEAD", ts.URL+"/stats/nope", "Accept", "text/event-stream")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD stream of an unknown track: status %d, want 404", resp.StatusCode)
	}
}

// noFlush is a ResponseWriter that cannot flush.
type noFlush struct{ w http.ResponseWriter }

func (n noFlush) Header() http.Header         { return n.w.Header() }
func (n noFlush) Write(p []byte) (int, error) { return n.w.Write(p) }
func (n noFlush) WriteHeader(code int)        { n.w.WriteHeader(code) }

func TestStreamNeedsFlushing(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	publish(t, o, "p", "t.json")
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/t.json", nil)
	req.Header.Set("Accept", "text/event-stream")
	o.ServeHTTP(noFlush{rec}, req)
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("stream on a ResponseWriter that cannot flush: status %d, want 500", rec.Code)
	}
	if n := o.Streams(); n != 0 {
		t.Errorf("Streams() = %d, want 0", n)
	}
}

// TestMountedAtRoot: without StripPrefix the handler serves / and
// /<track> directly, and an empty path (StripPrefix of the bare prefix)
// is the listing.
func TestMountedAtRoot(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	b := publish(t, o, "p", "t.json")
	write(t, b, "t.json", "{}")
	for path, want := range map[string]int{"/": 200, "/t.json": 200, "": 200} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = path
		o.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("path %q: status %d, want %d", path, rec.Code, want)
		}
	}
}
