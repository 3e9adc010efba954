package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/quic-go/webtransport-go"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/quicconn"
	"github.com/moqstats/moqstats/moqlite/transport"
	"github.com/moqstats/moqstats/moqlite/wsconn"
)

// certHash fetches the demo's WebTransport certificate hash as served.
func certHash(t *testing.T, d *demo) [sha256.Size]byte {
	t.Helper()
	resp, body := get(t, d.base+"/certificate.sha256")
	var h [sha256.Size]byte
	if resp.StatusCode != http.StatusOK || hex.DecodedLen(len(body)) != len(h) {
		t.Fatalf("GET /certificate.sha256: %s, %q; want 200 and 64 hex digits", resp.Status, body)
	}
	if _, err := hex.Decode(h[:], []byte(body)); err != nil || body != strings.ToLower(body) {
		t.Fatalf("GET /certificate.sha256: %q is not lowercase hex: %v", body, err)
	}
	return h
}

// TestGoClientsReadTheStatsOverWebSocketAndWebTransport subscribes with
// moqlite's client over both transports the demo serves: each session
// speaks moq-lite-04, and every frame of a plain track and of its
// compressed sibling is the frame the Stats wrote at that group and
// index. Over WebTransport the client pins the hash /certificate.sha256
// serves, and the certificate is one browsers accept by hash: ECDSA
// P-256, valid for at most 14 days.
func TestGoClientsReadTheStatsOverWebSocketAndWebTransport(t *testing.T) {
	rec := newRecorder()
	o := testOptions()
	o.record = rec
	d := startDemo(t, o)
	hash := certHash(t, d)
	broadcast := ".stats/node/" + o.node

	dial := map[string]func(ctx context.Context) (transport.Session, error){
		"websocket": func(ctx context.Context) (transport.Session, error) {
			return wsconn.Dial(ctx, "ws://"+d.addr+moqPath, wsconn.Config{Protocols: moqlite.Protocols}, nil)
		},
		"webtransport": func(ctx context.Context) (transport.Session, error) {
			s, err := quicconn.DialWebTransport(ctx, "https://"+d.addr+moqPath, quicconn.PinnedClientTLS(hash), quicconn.Config{Protocols: moqlite.Protocols})
			if err != nil {
				return nil, err
			}
			certs := s.Session().SessionState().ConnectionState.TLS.PeerCertificates
			if len(certs) == 0 {
				t.Fatal("no server certificate")
			}
			c := certs[0]
			key, ok := c.PublicKey.(*ecdsa.PublicKey)
			if !ok || key.Curve != elliptic.P256() {
				t.Errorf("certificate key %T; want ECDSA P-256", c.PublicKey)
			}
			if v := c.NotAfter.Sub(c.NotBefore); v > 14*24*time.Hour || v <= 0 {
				t.Errorf("certificate valid for %v; browsers take one by hash only for at most 14 days", v)
			}
			return s, nil
		},
	}
	for _, name := range []string{"websocket", "webtransport"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			defer cancel()
			sess, err := dial[name](ctx)
			if err != nil {
				t.Fatal(err)
			}
			c, err := moqlite.NewClient(ctx, sess, moqlite.ClientConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Version() != "moq-lite-04" {
				t.Errorf("version %q; want moq-lite-04", c.Version())
			}
			checkGroups(ctx, t, c, rec, broadcast, moqstats.TrackPublisher, 3, 0)
			checkGroups(ctx, t, c, rec, broadcast, moqstats.TrackPublisher+moqstats.CompressedSuffix, 1, 3)
		})
	}
}

