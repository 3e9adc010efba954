package moqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqstats/moqstats/internal/moqpath"
	"github.com/moqstats/moqstats/moqlite/internal/wire"
	"github.com/moqstats/moqstats/moqlite/transport"
)

// session is one peer's session on the server. Its state machine: a
// handshake (the version, from the application protocol or SETUP), then
// any number of announce, subscribe and probe streams from the peer, until
// it ends by the peer, an error, idling or Shutdown.
type session struct {
	srv  *Server
	sess transport.Session
	info ConnInfo
	f    wire.Features

	ctx    context.Context
	cancel context.CancelFunc

	// mu guards the counts and idleSince.
	mu        sync.Mutex
	subs      int
	interests int
	probes    int
	relays    int       // broadcasts of the peer's relayed (ServerConfig.Ingest)
	pending   int       // streams the peer opened whose first message is not in yet
	idleSince time.Time // zero while anything is open
	closeOnce sync.Once
	err       error // why the server closed it
}

// protocolError is a peer's violation; the session closes with CodeProtocol.
type protocolError struct{ err error }

func (e *protocolError) Error() string { return e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }

// ServeSession runs one accepted session until it ends; the version comes
// from sess.Protocol() ("moq-lite-03", "moq-lite-04") or, for "moql" / "",
// from SETUP on a bidi stream (lite-02). It enforces the caps, timeouts and
// the auth hook, and never panics on peer input. It returns nil when the
// peer or Shutdown ended the session, else why the server closed it.
func (s *Server) ServeSession(ctx context.Context, sess transport.Session, info ConnInfo) error {
	defer s.active.Add(-1)
	if n := s.active.Add(1); n > int64(s.cfg.MaxSessions) {
		s.stats.sessionsRefused.Add(1)
		sess.CloseWithError(CodeRefused, "too many sessions")
		return fmt.Errorf("%w: %d sessions, cap %d", ErrRefused, n-1, s.cfg.MaxSessions)
	}
	if err := s.authorize(info, Request{Action: ActionConnect}); err != nil {
		sess.CloseWithError(CodeRefused, "unauthorized")
		return err
	}
	ss := s.newSession(ctx, sess, info)
	defer ss.cancel()

	f, ok, setup := wire.ByProtocol(sess.Protocol())
	switch {
	case ok:
		ss.f = f
	case setup:
		var err error
		if ss.f, err = ss.handshake(); err != nil {
			return ss.fail(err)
		}
	default:
		return ss.fail(&protocolError{fmt.Errorf("%w: unsupported application protocol %q", wire.ErrProtocol, sess.Protocol())})
	}

	if err := s.register(ss); err != nil {
		return err
	}
	ss.idleSince = time.Now()

	go ss.acceptBidi()
	if s.cfg.Ingest != nil {
		// Its Client takes the peer's uni streams: the groups of the
		// broadcasts the server subscribes to.
		go ss.ingest(newClient(sess, f, ss.ingestClientConfig()))
	} else {
		go ss.acceptUni()
	}
	go ss.watchIdle()
	<-ss.ctx.Done()
	ss.mu.Lock()
	err := ss.err
	ss.mu.Unlock()
	return err
}

// newSession is the server's half of sess, ended with ctx or sess.
func (s *Server) newSession(ctx context.Context, sess transport.Session, info ConnInfo) *session {
	ss := &session{srv: s, sess: sess, info: info}
	ss.ctx, ss.cancel = context.WithCancel(ctx)
	go func() {
		// The transport's end ends ours.
		select {
		case <-sess.Context().Done():
			ss.cancel()
		case <-ss.ctx.Done():
		}
	}()
	return ss
}

// register adds ss to the sessions Shutdown ends, until ss ends; an error
// (and sess closed) once the server is shut down.
func (s *Server) register(ss *session) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.stats.sessionsRefused.Add(1)
		ss.sess.CloseWithError(CodeShutdown, "server shutting down")
		return ErrServerClosed
	}
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	s.stats.sessions.Add(1)
	go func() {
		<-ss.ctx.Done()
		s.mu.Lock()
		delete(s.sessions, ss)
		s.mu.Unlock()
	}()
	return nil
}

func (s *Server) authorize(info ConnInfo, req Request) error {
	if s.cfg.Authorize == nil {
		return nil
	}
	if err := s.cfg.Authorize(info, req); err != nil {
		s.stats.authRefused.Add(1)
		return fmt.Errorf("%w: %s %q: %w", ErrRefused, req.Action, req.Path, err)
	}
	return nil
}

