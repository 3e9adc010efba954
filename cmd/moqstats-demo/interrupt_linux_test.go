package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY opens a pseudo-terminal pair: the master, which the test types
// into, and the terminal a process is run on.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		master.Close()
		t.Fatalf("unlocking the pseudo-terminal: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		master.Close()
		t.Fatalf("naming the pseudo-terminal: %v", e)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatal(err)
	}
	return master, tty
}

// lockedBytes collects what a pseudo-terminal's master reads.
type lockedBytes struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBytes) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBytes) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// make demo on a terminal, then Ctrl-C typed into it: the demo prints its
// last status line and summary, and make exits 0 without an error of its
// own. The terminal sends SIGINT to its foreground process group, which
// without the Makefile's job control would include make, which dies of it.
func TestMakeDemoEndsCleanlyOnCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo through make")
	}
	for _, tool := range []string{"make", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	master, tty := openPTY(t)
	defer master.Close()
	cmd := exec.Command("make", "-C", "../..", "--no-print-directory", "demo", "DEMOFLAGS=-listen 127.0.0.1:0 -interval 100ms")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	// Not a sub-make of whatever make runs this test.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "MAKEFLAGS=") || strings.HasPrefix(kv, "MFLAGS=") || strings.HasPrefix(kv, "MAKELEVEL=")
	})
	// A session of its own, with the pseudo-terminal as its controlling
	// terminal, as a login shell has: make starts in the foreground.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	var out lockedBytes
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(&out, master) // ends with EIO once every process left the terminal
	}()
	waitFor(t, &out, "broadcasts |")                      // built, and running
	if _, err := master.Write([]byte{0x03}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			<-copied
			t.Fatalf("make demo exited with %v after Ctrl-C, want status 0:\n%s", exit.ProcessState, out.String())
		} else if err != nil {
			t.Fatal(err)
		}
	case <-time.After(hangGuard):
		t.Fatalf("make demo did not stop on Ctrl-C:\n%s", out.String())
	}
	select {
	case <-copied:
	case <-time.After(hangGuard):
	}
	if strings.Contains(out.String(), "make: ***") {
		t.Fatalf("make reported an error:\n%s", out.String())
	}
	endsCleanly(t, out.String())
}
