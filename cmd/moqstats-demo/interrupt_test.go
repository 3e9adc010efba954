//go:build unix

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moqstats/moqstats/internal/promtest"
)

// buildDemo builds the demo binary into a temporary directory.
func buildDemo(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "moqstats-demo")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// waitFor polls out until it contains s.
func waitFor(t *testing.T, out interface{ String() string }, s string) {
	t.Helper()
	for deadline := time.Now().Add(hangGuard); !strings.Contains(out.String(), s); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output:\n%s", s, out.String())
		}
	}
}

// endsCleanly fails t unless out ends with the last status line (everyone
// gone) and the summary.
func endsCleanly(t *testing.T, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(out, "\r\n", "\n")), "\n")
	if len(lines) < 2 || !strings.Contains(lines[len(lines)-2], "0 broadcasts | viewers 0 |") || !strings.Contains(lines[len(lines)-1], "stopped after") {
		t.Fatalf("output does not end with the last status line and the summary:\n%s", out)
	}
}

// The built demo, sent SIGINT as Ctrl-C sends it, exits 0 after its last
// status line and summary: a newcomer's first Ctrl-C is not a failure.
func TestInterruptedDemoExitsZeroAfterItsLastStatusLine(t *testing.T) {
	bin := buildDemo(t)
	var out promtest.LockedBuffer
	var errOut bytes.Buffer
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-interval", "100ms")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, &out, "broadcasts |") // a status line: running
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("demo exited with %v after SIGINT, want status 0; stderr:\n%s", exit.ProcessState, errOut.String())
		} else if err != nil {
			t.Fatal(err)
		}
	case <-time.After(hangGuard):
		t.Fatal("the demo did not stop on SIGINT")
	}
	endsCleanly(t, out.String())
	if errOut.Len() != 0 {
		t.Errorf("stderr after SIGINT, want none:\n%s", errOut.String())
	}
}
