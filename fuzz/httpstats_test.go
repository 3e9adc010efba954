package fuzz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moqstats/moqstats/httpstats"
)

// httpTracks are the tracks FuzzHTTPRequest publishes: a plain JSON track
// with two groups, one with a '/' in its name, a group track with three
// frames, and a binary track; empty.json is never written.
var httpTracks = []string{"t.json", "internal/t.json", "t.json.z", "raw", "empty.json"}

// eventIDPattern is the id syntax, for the oracle's own reading of
// Last-Event-ID.
var eventIDPattern = regexp.MustCompile(`^([0-9]+)\.([0-9]+)$`)

// FuzzHTTPRequest sends the handler an arbitrary method, path and the
// headers it parses (Accept, If-None-Match, Last-Event-ID), over a
// broadcast holding an arbitrary frame, and checks the answer against the
// documented rules: the status for each path and limit, the frame served,
// and for a stream, which ends at once because its request's context is
// already done, the events it starts with: decided here from the
// Last-Event-ID with math/big and a regexp, and read back from the wire
// with a line splitter independent of the handler's encoder.
func FuzzHTTPRequest(f *testing.F) {
	f.Add("GET", "/t.json", "", "", "", []byte(`{"a":1}`))
	f.Add("GET", "/t.json.z", "text/event-stream", "", "1000.0", []byte("\x00\xff"))
	f.Add("GET", "/internal/t.json", "text/event-stream", "", "", []byte("a\r\nb\rc\nd"))
	f.Add("HEAD", "/raw", "", "*", "", []byte{})
	f.Add("GET", "/", "text/event-stream;q=0", "W/\"x\"", "", []byte("{}"))
	f.Add("GET", "/empty.json", "text/event-stream", "", "", []byte("{}"))
	f.Add("POST", "/t.json", "", "", "", []byte("{}"))
	f.Add("GET", "/t.json", `text/html;x="a,b",Text/Event-Stream; q=0.5`, "", "18446744073709551617.0", []byte("x"))
	f.Fuzz(func(t *testing.T, method, path, accept, ifNoneMatch, lastEventID string, frame []byte) {
		o, err := httpstats.New(httpstats.Options{})
		if err != nil {
			t.Fatal(err)
		}
		bc, err := o.Publish("p", httpTracks)
		if err != nil {
			t.Fatal(err)
		}
		b := bc.(*httpstats.Broadcast)
		must := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		must(b.WriteFrame("t.json", []byte("old")))
		must(b.WriteFrame("t.json", frame))
		must(b.WriteFrame("internal/t.json", frame))
		must(b.WriteFrame("t.json.z", []byte("snapshot")))
		must(b.AppendFrame("t.json.z", frame))
		must(b.AppendFrame("t.json.z", []byte("delta")))
		must(b.WriteFrame("raw", frame))
		// The group numbers start from the clock: read them back.
		first := groupOf(t, o)

		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a stream sends what is due at once, then ends
		req := (&http.Request{
			Method:     method,
			URL:        &url.URL{Path: path},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header:     http.Header{},
		}).WithContext(ctx)
		for k, v := range map[string]string{"Accept": accept, "If-None-Match": ifNoneMatch, "Last-Event-ID": lastEventID} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		rec := httptest.NewRecorder()
		o.ServeHTTP(rec, req)
		code, body := rec.Code, rec.Body.String()
		streamed := rec.Header().Get("Content-Type") == "text/event-stream"

		name := strings.TrimPrefix(path, "/")
		var want int
		switch {
		case len(name) > httpstats.MaxTrackName:
			want = http.StatusRequestURITooLong
		case method != "GET" && method != "HEAD":
			want = http.StatusMethodNotAllowed
		case len(accept) > httpstats.MaxHeader || len(ifNoneMatch) > httpstats.MaxHeader || len(lastEventID) > httpstats.MaxLastEventID:
			want = http.StatusRequestHeaderFieldsTooLarge
		case name == "":
			want = http.StatusOK
		case !slices.Contains(httpTracks, name):
			want = http.StatusNotFound
		}
		if want != 0 {
			if code != want || streamed {
				t.Fatalf("%s %q: status %d (stream %v), want %d", method, path, code, streamed, want)
			}
			return
		}

		// A known track. Whether it streams is up to the Accept parser;
		// only the clear cases are checked here.
		mentions := strings.Contains(strings.ToLower(accept), "text/event-stream")
		if !mentions && streamed || accept == "text/event-stream" && !streamed {
			t.Fatalf("Accept %q: streamed %v", accept, streamed)
		}
		if streamed {
			if code != http.StatusOK {
				t.Fatalf("stream of %q: status %d, want 200", name, code)
			}
			if method == "HEAD" {
				if body != "" {
					t.Fatalf("HEAD stream of %q: body %q, want none", name, body)
				}
				return
			}
			checkStreamStart(t, name, body, frame, first, lastEventID)
			return
		}

		if name == "empty.json" {
			if code != http.StatusNoContent || body != "" {
				t.Fatalf("GET empty.json: %d %q, want 204 and no body", code, body)
			}
			return
		}
		etag := rec.Header().Get("ETag")
		if code == http.StatusNotModified {
			if !strings.Contains(ifNoneMatch, "*") && !strings.Contains(ifNoneMatch, strings.Trim(etag, `"`)) {
				t.Fatalf("If-None-Match %q answered 304 for ETag %s, which it does not name", ifNoneMatch, etag)
			}
			if body != "" {
				t.Fatalf("304 with body %q, want none", body)
			}
			return
		}
		if ifNoneMatch == etag || ifNoneMatch == "*" {
			t.Fatalf("If-None-Match %q with ETag %s: status %d, want 304", ifNoneMatch, etag, code)
		}
		if code != http.StatusOK {
			t.Fatalf("%s %q: status %d, want 200", method, name, code)
		}
		wantBody := string(frame)
		if name == "t.json.z" {
			wantBody = `{"group":` + strconv.FormatUint(first, 10) + `,"frames":["` +
				base64.StdEncoding.EncodeToString([]byte("snapshot")) + `","` +
				base64.StdEncoding.EncodeToString(frame) + `","` +
				base64.StdEncoding.EncodeToString([]byte("delta")) + `"]}`
		}
		if method == "HEAD" {
			wantBody = ""
		}
		if body != wantBody {
			t.Fatalf("%s %q: body %q, want %q", method, name, body, wantBody)
		}
	})
}

