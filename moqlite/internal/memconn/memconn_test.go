package memconn

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// Bytes arrive in order and once, io.EOF only after them; Reset reaches the
// reader as a StreamError with its code; a read past its deadline fails
// with os.ErrDeadlineExceeded; a writer past the window blocks until the
// reader reads; CloseWithError ends both ends with its code.
func TestPipeKeepsTheTransportContract(t *testing.T) {
	ctx := context.Background()
	c, s := Pair(ctx, "p")
	st, err := c.OpenBidi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := s.AcceptBidi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("hello "))
	st.Write([]byte("world"))
	st.Close()
	got, err := io.ReadAll(peer)
	if err != nil || string(got) != "hello world" {
		t.Fatalf("read %q, %v; want \"hello world\", nil", got, err)
	}

	u, _ := c.OpenUni(ctx)
	ru, _ := s.AcceptUni(ctx)
	u.Write([]byte("x"))
	u.Reset(9)
	var se *StreamError
	if _, err := ru.Read(make([]byte, 1)); !errors.As(err, &se) || se.Code != 9 {
		t.Fatalf("read after Reset(9): %v, want StreamError code 9", err)
	}

	ru2 := func() receiveLike { u, _ := c.OpenUni(ctx); r, _ := s.AcceptUni(ctx); _ = u; return r }()
	ru2.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := ru2.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}

	big, _ := c.OpenUni(ctx)
	rbig, _ := s.AcceptUni(ctx)
	big.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := big.Write(make([]byte, Window+1))
	if n != Window || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past the window: %d, %v; want %d and a deadline", n, err, Window)
	}
	rbig.Read(make([]byte, 10))
	big.SetWriteDeadline(time.Time{})
	if _, err := big.Write(make([]byte, 10)); err != nil {
		t.Fatalf("write after the reader made room: %v", err)
	}

	s.CloseWithError(7, "bye")
	var sess *SessionError
	if _, err := c.AcceptBidi(ctx); !errors.As(err, &sess) || sess.Code != 7 {
		t.Fatalf("after CloseWithError(7): %v", err)
	}
	if c.Context().Err() == nil {
		t.Fatal("the other end's Context is not done")
	}
}

type receiveLike interface {
	Read([]byte) (int, error)
	SetReadDeadline(time.Time) error
}
