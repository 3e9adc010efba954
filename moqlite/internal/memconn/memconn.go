// Package memconn is an in-memory transport.Session pair for tests: two
// ends joined by byte pipes, with per-stream flow control so a reader that
// stops reading blocks its writer, as QUIC's does.
//
// # Invariants
//
//   - Bytes on a stream arrive in order and once; the reader sees io.EOF
//     only after every byte written before Close.
//   - Reset and Stop end one stream with an error on the other side;
//     CloseWithError (or the parent context ending) ends every stream and
//     both sides' Context.
//   - Nothing blocks past a deadline, the session's end or its context.
//
// One stream holds at most Window unread bytes, and one direction of the
// session SessionWindow; Write blocks past either.
// Streams are delivered to the peer's Accept as soon as they are opened.
package memconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/moqstats/moqstats/moqlite/transport"
)

// Window is the unread bytes a stream buffers before Write blocks, and
// SessionWindow those all streams in one direction buffer together, as
// QUIC's stream and connection flow control.
const (
	Window        = 64 << 10
	SessionWindow = 256 << 10
)

// window is one direction's connection-level flow control.
type window struct {
	mu      sync.Mutex
	used    int
	changed chan struct{}
}

func (w *window) room() (int, chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return SessionWindow - w.used, w.changed
}

func (w *window) add(n int) {
	w.mu.Lock()
	w.used += n
	if n < 0 {
		close(w.changed)
		w.changed = make(chan struct{})
	}
	w.mu.Unlock()
}

// ErrClosed is returned once the session has ended.
var ErrClosed = errors.New("memconn: session closed")

// StreamError is returned by reads after the peer's Reset and by writes
// after its Stop.
type StreamError struct {
	Code   uint64
	Remote bool
}

func (e *StreamError) Error() string {
	return fmt.Sprintf("memconn: stream aborted with code %d", e.Code)
}

// SessionError is returned after the session was closed with a code.
type SessionError struct {
	Code   uint64
	Reason string
}

func (e *SessionError) Error() string {
	return fmt.Sprintf("memconn: session closed with code %d: %s", e.Code, e.Reason)
}

type shared struct {
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	err    error // set once, the reason both ends closed
}

// Session is one end of a pair.
type Session struct {
	sh       *shared
	peer     *Session
	protocol string
	send     *window // what this end writes and the peer has not read
	bidi     chan *stream
	uni      chan *pipe
}

// Pair returns two joined sessions agreed on protocol: a client end and a
// server end. Both end when ctx does.
func Pair(ctx context.Context, protocol string) (client, server *Session) {
	c, cancel := context.WithCancel(ctx)
	sh := &shared{ctx: c, cancel: cancel}
	client = &Session{sh: sh, protocol: protocol, bidi: make(chan *stream, 4096), uni: make(chan *pipe, 4096)}
	server = &Session{sh: sh, protocol: protocol, bidi: make(chan *stream, 4096), uni: make(chan *pipe, 4096)}
	client.peer, server.peer = server, client
	client.send = &window{changed: make(chan struct{})}
	server.send = &window{changed: make(chan struct{})}
	return client, server
}

func (s *Session) closedErr() error {
	s.sh.mu.Lock()
	defer s.sh.mu.Unlock()
	if s.sh.err != nil {
		return s.sh.err
	}
	return ErrClosed
}

