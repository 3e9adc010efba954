package promstats_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/memorigin"
	"github.com/moqstats/moqstats/promstats"
)

// prometheusBinary finds the server: on PATH, or where Debian's package
// puts it. Without one the test skips, unless CI is set: CI installs it
// (.ci/install-prometheus), so there a missing binary is a failure.
func prometheusBinary(t *testing.T) string {
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

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer collects the server's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPrometheusScrapesTheCollector runs a real Prometheus server that
// scrapes a /metrics endpoint exposing the collector, fed in process by a
// real Stats with known traffic, and checks PromQL answers against what
// was bumped.
func TestPrometheusScrapesTheCollector(t *testing.T) {
	bin := prometheusBinary(t)

	// Known traffic on a real Stats, fed to the Aggregator through the
	// in-process Origin, including an entry collected and re-created.
	agg, err := consumer.New(consumer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := moqstats.New(moqstats.Config{
		Origin: consumer.NewOrigin(memorigin.New(), agg, consumer.OriginOptions{}),
		Node:   "sjc/1", Interval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	ext := stats.Tier(moqstats.External)
	var wantBytes uint64
	for i, path := range []string{"acme/live/1", "acme/live/2", "beta/show"} {
		g := ext.Broadcast(path).PublisherTrack("video")
		n := uint64(1000 * (i + 1))
		g.Bytes(n)
		wantBytes += n
		g.Close()
	}
	if err := stats.Flush(); err != nil { // the entries are collected
		t.Fatal(err)
	}
	again := ext.Broadcast("acme/live/1").PublisherTrack("video") // re-created from zero
	again.Bytes(7)
	wantBytes += 7
	viewer := ext.PublisherBroadcasts().Subscribe("acme/live/1")
	session := ext.Session("acme")
	if err := stats.Flush(); err != nil {
		t.Fatal(err)
	}
	defer func() { again.Close(); viewer.Close(); session.Close() }()

	c, err := promstats.New(promstats.Config{Aggregator: agg})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer target.Close()

	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: moq
    metrics_path: /metrics
    static_configs:
      - targets: [%q]
`, target.Listener.Addr().String())
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	var out lockedBuffer
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
	)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Error("prometheus did not exit after kill")
		}
	}()

	query := func(ctx context.Context, q string) (float64, bool, error) {
		u := "http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, false, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return 0, false, err
		}
		if r.Status != "success" || len(r.Data.Result) == 0 {
			return 0, false, nil // not scraped yet
		}
		s, _ := r.Data.Result[0].Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil, err
	}

	// Generous: a slow machine needs a while to start the server and
	// scrape; this only guards against a hang.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, c := range []struct {
		q    string
		want float64
	}{
		{"sum(moq_broadcast_bytes_total)", float64(wantBytes)},
		{`moq_broadcast_bytes_total{broadcast="acme/live/1",tier="external",role="publisher",node="sjc/1"}`, 1007},
		{`sum(moq_broadcast_viewers{tier="external"})`, 1},
		{`moq_sessions_live{root="acme",node="sjc/1"}`, 1},
	} {
		for {
			v, ok, err := query(ctx, c.q)
			if ok && v == c.want {
				break
			}
			select {
			case err := <-exited:
				t.Fatalf("prometheus exited (%v):\n%s", err, out.String())
			case <-ctx.Done():
				t.Fatalf("%s: last answer %v (ok %v, err %v), want %v; server output:\n%s", c.q, v, ok, err, c.want, out.String())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}
