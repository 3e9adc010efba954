package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pinned are the packages the tests speak to, at the versions the issue
// names; package.json pins them exactly and the lockfile must agree.
var pinned = map[string]string{"@moq/json": "0.3.3", "@moq/flate": "0.1.3"}

// nodeTimeout only guards against a hung node: a run takes well under a
// second.
const nodeTimeout = 2 * time.Minute

// requireNode skips the test when node or node_modules is missing and CI
// is unset, fails it when CI is set, and fails it when node_modules holds
// other versions than the lockfile's. It returns the node binary.
func requireNode(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		msg := what + ": run bash .ci/install-interop (npm ci in interop/)"
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
			missing(name + " is not in interop/node_modules")
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
	return node
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

// runNode runs one of the node scripts here with request as JSON on its
// stdin, and decodes its stdout into response, numbers as json.Number.
func runNode(t *testing.T, node, script string, request, response any) {
	t.Helper()
	in, err := json.Marshal(request)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v\nstderr:\n%s", script, err, stderr.Bytes())
	}
	t.Logf("node %s: %d bytes in, %d out, %v", script, len(in), stdout.Len(), time.Since(start).Round(time.Millisecond))
	dec := json.NewDecoder(&stdout)
	dec.UseNumber()
	if err := dec.Decode(response); err != nil {
		t.Fatalf("node %s: decoding its response: %v\nstderr:\n%s", script, err, stderr.Bytes())
	}
}
