package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// registerProbe puts a handler on http.DefaultServeMux, once per process,
// that the demo must not serve.
var registerProbe sync.Once

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// TestServesDashboardStatsMetricsAndProfiles checks every endpoint the
// demo serves, and that it serves nothing from http.DefaultServeMux.
func TestServesDashboardStatsMetricsAndProfiles(t *testing.T) {
	registerProbe.Do(func() { http.HandleFunc("/default-mux-probe", func(w http.ResponseWriter, r *http.Request) {}) })
	d := startDemo(t, testOptions())
	// The broadcast families appear with the first frames that carry
	// broadcasts.
	eventually(t, func() string { return "no moq_broadcast_bytes_total in /metrics" }, func() bool {
		_, body := get(t, d.base+"/metrics")
		return strings.Contains(body, "moq_broadcast_bytes_total{") && strings.Contains(body, "moq_sessions_live{")
	})

	for _, c := range []struct {
		path, contentType string
		status            int
		contains          []string
	}{
		{"/", "text/html; charset=utf-8", 200, []string{`<script src="dashboard.js" defer></script>`, `<link rel="stylesheet" href="dashboard.css">`, `id="broadcasts"`}},
		{"/dashboard.js", "text/javascript; charset=utf-8", 200, []string{"new EventSource("}},
		{"/dashboard.css", "text/css; charset=utf-8", 200, []string{"prefers-color-scheme: dark"}},
		{"/stats/", "application/json", 200, []string{`"path":".stats/node/test"`, `"publisher.json"`}},
		{"/stats/sessions.json", "application/json", 200, []string{"{"}},
		{"/metrics", "", 200, []string{"# TYPE moq_broadcast_bytes_total counter", "moq_sessions_live", "go_goroutines", "process_cpu_seconds_total"}},
		{"/debug/pprof/", "text/html; charset=utf-8", 200, []string{"goroutine", "heap", "profile"}},
		{"/debug/pprof/cmdline", "", 200, nil},
		{"/debug/pprof/goroutine?debug=1", "", 200, []string{"goroutine profile:"}},
		{"/index.html", "", 404, nil},
		{"/default-mux-probe", "", 404, nil},
		{"/web/dashboard.js", "", 404, nil},
	} {
		resp, body := get(t, d.base+c.path)
		if resp.StatusCode != c.status {
			t.Errorf("GET %s: %s; want %d", c.path, resp.Status, c.status)
			continue
		}
		if c.contentType != "" && resp.Header.Get("Content-Type") != c.contentType {
			t.Errorf("GET %s: Content-Type %q; want %q", c.path, resp.Header.Get("Content-Type"), c.contentType)
		}
		for _, s := range c.contains {
			if !strings.Contains(body, s) {
				t.Errorf("GET %s: body lacks %q", c.path, s)
			}
		}
	}

	resp, _ := get(t, d.base+"/")
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("dashboard Content-Security-Policy %q; want only its own origin", csp)
	}
	req, _ := http.NewRequest(http.MethodGet, d.base+"/", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Errorf("dashboard revalidated with its ETag: %v %v; want 304", resp.Status, err)
	} else {
		resp.Body.Close()
	}
	resp, err := http.Post(d.base+"/stats/publisher.json", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /stats/publisher.json: %s; want 405", resp.Status)
	}
}

// TestHTTPFramesAreTheStatsFrames: the latest frame served under /stats/
// is one the Stats wrote.
func TestHTTPFramesAreTheStatsFrames(t *testing.T) {
	rec := newRecorder()
	o := testOptions()
	o.record = rec
	d := startDemo(t, o)
	eventually(t, func() string { return "no frame after the baseline" }, func() bool {
		return len(rec.track("internal/subscriber.json")) >= 2
	})
	_, body := get(t, d.base+"/stats/internal/subscriber.json")
	written := rec.track("internal/subscriber.json")
	found := false
	for _, f := range written {
		found = found || bytes.Equal(f, []byte(body))
	}
	if !found || len(written) < 2 {
		t.Errorf("GET /stats/internal/subscriber.json = %s; not among the %d frames written", body, len(written))
	}
	var c counts
	if err := json.Unmarshal([]byte(body), &c); err != nil || len(c) != o.broadcasts {
		t.Errorf("internal/subscriber.json frame %s: %v; want every broadcast's ingest", body, err)
	}
}