// checkGroups subscribes to track and reads its groups, each to its end,
// checking every frame against what the Stats wrote at that group and
// index, until it has read groups groups and deltas frames past a
// group's first.
func checkGroups(ctx context.Context, t *testing.T, c *moqlite.Client, rec *recorder, broadcast, track string, groups, deltas int) {
	t.Helper()
	sub, err := c.Subscribe(broadcast, track)
	if err != nil {
		t.Fatalf("subscribe %s: %v", track, err)
	}
	defer sub.Close()
	for g, d := 0, 0; g < groups || d < deltas; {
		grp, err := sub.NextGroup(ctx)
		if err != nil {
			t.Fatalf("%s: group %d: %v", track, g, err)
		}
		g++
		for i := 0; g < groups || d < deltas; i++ {
			got, err := grp.ReadFrame(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s group %d: frame %d: %v", track, grp.Sequence, i, err)
			}
			written, _ := rec.group(track, grp.Sequence)
			if i >= len(written) || !bytes.Equal(got, written[i]) {
				t.Fatalf("%s group %d frame %d: received %q; not what the Stats wrote there (%d frames)", track, grp.Sequence, i, got, len(written))
			}
			if i > 0 {
				d++
			}
		}
	}
}

func TestLoopbackOriginsAreThisMachinesPages(t *testing.T) {
	for origin, want := range map[string]bool{
		"http://127.0.0.1:8080":          true,
		"http://127.0.0.1":               true,
		"https://127.0.0.1:9":            true,
		"http://127.9.8.7:1234":          true,
		"http://[::1]:8080":              true,
		"http://localhost:3000":          true,
		"http://LOCALHOST:3000":          true,
		"null":                           false,
		"":                               false,
		"file://":                        false,
		"ws://127.0.0.1:8080":            false,
		"https://evil.example":           false,
		"http://127.0.0.1.evil.example":  false,
		"http://localhost.evil.example":  false,
		"http://evil.example@127.0.0.1":  false,
		"http://192.0.2.1:8080":          false,
		"http://0.0.0.0:8080":            false,
		"http://[::]:8080":               false,
		"http://127.0.0.1:8080/page":     false,
		"http://127.0.0.1:99999":         false,
		"chrome-extension://abcdefghijk": false,
	} {
		if got := isLoopbackOrigin(origin); got != want {
			t.Errorf("isLoopbackOrigin(%q) = %v; want %v", origin, got, want)
		}
	}
}

// TestMoqRefusesPagesOfOtherOrigins: a page of another site must not open
// a moq-lite session, over WebSocket (403 before the upgrade) or
// WebTransport (the CONNECT refused), nor read the certificate hash
// across origins; a page of this machine on any port, and a client that
// sends no Origin (not a browser), may.
func TestMoqRefusesPagesOfOtherOrigins(t *testing.T) {
	d := startDemo(t, testOptions())
	hash := certHash(t, d)
	_, port, _ := strings.Cut(d.addr, ":")
	loopback := []string{"", "http://127.0.0.1:" + port, "http://localhost:1234", "http://[::1]:80"}
	foreign := []string{"https://evil.example", "http://evil.example:" + port, "null", "http://127.0.0.1.evil.example:" + port}

	ws := func(origin string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		hdr := http.Header{}
		if origin != "" {
			hdr.Set("Origin", origin)
		}
		conn, resp, err := websocket.Dial(ctx, "ws://"+d.addr+moqPath, &websocket.DialOptions{HTTPHeader: hdr, Subprotocols: []string{"qmux-00.moq-lite-04"}})
		if err == nil {
			conn.CloseNow()
		}
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return status, err
	}
	wt := func(origin string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		hdr := http.Header{}
		if origin != "" {
			hdr.Set("Origin", origin)
		}
		tr := &webtransport.Transport{TLSClientConfig: quicconn.PinnedClientTLS(hash), ApplicationProtocols: []string{"moq-lite-04"}}
		defer tr.Close()
		resp, sess, err := tr.Dial(ctx, "https://"+d.addr+moqPath, hdr)
		if err == nil {
			sess.CloseWithError(0, "")
		}
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return status, err
	}
	for _, origin := range loopback {
		if status, err := ws(origin); err != nil || status != http.StatusSwitchingProtocols {
			t.Errorf("WebSocket from Origin %q: %d, %v; want 101", origin, status, err)
		}
		if status, err := wt(origin); err != nil || status != http.StatusOK {
			t.Errorf("WebTransport from Origin %q: %d, %v; want 200", origin, status, err)
		}
	}
	for _, origin := range foreign {
		if status, err := ws(origin); err == nil || status != http.StatusForbidden {
			t.Errorf("WebSocket from Origin %q: %d, %v; want 403", origin, status, err)
		}
		if status, err := wt(origin); err == nil || status == http.StatusOK {
			t.Errorf("WebTransport from Origin %q: %d, %v; want it refused", origin, status, err)
		}
	}

	for origin, want := range map[string]string{
		"http://localhost:1234": "http://localhost:1234",
		"https://evil.example":  "",
		"":                      "",
	} {
		req, _ := http.NewRequest(http.MethodGet, d.base+"/certificate.sha256", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("/certificate.sha256 from Origin %q: Access-Control-Allow-Origin %q; want %q", origin, got, want)
		}
	}
}

