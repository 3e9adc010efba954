// Package transporttest checks that a transport.Session implementation
// keeps the properties the session layer relies on (see package transport):
// in-order bytes with FIN seen as io.EOF, resets and stops that reach the
// peer on that stream only, CloseWithError ending every stream on both
// sides, deadlines and contexts that unblock calls, and many concurrent
// streams. Every transport runs the same Run, so they agree.
package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite/transport"
)

// Pair makes a connected client and server session for one test; the
// caller's cleanup closes them.
type Pair func(t *testing.T) (client, server transport.Session)

// timeout bounds every wait in the suite, so a broken transport fails
// instead of hanging.
const timeout = 20 * time.Second

// Run runs the suite against sessions made by pair.
func Run(t *testing.T, pair Pair) {
	t.Run("UniBytesArriveInOrderThenEOF", func(t *testing.T) { testUniOrder(t, pair) })
	t.Run("BidiEchoBothWays", func(t *testing.T) { testBidiEcho(t, pair) })
	t.Run("ServerOpenedStreamsReachClient", func(t *testing.T) { testServerOpens(t, pair) })
	t.Run("ResetReachesPeerOnThatStreamOnly", func(t *testing.T) { testReset(t, pair) })
	t.Run("StopReachesPeerOnThatStreamOnly", func(t *testing.T) { testStop(t, pair) })
	t.Run("CloseWithErrorEndsEverythingOnBothSides", func(t *testing.T) { testClose(t, pair) })
	t.Run("DeadlinesAndContextsUnblock", func(t *testing.T) { testDeadlines(t, pair) })
	t.Run("ManyConcurrentStreamsStayApart", func(t *testing.T) { testMany(t, pair) })
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// writeChunks writes b in random-sized pieces.
func writeChunks(w io.Writer, b []byte, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 9))
	for len(b) > 0 {
		n := min(len(b), 1+r.IntN(70000))
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// readAllDeadline reads to EOF with a deadline so a lost FIN fails.
func readAllDeadline(r transport.ReceiveStream) ([]byte, error) {
	_ = r.SetReadDeadline(time.Now().Add(timeout))
	return io.ReadAll(r)
}

func testUniOrder(t *testing.T, pair Pair) {
	c, s := pair(t)
	ctx := ctxT(t)
	want := payload(1, 1<<20+12345)
	errc := make(chan error, 1)
	go func() {
		w, err := c.OpenUni(ctx)
		if err == nil {
			err = writeChunks(w, want, 2)
		}
		if err == nil {
			err = w.Close()
		}
		errc <- err
	}()
	r, err := s.AcceptUni(ctx)
	if err != nil {
		t.Fatalf("AcceptUni: %v", err)
	}
	got, err := readAllDeadline(r)
	if err != nil {
		t.Fatalf("reading to FIN: got error %v, want io.EOF after every byte", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("stream bytes differ: got %d bytes, want %d, first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	if err := <-errc; err != nil {
		t.Fatalf("writer: %v", err)
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF: got (%d, %v), want (0, io.EOF)", n, err)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func testBidiEcho(t *testing.T, pair Pair) {
	c, s := pair(t)
	ctx := ctxT(t)
	go func() {
		b, err := s.AcceptBidi(ctx)
		if err != nil {
			return
		}
		data, _ := readAllDeadline(b)
		_, _ = b.Write(append([]byte("echo:"), data...))
		_ = b.Close()
	}()
	b, err := c.OpenBidi(ctx)
	if err != nil {
		t.Fatalf("OpenBidi: %v", err)
	}
	want := payload(3, 200000)
	if err := writeChunks(b, want, 4); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got, err := readAllDeadline(b)
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if !bytes.Equal(got, append([]byte("echo:"), want...)) {
		t.Fatalf("echo differs: got %d bytes, want %d", len(got), len(want)+5)
	}
}

func testServerOpens(t *testing.T, pair Pair) {
	c, s := pair(t)
	ctx := ctxT(t)
	go func() {
		u, err := s.OpenUni(ctx)
		if err != nil {
			return
		}
		_, _ = u.Write([]byte("uni from server"))
		_ = u.Close()
		b, err := s.OpenBidi(ctx)
		if err != nil {
			return
		}
		_, _ = b.Write([]byte("bidi from server"))
		_ = b.Close()
		reply, _ := readAllDeadline(b)
		u2, err := s.OpenUni(ctx)
		if err != nil {
			return
		}
		_, _ = u2.Write(reply)
		_ = u2.Close()
	}()
	u, err := c.AcceptUni(ctx)
	if err != nil {
		t.Fatalf("AcceptUni: %v", err)
	}
	if got, err := readAllDeadline(u); err != nil || string(got) != "uni from server" {
		t.Fatalf("server uni: got %q, %v", got, err)
	}
	b, err := c.AcceptBidi(ctx)
	if err != nil {
		t.Fatalf("AcceptBidi: %v", err)
	}
	if got, err := readAllDeadline(b); err != nil || string(got) != "bidi from server" {
		t.Fatalf("server bidi: got %q, %v", got, err)
	}
	_, _ = b.Write([]byte("client reply"))
	_ = b.Close()
	u2, err := c.AcceptUni(ctx)
	if err != nil {
		t.Fatalf("AcceptUni 2: %v", err)
	}
	if got, err := readAllDeadline(u2); err != nil || string(got) != "client reply" {
		t.Fatalf("reply relayed on a second uni: got %q, %v; want the client's bidi bytes", got, err)
	}
}

func testReset(t *testing.T, pair Pair) {
	c, s := pair(t)
	ctx := ctxT(t)
	doomed, err := c.OpenUni(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := doomed.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	kept, err := c.OpenUni(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kept.Write([]byte("kept ")); err != nil {
		t.Fatal(err)
	}
	r1, err := s.AcceptUni(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.AcceptUni(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Accept order need not follow open order (WebTransport streams are
	// matched to their session by a header), so tell them apart by content.
	first := make([]byte, 1)
	if _, err := io.ReadFull(r1, first); err != nil {
		t.Fatal(err)
	}
	// Whichever was read first has given up its first byte; read the
	// other's, then check one began "p" and the other "k".
	second := make([]byte, 1)
	if _, err := io.ReadFull(r2, second); err != nil {
		t.Fatal(err)
	}
	if first[0] != 'p' {
		r1, r2 = r2, r1
		first, second = second, first
	}
	if first[0] != 'p' || second[0] != 'k' {
		t.Fatalf("the streams began %q and %q, want \"p\" and \"k\"", first, second)
	}
	doomed.Reset(77)
	if _, err := kept.Write([]byte("going")); err != nil {
		t.Fatalf("a reset on one stream broke another's write: %v", err)
	}
	if err := kept.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = readAllDeadline(r1)
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read of a reset stream: got %v, want the peer's reset error", err)
	}
	got, err := readAllDeadline(r2)
	if err != nil || string(got) != "ept going" {
		t.Fatalf("the other stream: got %q, %v; want all of it and EOF", got, err)
	}
	if s.Context().Err() != nil || c.Context().Err() != nil {
		t.Fatal("a stream reset ended the session")
	}
}

func testStop(t *testing.T, pair Pair) {
	c, s := pair(t)
	ctx := ctxT(t)
	b, err := c.OpenBidi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	other, err := c.OpenUni(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Write([]byte("other")); err != nil {
		t.Fatal(err)
	}
	sb, err := s.AcceptBidi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	so, err := s.AcceptUni(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sb.Stop(9)
	// The stop travels to the client; its writes fail once it lands.
	deadline := time.Now().Add(timeout)
	for {
		if _, err := b.Write([]byte("more")); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a stopped stream kept succeeding")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The stopped stream's other direction still works.
	if _, err := sb.Write([]byte("reply")); err != nil {
		t.Fatalf("the server's half of a stopped bidi: %v", err)
	}
	_ = sb.Close()
	if got, err := readAllDeadline(b); err != nil || string(got) != "reply" {
		t.Fatalf("reading the unstopped half: got %q, %v", got, err)
	}
	if _, err := other.Write([]byte(" stream")); err != nil {
		t.Fatalf("a stop on one stream broke another: %v", err)
	}
	_ = other.Close()
	if got, err := readAllDeadline(so); err != nil || string(got) != "other stream" {
		t.Fatalf("the other stream: got %q, %v", got, err)
	}
}

func testClose(t *testing.T, pair Pair) {
	c, s := pair(t)
	ctx := ctxT(t)
	u, err := c.OpenUni(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	r, err := s.AcceptUni(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Add(3)
	go func() { defer wg.Done(); _, err := s.AcceptBidi(ctx); errs <- err }()
	go func() { defer wg.Done(); _, err := s.AcceptUni(ctx); errs <- err }()
	go func() { defer wg.Done(); _, err := r.Read(make([]byte, 10)); errs <- err }()
	time.Sleep(20 * time.Millisecond)
	if err := c.CloseWithError(42, "done here"); err != nil {
		t.Fatalf("CloseWithError: %v", err)
	}
	select {
	case <-s.Context().Done():
	case <-time.After(timeout):
		t.Fatal("the peer's Context was not done after CloseWithError")
	}
	select {
	case <-c.Context().Done():
	case <-time.After(timeout):
		t.Fatal("the closing side's Context was not done")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil || err == io.EOF {
			t.Fatalf("a call blocked at close returned %v, want the session's error", err)
		}
	}
	if _, err := u.Write([]byte("late")); err == nil {
		t.Fatal("Write after CloseWithError succeeded")
	}
	if _, err := c.OpenUni(ctx); err == nil {
		t.Fatal("OpenUni after CloseWithError succeeded")
	}
}

func testDeadlines(t *testing.T, pair Pair) {
	c, s := pair(t)
	ctx := ctxT(t)
	u, err := c.OpenUni(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	r, err := s.AcceptUni(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	_ = r.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: got %v, want os.ErrDeadlineExceeded", err)
	}
	_ = r.SetReadDeadline(time.Time{})
	if _, err := u.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 1)); err != nil {
		t.Fatalf("Read after clearing the deadline: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := s.AcceptBidi(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AcceptBidi past its context: got %v, want context.DeadlineExceeded", err)
	}
	if s.Context().Err() != nil {
		t.Fatal("a call's deadline ended the session")
	}
}

func testMany(t *testing.T, pair Pair) {
	c, s := pair(t)
	ctx := ctxT(t)
	const n = 48
	errc := make(chan error, n)
	for i := range n {
		go func() {
			var w transport.SendStream
			var err error
			if i%2 == 0 {
				w, err = c.OpenUni(ctx)
			} else {
				var b transport.BidiStream
				b, err = c.OpenBidi(ctx)
				w = b
			}
			if err != nil {
				errc <- err
				return
			}
			body := payload(uint64(i), 1000+i*997)
			msg := append(fmt.Appendf(nil, "%03d", i), body...)
			if err := writeChunks(w, msg, uint64(i)); err != nil {
				errc <- err
				return
			}
			errc <- w.Close()
		}()
	}
	seen := make(chan int, n)
	check := func(r transport.ReceiveStream) {
		got, err := readAllDeadline(r)
		if err != nil || len(got) < 3 {
			t.Errorf("stream read: %d bytes, %v", len(got), err)
			seen <- -1
			return
		}
		var i int
		fmt.Sscanf(string(got[:3]), "%03d", &i)
		if !bytes.Equal(got[3:], payload(uint64(i), 1000+i*997)) {
			t.Errorf("stream %d: bytes mixed with another stream's", i)
		}
		seen <- i
	}
	go func() {
		for range n / 2 {
			r, err := s.AcceptUni(ctx)
			if err != nil {
				t.Errorf("AcceptUni: %v", err)
				return
			}
			go check(r)
		}
	}()
	go func() {
		for range n / 2 {
			b, err := s.AcceptBidi(ctx)
			if err != nil {
				t.Errorf("AcceptBidi: %v", err)
				return
			}
			go func() { check(b); _ = b.Close() }()
		}
	}()
	got := map[int]bool{}
	for range n {
		select {
		case i := <-seen:
			got[i] = true
		case <-ctx.Done():
			t.Fatalf("only %d of %d streams arrived", len(got), n)
		}
	}
	for range n {
		if err := <-errc; err != nil {
			t.Errorf("writer: %v", err)
		}
	}
	if len(got) != n || got[-1] {
		t.Fatalf("got %d distinct whole streams, want %d", len(got), n)
	}
}
