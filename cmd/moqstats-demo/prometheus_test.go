package main

import (
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
	"strings"
	"testing"
	"time"
)

// promQuery asks the server at addr for an instant query and returns the
// value of its single sample; ok is false while it has none.
func promQuery(ctx context.Context, addr, q string) (v float64, ok bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/query?query="+url.QueryEscape(q), nil)
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
		return 0, false, nil // not scraped yet
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err = strconv.ParseFloat(s, 64)
	return v, err == nil, err
}

// TestPrometheusScrapesTheDemo runs a real Prometheus server scraping the
// demo's /metrics on 127.0.0.1, lets the simulated traffic run and stop,
// and checks PromQL answers against what the simulation bumped: bytes
// sent and ingested, in total and for one broadcast, viewers and sessions
// that joined, and nobody left connected.
func TestPrometheusScrapesTheDemo(t *testing.T) {
	bin := needBinary(t, "prometheus", "/usr/bin/prometheus", ".ci/install-prometheus")

	bumped := make(chan ledger, 1)
	o := testOptions()
	o.trafficFor = 2 * time.Second
	o.trafficDone = func(l ledger) { bumped <- l }
	d := startDemo(t, o)

	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: demo
    metrics_path: /metrics
    static_configs:
      - targets: [%q]
`, strings.TrimPrefix(d.base, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
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
		case <-time.After(hangGuard):
			t.Error("prometheus did not exit after kill")
		}
	}()

	var l1 ledger
	select {
	case l1 = <-bumped:
	case <-time.After(hangGuard):
		t.Fatal("the traffic did not stop")
	}
	sum := func(m map[string]uint64) float64 {
		var n uint64
		for _, v := range m {
			n += v
		}
		return float64(n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	for _, c := range []struct {
		q    string
		want float64
	}{
		{`up{job="demo"}`, 1},
		{`sum(moq_broadcast_bytes_total{tier="external",role="publisher"})`, sum(l1.Egress)},
		{`sum(moq_broadcast_bytes_total{tier="internal",role="subscriber"})`, sum(l1.Ingress)},
		{`moq_broadcast_bytes_total{broadcast="acme/live/main",tier="external",role="publisher",node="test"}`, float64(l1.Egress["acme/live/main"])},
		{`sum(moq_broadcast_broadcasts_total{tier="external"})`, sum(l1.Joined)},
		{`sum(moq_sessions_total{tier="external"})`, sum(l1.Sessions)},
		{`sum(moq_broadcast_viewers{tier="external"})`, 0},
		{`sum(moq_sessions_live{tier="external"})`, 0},
	} {
		var last string
		for {
			v, ok, err := promQuery(ctx, addr, c.q)
			if ok && v == c.want {
				break
			}
			last = fmt.Sprintf("%v (ok %v, err %v)", v, ok, err)
			select {
			case err := <-exited:
				t.Fatalf("prometheus exited (%v):\n%s", err, out.String())
			case <-ctx.Done():
				t.Fatalf("%s: last answer %s; want %v\nprometheus output:\n%s", c.q, last, c.want, out.String())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	if sum(l1.Egress) == 0 || sum(l1.Joined) == 0 {
		t.Errorf("the simulation bumped nothing to check: %+v", l1)
	}
}