// OpenBidi opens a bidi stream, which the peer accepts at once.
func (s *Session) OpenBidi(ctx context.Context) (transport.BidiStream, error) {
	ab, ba := newPipe(s.sh, s.send), newPipe(s.sh, s.peer.send)
	local := &stream{send: ab, recv: ba}
	remote := &stream{send: ba, recv: ab}
	select {
	case s.peer.bidi <- remote:
		return local, nil
	case <-s.sh.ctx.Done():
		return nil, s.closedErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// OpenUni opens a stream only this side writes.
func (s *Session) OpenUni(ctx context.Context) (transport.SendStream, error) {
	p := newPipe(s.sh, s.send)
	select {
	case s.peer.uni <- p:
		return &sendOnly{p}, nil
	case <-s.sh.ctx.Done():
		return nil, s.closedErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// AcceptBidi waits for the peer's next bidi stream.
func (s *Session) AcceptBidi(ctx context.Context) (transport.BidiStream, error) {
	select {
	case st := <-s.bidi:
		return st, nil
	case <-s.sh.ctx.Done():
		return nil, s.closedErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// AcceptUni waits for the peer's next uni stream.
func (s *Session) AcceptUni(ctx context.Context) (transport.ReceiveStream, error) {
	select {
	case p := <-s.uni:
		return &recvOnly{p}, nil
	case <-s.sh.ctx.Done():
		return nil, s.closedErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Protocol is the protocol given to Pair.
func (s *Session) Protocol() string { return s.protocol }

// CloseWithError ends both ends; the first reason is kept.
func (s *Session) CloseWithError(code uint64, reason string) error {
	s.sh.mu.Lock()
	if s.sh.err == nil {
		s.sh.err = &SessionError{Code: code, Reason: reason}
	}
	s.sh.mu.Unlock()
	s.sh.cancel()
	return nil
}

// Err is the reason the session ended, nil while it runs.
func (s *Session) Err() error {
	if s.sh.ctx.Err() == nil {
		return nil
	}
	return s.closedErr()
}

// Context is done once either end closed.
func (s *Session) Context() context.Context { return s.sh.ctx }

// pipe is one direction of a stream.
type pipe struct {
	sh  *shared
	win *window
	mu  sync.Mutex
	// buf holds bytes written and not yet read; fin is set by Close,
	// reset by the writer's Reset, stop by the reader's Stop.
	buf            []byte
	fin            bool
	reset, stop    *uint64
	rdl, wdl       time.Time
	changed        chan struct{} // closed and replaced on every change
	readerFinished bool
}

func newPipe(sh *shared, win *window) *pipe {
	return &pipe{sh: sh, win: win, changed: make(chan struct{})}
}

// drop empties the buffer, returning its bytes to the session window; p.mu
// is held.
func (p *pipe) drop() {
	p.win.add(-len(p.buf))
	p.buf = nil
}

// notify wakes every waiter; p.mu is held.
func (p *pipe) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// wait blocks until p changes, the deadline passes or the session ends;
// p.mu is held on entry and on return.
func (p *pipe) wait(deadline time.Time, also chan struct{}) error {
	ch := p.changed
	p.mu.Unlock()
	defer p.mu.Lock()
	var timer <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ch:
		return nil
	case <-also:
		return nil
	case <-timer:
		return os.ErrDeadlineExceeded
	case <-p.sh.ctx.Done():
		return ErrClosed
	}
}

func (p *pipe) sessionErr() error {
	p.sh.mu.Lock()
	defer p.sh.mu.Unlock()
	if p.sh.err != nil {
		return p.sh.err
	}
	return ErrClosed
}

func (p *pipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.reset != nil {
			return 0, &StreamError{Code: *p.reset, Remote: true}
		}
		if len(p.buf) > 0 {
			n := copy(b, p.buf)
			p.buf = p.buf[n:]
			p.win.add(-n)
			p.notify()
			return n, nil
		}
		if p.fin {
			return 0, io.EOF
		}
		if p.stop != nil {
			return 0, &StreamError{Code: *p.stop}
		}
		if p.sh.ctx.Err() != nil {
			return 0, p.sessionErr()
		}
		if err := p.wait(p.rdl, nil); err != nil {
			if err == ErrClosed {
				err = p.sessionErr()
			}
			return 0, err
		}
	}
}

func (p *pipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for {
		switch {
		case p.stop != nil:
			return n, &StreamError{Code: *p.stop, Remote: true}
		case p.reset != nil:
			return n, &StreamError{Code: *p.reset}
		case p.fin:
			return n, errors.New("memconn: write after Close")
		case p.sh.ctx.Err() != nil:
			return n, p.sessionErr()
		}
		if len(b) == 0 {
			return n, nil
		}
		shared, sessionChanged := p.win.room()
		if room := min(Window-len(p.buf), shared); room > 0 {
			k := min(room, len(b))
			p.buf = append(p.buf, b[:k]...)
			p.win.add(k)
			b = b[k:]
			n += k
			p.notify()
			continue
		}
		if err := p.wait(p.wdl, sessionChanged); err != nil {
			if err == ErrClosed {
				err = p.sessionErr()
			}
			return n, err
		}
	}
}

func (p *pipe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reset == nil {
		p.fin = true
	}
	p.notify()
	return nil
}

func (p *pipe) Reset(code uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fin && len(p.buf) == 0 {
		return
	}
	if p.reset == nil {
		p.reset = &code
		p.drop()
	}
	p.notify()
}

func (p *pipe) Stop(code uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop == nil {
		p.stop = &code
		p.drop()
	}
	p.notify()
}

func (p *pipe) SetReadDeadline(t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rdl = t
	p.notify()
	return nil
}

func (p *pipe) SetWriteDeadline(t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wdl = t
	p.notify()
	return nil
}

type stream struct{ send, recv *pipe }

func (s *stream) Write(b []byte) (int, error)        { return s.send.Write(b) }
func (s *stream) Close() error                       { return s.send.Close() }
func (s *stream) Reset(code uint64)                  { s.send.Reset(code) }
func (s *stream) SetWriteDeadline(t time.Time) error { return s.send.SetWriteDeadline(t) }
func (s *stream) Read(b []byte) (int, error)         { return s.recv.Read(b) }
func (s *stream) Stop(code uint64)                   { s.recv.Stop(code) }
func (s *stream) SetReadDeadline(t time.Time) error  { return s.recv.SetReadDeadline(t) }

type sendOnly struct{ p *pipe }

func (s *sendOnly) Write(b []byte) (int, error)        { return s.p.Write(b) }
func (s *sendOnly) Close() error                       { return s.p.Close() }
func (s *sendOnly) Reset(code uint64)                  { s.p.Reset(code) }
func (s *sendOnly) SetWriteDeadline(t time.Time) error { return s.p.SetWriteDeadline(t) }

type recvOnly struct{ p *pipe }

func (s *recvOnly) Read(b []byte) (int, error)        { return s.p.Read(b) }
func (s *recvOnly) Stop(code uint64)                  { s.p.Stop(code) }
func (s *recvOnly) SetReadDeadline(t time.Time) error { return s.p.SetReadDeadline(t) }

var (
	_ transport.Session       = (*Session)(nil)
	_ transport.BidiStream    = (*stream)(nil)
	_ transport.SendStream    = (*sendOnly)(nil)
	_ transport.ReceiveStream = (*recvOnly)(nil)
)
