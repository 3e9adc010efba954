package interop

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pinned are the packages the tests speak to; package.json pins them
// exactly and the lockfile must agree.
var pinned = map[string]string{
	"@moq/lite":             "0.2.2",
	"@moq/web-transport-ws": "0.3.0",
	"@moq/qmux":             "0.0.6",
	"@moq/json":             "0.3.3",
}

// requireNode skips the test when node or node_modules is missing and CI
// is unset, fails it when CI is set, and fails it when node_modules holds
// other versions than the lockfile's. It returns the node command line
// that runs a script: node, with --experimental-websocket before Node 22.
func requireNode(t *testing.T) []string {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		msg := what + ": run bash .ci/install-interop (npm ci in moqlite/interop/)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI is set, so the interop tests may not skip")
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed")
	}
	lock, err := lockedVersions()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range pinned {
		if lock[name] != want {
			t.Fatalf("package-lock.json has %s %q, want %s: the pin in package.json moved", name, lock[name], want)
		}
		b, err := os.ReadFile(filepath.Join("node_modules", name, "package.json"))
		if errors.Is(err, os.ErrNotExist) {
			missing(name + " is not in moqlite/interop/node_modules")
		} else if err != nil {
			t.Fatal(err)
		}
		var pkg struct{ Version string }
		if err := json.Unmarshal(b, &pkg); err != nil {
			t.Fatalf("node_modules/%s/package.json: %v", name, err)
		}
		if pkg.Version != want {
			t.Fatalf("node_modules has %s %s, the lockfile %s: run bash .ci/install-interop", name, pkg.Version, want)
		}
	}
	major, err := nodeMajor(node)
	if err != nil {
		t.Fatal(err)
	}
	if major < 22 {
		// WebSocket is behind a flag before Node 22 (from 20.10 on).
		return []string{node, "--experimental-websocket"}
	}
	return []string{node}
}

var nodeVersion struct {
	once  sync.Once
	major int
	err   error
}

func nodeMajor(node string) (int, error) {
	nodeVersion.once.Do(func() {
		out, err := exec.Command(node, "--version").Output()
		if err != nil {
			nodeVersion.err = fmt.Errorf("node --version: %w", err)
			return
		}
		v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
		major, _, _ := strings.Cut(v, ".")
		if nodeVersion.major, err = strconv.Atoi(major); err != nil {
			nodeVersion.err = fmt.Errorf("node --version printed %q", out)
		}
	})
	return nodeVersion.major, nodeVersion.err
}

// lockedVersions returns the version package-lock.json gives each package
// installed at the top of node_modules.
func lockedVersions() (map[string]string, error) {
	b, err := os.ReadFile("package-lock.json")
	if err != nil {
		return nil, err
	}
	var lock struct {
		Packages map[string]struct{ Version string }
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return nil, fmt.Errorf("package-lock.json: %w", err)
	}
	out := map[string]string{}
	for path, p := range lock.Packages {
		if name, ok := strings.CutPrefix(path, "node_modules/"); ok {
			out[name] = p.Version
		}
	}
	return out, nil
}

// event is one line subscribe.mjs or publish.mjs writes.
type event struct {
	Ev          string
	Version     string
	Message     string
	Track       string // publish.mjs: the track a "requested" is for
	Unannounced bool
	// Subs["early" or "late"][track] is every group received, in order.
	Subs map[string]map[string][]jsGroup
}

// jsGroup is a group as @moq/lite delivered it.
type jsGroup struct {
	Sequence uint64
	Frames   [][]byte // base64 on the wire
	Error    string   // why the group was cut off, if it was
	// Decoded is, for a ".z" track, the value @moq/json's Snapshot.Decoder
	// holds after each frame, as JSON text; DecodeError why it stopped.
	Decoded     []string
	DecodeError string
}

// nodeProc is a running subscribe.mjs: lines go to its stdin, its events
// come from stdout, and its stderr (@moq/lite's logs) is kept for failure
// messages.
type nodeProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan event
	stderr *lockedBuffer
	exited chan struct{}
}

// nodeTimeout bounds one wait for an event: every step takes well under a
// second, so only a hung peer reaches it.
const nodeTimeout = time.Minute

func startNode(t *testing.T, argv []string, script string) *nodeProc {
	t.Helper()
	cmd := exec.Command(argv[0], append(argv[1:], script)...)
	p := &nodeProc{t: t, cmd: cmd, events: make(chan event, 8), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		// Wait closes stdout, so it runs only once every read is done.
		defer close(p.exited)
		defer cmd.Wait()
		defer close(p.events)
		dec := json.NewDecoder(stdout)
		for {
			var ev event
			if err := dec.Decode(&ev); err != nil {
				if err != io.EOF {
					p.events <- event{Ev: "error", Message: "reading node's stdout: " + err.Error()}
				}
				return
			}
			p.events <- ev
		}
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			for range p.events {
			}
			<-p.exited
		}
	})
	return p
}

// send writes v to node's stdin as one JSON line.
func (p *nodeProc) send(v any) {
	p.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		p.t.Fatalf("writing to node: %v\nstderr:\n%s", err, p.stderr)
	}
}

// expect waits for the next event and fails unless it is ev.
func (p *nodeProc) expect(ev string) event {
	p.t.Helper()
	select {
	case e, ok := <-p.events:
		switch {
		case !ok:
			<-p.exited
			p.t.Fatalf("node exited (%v) while the test waited for %q\nstderr:\n%s", p.cmd.ProcessState, ev, p.stderr)
		case e.Ev == "error":
			p.t.Fatalf("node failed while the test waited for %q: %s\nstderr:\n%s", ev, e.Message, p.stderr)
		case e.Ev != ev:
			p.t.Fatalf("node sent %q, want %q", e.Ev, ev)
		}
		return e
	case <-time.After(nodeTimeout):
		p.t.Fatalf("no %q from node within %v\nstderr:\n%s", ev, nodeTimeout, p.stderr)
	}
	return event{}
}

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