// fail closes the session for err, with the code its kind calls for, and
// returns err.
func (ss *session) fail(err error) error {
	code := CodeProtocol
	var pe *protocolError
	switch {
	case errors.As(err, &pe) || errors.Is(err, wire.ErrProtocol):
		ss.srv.stats.protocolErrors.Add(1)
	case errors.Is(err, ErrTimeout):
		code = CodeTimeout
	case errors.Is(err, ErrRefused):
		code = CodeRefused
	}
	ss.srv.log.Debug("moqlite: closing session", "remote", ss.info.RemoteAddr, "err", err)
	ss.mu.Lock()
	if ss.err == nil {
		ss.err = err
	}
	ss.mu.Unlock()
	ss.close(code, err.Error())
	return err
}

func (ss *session) close(code uint64, reason string) {
	ss.closeOnce.Do(func() {
		if len(reason) > 256 {
			reason = reason[:256]
		}
		ss.sess.CloseWithError(code, reason)
		ss.cancel()
	})
}

// busy reports whether the peer still has a subscription open.
func (ss *session) busy() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.subs > 0 && ss.ctx.Err() == nil
}

// handshake runs lite-02's SETUP: CLIENT_SETUP on the first bidi stream,
// SERVER_SETUP back, and the stream kept open for SESSION_INFO.
func (ss *session) handshake() (wire.Features, error) {
	to := ss.srv.cfg.HandshakeTimeout
	ctx, cancel := context.WithTimeout(ss.ctx, to)
	defer cancel()
	st, err := ss.sess.AcceptBidi(ctx)
	if err != nil {
		if ctx.Err() != nil && ss.ctx.Err() == nil {
			ss.srv.stats.handshakeTimeouts.Add(1)
			return wire.Features{}, fmt.Errorf("%w: no SETUP within %v", ErrTimeout, to)
		}
		return wire.Features{}, err
	}
	st.SetReadDeadline(time.Now().Add(to))
	br := bufio.NewReaderSize(st, 256)
	typ, err := wire.ReadVarint(br)
	if err == nil && wire.StreamType(typ) != wire.StreamClientSetup {
		return wire.Features{}, &protocolError{fmt.Errorf("%w: first stream has type %#x, want CLIENT_SETUP", wire.ErrProtocol, typ)}
	}
	var body []byte
	if err == nil {
		body, err = wire.ReadSetupMessage(br)
	}
	if err != nil {
		return wire.Features{}, ss.readErr(err, "SETUP")
	}
	cs, err := wire.ParseClientSetup(body)
	if err != nil {
		return wire.Features{}, err
	}
	f, ok := wire.BySetup(cs.Versions)
	if !ok {
		return wire.Features{}, &protocolError{fmt.Errorf("%w: CLIENT_SETUP offers no version served here (%v)", wire.ErrProtocol, cs.Versions)}
	}
	out := wire.AppendVarint(nil, uint64(wire.StreamServerSetup))
	out = wire.AppendSetupMessage(out, wire.AppendServerSetup(nil, wire.ServerSetup{Version: f.Version}))
	st.SetWriteDeadline(time.Now().Add(to))
	if _, err := st.Write(out); err != nil {
		return wire.Features{}, err
	}
	st.SetWriteDeadline(time.Time{})
	st.SetReadDeadline(time.Time{})
	go ss.readSessionInfo(br)
	return f, nil
}

// readSessionInfo drains SESSION_INFO from the SETUP stream; malformed
// ones close the session.
func (ss *session) readSessionInfo(br *bufio.Reader) {
	for {
		body, err := wire.ReadMessage(br, wire.MaxMessage)
		if err != nil {
			if errors.Is(err, wire.ErrProtocol) {
				ss.fail(err)
			}
			return
		}
		if _, err := wire.ParseSessionInfo(body); err != nil {
			ss.fail(err)
			return
		}
	}
}

// readErr turns a read failure into the session's error: a deadline is a
// handshake timeout, a short stream a protocol error.
func (ss *session) readErr(err error, what string) error {
	switch {
	case isTimeout(err):
		ss.srv.stats.handshakeTimeouts.Add(1)
		return fmt.Errorf("%w: %s not received within %v", ErrTimeout, what, ss.srv.cfg.HandshakeTimeout)
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return &protocolError{fmt.Errorf("%w: stream ended before its %s", wire.ErrProtocol, what)}
	}
	return err
}