// readmeNodeSnippet returns the fenced js block of the README's section on
// serving stats over MoQ.
func readmeNodeSnippet(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Serving stats over MoQ")
	if !ok {
		t.Fatal(`README.md has no "## Serving stats over MoQ" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	m := regexp.MustCompile("(?s)\n```js\n(.*?)\n```\n").FindStringSubmatch(section)
	if m == nil {
		t.Fatal("the README's MoQ section has no ```js block")
	}
	return m[1]
}

// TestReadmeNodeSnippetPrintsTheStatsFrames runs the README's Node snippet
// against the demo, its URL moved to the test's port: it must print
// frames of publisher.json, each one the Stats wrote, in order.
func TestReadmeNodeSnippetPrintsTheStatsFrames(t *testing.T) {
	node := needBinary(t, "node", "/usr/bin/node", ".ci/install-interop")
	modules, err := filepath.Abs(needInteropModules(t))
	if err != nil {
		t.Fatal(err)
	}
	snippet := readmeNodeSnippet(t)
	const readmeURL = "ws://127.0.0.1:8080/moq"
	if !strings.Contains(snippet, readmeURL) || !strings.Contains(snippet, `".stats/node/demo/1"`) {
		t.Fatalf("the snippet does not connect to %s and subscribe to .stats/node/demo/1:\n%s", readmeURL, snippet)
	}

	rec := newRecorder()
	o := testOptions()
	o.record, o.node = rec, "demo/1"
	d := startDemo(t, o)
	dir := t.TempDir()
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "stats.mjs")
	if err := os.WriteFile(script, []byte(strings.ReplaceAll(snippet, readmeURL, "ws://"+d.addr+moqPath)), 0o644); err != nil {
		t.Fatal(err)
	}

	args := []string{script}
	if nodeMajor(t, node) < 22 {
		args = []string{"--experimental-websocket", script} // as the README says for Node 20
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()

	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	last := -1
	for n := 0; n < 3; n++ {
		if !sc.Scan() {
			cancel()
			cmd.Wait()
			t.Fatalf("the snippet printed %d frames, then ended: %v\nstderr:\n%s", n, errors.Join(sc.Err(), ctx.Err()), stderr.String())
		}
		line := sc.Bytes()
		written := rec.track(moqstats.TrackPublisher)
		i := indexOf(written, line)
		if i < 0 {
			t.Fatalf("the snippet printed %q, not a frame the Stats wrote to publisher.json", line)
		}
		if i <= last {
			t.Errorf("the snippet printed frame %d after frame %d", i, last)
		}
		last = i
	}
}

func indexOf(frames [][]byte, f []byte) int {
	for i, w := range frames {
		if bytes.Equal(w, f) {
			return i
		}
	}
	return -1
}

// nodeMajor is node's major version.
func nodeMajor(t *testing.T, node string) int {
	t.Helper()
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		t.Fatalf("node --version: %q", out)
	}
	return n
}
