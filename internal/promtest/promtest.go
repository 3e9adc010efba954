// Package promtest runs a real Prometheus server for integration tests: it
// finds Debian's binary, starts it scraping one target on 127.0.0.1 every
// second, and waits for PromQL answers.
//
// A missing binary skips the test, unless the environment variable CI is
// set: CI installs the server (.ci/install-prometheus), so there a missing
// binary fails the test. The server listens on a free loopback port, keeps
// its data in the test's temporary directory, and is killed when the test
// ends.
package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// HangGuard bounds waits that only guard against hangs: generous, since
// test machines are shared and a race build is slow.
const HangGuard = 2 * time.Minute

// Server is a running Prometheus server.
type Server struct {
	addr   string
	out    LockedBuffer
	exited chan error
}

// Binary returns the server's path: on PATH, or where Debian's package
// puts it. Without one it skips t, or fails it when CI is set.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus"
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI is set but no prometheus binary is on PATH or at /usr/bin/prometheus; .ci/install-prometheus installs it")
	}
	t.Skip("no prometheus binary (on PATH or at /usr/bin/prometheus); install Debian's prometheus package (.ci/install-prometheus) to run this test")
	return ""
}

// Start starts a server (see Binary) scraping target (host:port) at
// /metrics every second, as job.
func Start(t testing.TB, job, target string) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: %q
    metrics_path: /metrics
    static_configs:
      - targets: [%q]
`, job, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{addr: l.Addr().String(), exited: make(chan error, 1)}
	l.Close()
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+s.addr,
	)
	cmd.Stdout, cmd.Stderr = &s.out, &s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-s.exited:
		case <-time.After(HangGuard):
			t.Error("prometheus did not exit after kill")
		}
	})
	return s
}

// Query asks for an instant query and returns the value of its single
// sample; ok is false while there is none (nothing scraped yet).
func (s *Server) Query(ctx context.Context, q string) (v float64, ok bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, false, err
	}
	if r.Status != "success" {
		return 0, false, fmt.Errorf("query %s: %s", q, r.Error)
	}
	if len(r.Data.Result) != 1 {
		return 0, false, nil
	}
	str, _ := r.Data.Result[0].Value[1].(string)
	v, err = strconv.ParseFloat(str, 64)
	return v, err == nil, err
}

// WaitFor polls q until its answer is want, failing t with the last
// answer and the server's output if the server exits or HangGuard passes.
func (s *Server) WaitFor(t testing.TB, q string, want float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), HangGuard)
	defer cancel()
	for {
		v, ok, err := s.Query(ctx, q)
		if ok && v == want {
			return
		}
		select {
		case err := <-s.exited:
			t.Fatalf("prometheus exited (%v):\n%s", err, s.out.String())
		case <-ctx.Done():
			t.Fatalf("%s: last answer %v (ok %v, err %v), want %v; prometheus output:\n%s", q, v, ok, err, want, s.out.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// LockedBuffer collects output written from several goroutines: a
// server's, for failure messages.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