func (ss *session) acceptBidi() {
	for {
		st, err := ss.sess.AcceptBidi(ss.ctx)
		if err != nil {
			ss.cancel()
			return
		}
		ss.mu.Lock()
		full := ss.pending >= maxPendingStreams
		if !full {
			ss.pending++
		}
		ss.mu.Unlock()
		if full {
			ss.srv.stats.streamsRefused.Add(1)
			refuse(st, CodeRefused)
			continue
		}
		go ss.serveBidi(st)
	}
}

// maxPendingStreams caps the streams of one session waiting for their
// first message (each for at most HandshakeTimeout), so a peer cannot hold
// unbounded goroutines open with streams it never writes to.
const maxPendingStreams = 64

// typed marks a stream's first message as in (or the stream as failed).
func (ss *session) typed() {
	ss.mu.Lock()
	ss.pending--
	ss.mu.Unlock()
}

// acceptUni refuses the peer's uni streams: this server subscribes to
// nothing, so a group stream is stopped, and any other type is a
// protocol error.
func (ss *session) acceptUni() {
	for {
		st, err := ss.sess.AcceptUni(ss.ctx)
		if err != nil {
			ss.cancel()
			return
		}
		go func() {
			st.SetReadDeadline(time.Now().Add(ss.srv.cfg.HandshakeTimeout))
			var b [1]byte
			if _, err := io.ReadFull(st, b[:]); err != nil {
				if ss.ctx.Err() == nil {
					ss.fail(ss.readErr(err, "stream type"))
				}
				return
			}
			if b[0] != wire.UniGroup {
				ss.fail(&protocolError{fmt.Errorf("%w: unknown uni stream type %#x", wire.ErrProtocol, b[0])})
				return
			}
			st.Stop(CodeNotFound)
		}()
	}
}

// serveBidi reads a stream's type and first message, within
// HandshakeTimeout, and hands it to its handler.
func (ss *session) serveBidi(st transport.BidiStream) {
	st.SetReadDeadline(time.Now().Add(ss.srv.cfg.HandshakeTimeout))
	br := bufio.NewReaderSize(st, 512)
	typ, err := wire.ReadVarint(br)
	if err != nil {
		ss.typed()
		if ss.ctx.Err() == nil {
			ss.fail(ss.readErr(err, "stream type"))
		}
		return
	}
	switch t := wire.StreamType(typ); {
	case t == wire.StreamAnnounce:
		ss.serveAnnounce(st, br)
	case t == wire.StreamSubscribe:
		ss.serveSubscribe(st, br)
	case t == wire.StreamProbe && ss.f.Probe:
		ss.typed() // PROBE has no first message
		ss.serveProbe(st, br)
	case t == wire.StreamFetch && ss.f.Fetch:
		body, err := ss.firstMessage(st, br, "FETCH")
		if err != nil {
			return
		}
		if _, err := wire.ParseFetch(body); err != nil {
			ss.fail(err)
			return
		}
		ss.srv.stats.unsupported.Add(1)
		st.Stop(CodeUnsupported)
		st.Reset(CodeUnsupported)
	case t == wire.StreamGoaway && ss.f.Goaway:
		body, err := ss.firstMessage(st, br, "GOAWAY")
		if err != nil {
			return
		}
		if _, err := wire.ParseGoaway(body); err != nil {
			ss.fail(err)
			return
		}
		st.Close()
	default:
		ss.typed()
		ss.fail(&protocolError{fmt.Errorf("%w: unexpected bidi stream type %#x on %s", wire.ErrProtocol, typ, ss.f.Name)})
	}
}

// firstMessage reads the message that follows a stream's type; failures
// close the session.
func (ss *session) firstMessage(st transport.BidiStream, br *bufio.Reader, what string) ([]byte, error) {
	defer ss.typed()
	body, err := wire.ReadMessage(br, wire.MaxMessage)
	if err != nil {
		if ss.ctx.Err() == nil {
			ss.fail(ss.readErr(err, what))
		}
		return nil, err
	}
	st.SetReadDeadline(time.Time{})
	return body, nil
}

// open counts a stream the peer keeps open; false (and the stream reset)
// when its kind's cap is reached.
func (ss *session) open(count *int, limit int, refused *atomic.Uint64) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if *count >= limit {
		refused.Add(1)
		return false
	}
	*count++
	ss.idleSince = time.Time{}
	return true
}