// TestCtrlCEndsStreamsAndRequestsPromptly stops the demo while an event
// stream and a 30-second CPU profile are open: the stream receives the
// final frames and the end event, the profile request is cut off, the
// last status and summary are printed, and run returns.
func TestCtrlCEndsStreamsAndRequestsPromptly(t *testing.T) {
	d := startDemo(t, testOptions())

	req, _ := http.NewRequest(http.MethodGet, d.base+"/stats/publisher.json", nil)
	req.Header.Set("Accept", "text/event-stream")
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	events := make(chan []sseEvent, 1)
	go func() {
		var got []sseEvent
		readEvents(stream.Body, func(e sseEvent) { got = append(got, e) })
		events <- got
	}()
	profile := make(chan error, 1)
	go func() {
		resp, err := http.Get(d.base + "/debug/pprof/profile?seconds=30")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		profile <- err
	}()
	time.Sleep(500 * time.Millisecond)

	start := time.Now()
	out, err := d.stop(t)
	if err != nil {
		t.Fatal(err)
	}
	stopped := time.Since(start)
	select {
	case got := <-events:
		if len(got) < 2 || got[len(got)-1].event != "end" {
			t.Errorf("stream ended with %d events, last %+v; want frames, then the end event", len(got), got[len(got)-1:])
		}
		var final counts
		if err := json.Unmarshal([]byte(got[len(got)-2].data), &final); err != nil {
			t.Fatal(err)
		}
		for k := range final {
			if v := viewersIn(final, k); v != 0 {
				t.Errorf("final frame before the end event shows %d viewers on %s; want everyone gone", v, k)
			}
		}
	case <-time.After(hangGuard):
		t.Fatal("the event stream did not end")
	}
	select {
	case <-profile:
	case <-time.After(hangGuard):
		t.Fatal("the profile request did not end")
	}
	// The shutdown is bounded by streamDrain and shutdownGrace; this only
	// reports a stop that took far longer than them.
	if stopped > 10*(streamDrain+shutdownGrace) {
		t.Errorf("stopping took %v", stopped)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.Contains(lines[len(lines)-2], "0 broadcasts | viewers 0 |") || !strings.Contains(lines[len(lines)-1], "stopped after") {
		t.Errorf("output does not end with the last status and the summary:\n%s", out)
	}
}

func TestRejectsBadOptions(t *testing.T) {
	for _, o := range []options{
		{interval: 0, broadcasts: 1, viewers: 1},
		{interval: time.Second, broadcasts: 0, viewers: 1},
		{interval: time.Second, broadcasts: 1, viewers: 0},
	} {
		ln, pc, err := listenBoth("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := run(context.Background(), o, ln, pc, io.Discard); err == nil {
			t.Errorf("run accepted %+v", o)
		}
		if _, err := ln.Accept(); err == nil {
			t.Errorf("run left the listener open after rejecting %+v", o)
		}
		if _, _, err := pc.ReadFrom(make([]byte, 1)); err == nil {
			t.Errorf("run left the UDP socket open after rejecting %+v", o)
		}
	}
}

func TestLoopbackOnlyByDefault(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true,
		"[::1]:8080":     true,
		"0.0.0.0:8080":   false,
		"[::]:8080":      false,
		"192.0.2.1:8080": false,
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := isLoopback(a); got != want {
			t.Errorf("isLoopback(%s) = %v; want %v", addr, got, want)
		}
	}
}