// groupOf returns the group number of t.json.z's first group, the one
// every track started at, from a GET.
func groupOf(t *testing.T, o *httpstats.Origin) uint64 {
	rec := httptest.NewRecorder()
	o.ServeHTTP(rec, httptest.NewRequest("GET", "/t.json.z", nil))
	var g struct{ Group uint64 }
	if err := json.Unmarshal(rec.Body.Bytes(), &g); err != nil {
		t.Fatalf("GET t.json.z: %v", err)
	}
	return g.Group
}

// checkStreamStart checks the events a new stream on track starts with,
// given its Last-Event-ID.
func checkStreamStart(t *testing.T, track, body string, frame []byte, first uint64, lastEventID string) {
	type ev struct{ id, data string }
	// The current group, its frames, and how an event carries a frame.
	var group uint64
	var frames [][]byte
	text := strings.HasSuffix(track, ".json")
	switch track {
	case "t.json":
		group, frames = first+1, [][]byte{frame}
	case "t.json.z":
		group, frames = first, [][]byte{[]byte("snapshot"), frame, []byte("delta")}
	case "internal/t.json", "raw":
		group, frames = first, [][]byte{frame}
	case "empty.json":
	}
	// From the id: the frames after it if it names a frame of the current
	// group, else the group from frame 0 (".z") or the latest frame.
	from := len(frames) - 1
	if strings.HasSuffix(track, ".z") {
		from = 0
	}
	if m := eventIDPattern.FindStringSubmatch(lastEventID); m != nil && len(frames) > 0 {
		g, _ := new(big.Int).SetString(m[1], 10)
		f, _ := new(big.Int).SetString(m[2], 10)
		if g.Cmp(new(big.Int).SetUint64(group)) == 0 && f.Cmp(big.NewInt(int64(len(frames)))) < 0 {
			from = int(f.Int64()) + 1
		}
	}
	var want []ev
	for i := max(from, 0); i < len(frames); i++ {
		data := base64.StdEncoding.EncodeToString(frames[i])
		if text {
			// Line breaks come back as LF.
			data = strings.ReplaceAll(strings.ReplaceAll(string(frames[i]), "\r\n", "\n"), "\r", "\n")
		}
		want = append(want, ev{strconv.FormatUint(group, 10) + "." + strconv.Itoa(i), data})
	}

	// Read the body: blocks end with a blank line; an event's data lines
	// are joined with LF.
	if strings.ContainsRune(body, '\r') {
		t.Fatalf("stream body %q has a CR, which a client reads as a line break", body)
	}
	if !strings.HasPrefix(body, "retry: ") || !strings.HasSuffix(body, "\n\n") {
		t.Fatalf("stream body %q, want a retry block first and complete blocks", body)
	}
	blocks := strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n")
	var got []ev
	for _, block := range blocks[1:] {
		var e ev
		var data []string
		for _, line := range strings.Split(block, "\n") {
			field, value, ok := strings.Cut(line, ": ")
			switch {
			case !ok:
				t.Fatalf("stream line %q in %q, want \"field: value\"", line, body)
			case field == "id":
				e.id = value
			case field == "data":
				data = append(data, value)
			default:
				t.Fatalf("stream field %q in %q, want only id and data", field, body)
			}
		}
		e.data = strings.Join(data, "\n")
		got = append(got, e)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("stream of %s with Last-Event-ID %q: events %q, want %q", track, lastEventID, got, want)
	}
}