func (ss *session) closeOne(count *int) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	*count--
	if ss.subs+ss.interests+ss.probes+ss.relays == 0 {
		ss.idleSince = time.Now()
	}
}

func (ss *session) serveSubscribe(st transport.BidiStream, br *bufio.Reader) {
	body, err := ss.firstMessage(st, br, "SUBSCRIBE")
	if err != nil {
		return
	}
	m, err := wire.ParseSubscribe(body, ss.f)
	if err != nil {
		ss.fail(err)
		return
	}
	path := moqpath.Normalize(m.Broadcast)
	if !ss.open(&ss.subs, ss.srv.cfg.MaxSubscriptions, &ss.srv.stats.subscriptionsRefused) {
		refuse(st, CodeRefused)
		return
	}
	if err := ss.srv.authorize(ss.info, Request{Action: ActionSubscribe, Path: path, Track: m.Track}); err != nil {
		ss.closeOne(&ss.subs)
		refuse(st, CodeRefused)
		return
	}
	tr, ok := ss.srv.lookup(path, m.Track)
	sub := &subscription{
		sess: ss, id: m.ID, tr: tr, stream: st,
		wake: make(chan struct{}, 1), peerDone: make(chan struct{}), done: make(chan struct{}),
	}
	if !ok || !tr.add(sub) {
		ss.srv.stats.notFound.Add(1)
		ss.closeOne(&ss.subs)
		refuse(st, CodeNotFound)
		return
	}
	st.SetWriteDeadline(time.Now().Add(ss.srv.cfg.WriteTimeout))
	if _, err := st.Write(wire.AppendSubscribeOk(nil, wire.SubscribeOk{Priority: m.Priority, Range: wire.Range{Ordered: m.Range.Ordered}}, ss.f)); err != nil {
		tr.remove(sub)
		ss.closeOne(&ss.subs)
		st.Reset(CodeCancel)
		return
	}
	st.SetWriteDeadline(time.Time{})
	go sub.run()
	// The peer may send SUBSCRIBE_UPDATE; its end of the stream ends the
	// subscription.
	defer close(sub.peerDone)
	for {
		body, err := wire.ReadMessage(br, wire.MaxMessage)
		if err != nil {
			if errors.Is(err, wire.ErrProtocol) {
				ss.fail(err)
			}
			return
		}
		if _, err := wire.ParseSubscribeUpdate(body, ss.f); err != nil {
			ss.fail(err)
			return
		}
	}
}

// refuse ends a stream the server will not serve: both halves, with code.
func refuse(st transport.BidiStream, code uint64) {
	st.Stop(code)
	st.Reset(code)
}

// endSubscription is called by the writer as it returns.
func (ss *session) endSubscription(sub *subscription) {
	sub.tr.remove(sub)
	ss.closeOne(&ss.subs)
}

// serveProbe keeps a PROBE stream open for the session's life: resetting
// it would end @moq/lite's session, and this server has no bitrate
// estimate to send.
func (ss *session) serveProbe(st transport.BidiStream, br *bufio.Reader) {
	if !ss.open(&ss.probes, 4, &ss.srv.stats.subscriptionsRefused) {
		st.Close() // a clean end, never a reset
		return
	}
	defer ss.closeOne(&ss.probes)
	st.SetReadDeadline(time.Time{})
	// The peer sends nothing on it; read until it ends, so a peer that
	// does send is drained, and a byte from it is a protocol error.
	var b [1]byte
	n, err := br.Read(b[:])
	if n > 0 {
		ss.fail(&protocolError{fmt.Errorf("%w: data on a PROBE stream from its subscriber", wire.ErrProtocol)})
		return
	}
	_ = err
	st.Close()
}

// watchIdle closes the session once nothing has been open on it for
// IdleTimeout.
func (ss *session) watchIdle() {
	to := ss.srv.cfg.IdleTimeout
	tick := time.NewTicker(max(to/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ss.ctx.Done():
			return
		case <-tick.C:
		}
		ss.mu.Lock()
		idle := !ss.idleSince.IsZero() && time.Since(ss.idleSince) >= to
		ss.mu.Unlock()
		if idle {
			ss.srv.stats.idleTimeouts.Add(1)
			ss.fail(fmt.Errorf("%w: idle for %v", ErrTimeout, to))
			return
		}
	}
}
