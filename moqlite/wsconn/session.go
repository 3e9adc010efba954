package wsconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/moqstats/moqstats/moqlite/transport"
)

const (
	dirBidi = 0
	dirUni  = 1
)

func dirOf(id uint64) int         { return int(id>>1) & 1 }
func serverOpened(id uint64) bool { return id&1 == 1 }
func streamID(idx uint64, dir int, server bool) uint64 {
	id := idx<<2 | uint64(dir)<<1
	if server {
		id |= 1
	}
	return id
}

// Session is a transport.Session over one WebSocket.
//
// One goroutine reads messages and applies their frames under mu; it never
// writes, so a peer that stops reading cannot stall it: the replies it
// provokes (resets, credit) go to a bounded queue that a second goroutine
// writes. Stream writers and that goroutine take turns through wsem, one
// whole WebSocket message at a time.
type Session struct {
	conn     *websocket.Conn
	framing  Framing
	protocol string
	isServer bool
	cfg      Config

	ctx    context.Context
	cancel context.CancelCauseFunc

	wsem     chan struct{} // a token: whoever holds it writes one message
	ctrl     chan []byte   // control frames for the writer goroutine
	lastRecv atomic.Int64  // unix nanos of the last message read
	paused   atomic.Bool   // the read loop waits for a reader (waitRoom)

	mu         sync.Mutex
	closeErr   error              // why the session ended; set once
	streams    map[uint64]*stream // live streams: some side not yet finished
	nextLocal  [2]uint64          // index of the next stream we open
	peerNext   [2]uint64          // lowest peer stream index not yet opened
	peerLive   [2]uint64          // peer streams opened and not finished
	peerDone   [2]uint64          // peer streams finished both ways
	accept     [2][]*stream       // peer streams not yet accepted
	acceptSig  [2]chan struct{}   // closed and replaced on a new peer stream
	buffered   uint64             // unread bytes across all streams
	consumeSig chan struct{}      // closed and replaced when a reader consumes (webtransport framing)

	// qmux-00 credit. Send side: what the peer allows us.
	gotParams bool
	peer      transportParams
	maxLocal  [2]uint64     // stream indexes we may open
	sendMax   uint64        // connection data we may send
	sendUsed  uint64        // connection data sent
	creditSig chan struct{} // closed and replaced when maxLocal or sendMax grows
	// Receive side: what we allow the peer.
	maxPeer       [2]uint64 // stream index bound granted
	recvMax       uint64    // connection data granted
	recvTotal     uint64    // connection data received
	consumedTotal uint64    // connection data read or discarded
}

var _ transport.Session = (*Session)(nil)

func newSession(conn *websocket.Conn, f Framing, proto string, server bool, cfg Config) (*Session, error) {
	s := &Session{
		conn: conn, framing: f, protocol: proto, isServer: server, cfg: cfg,
		wsem:       make(chan struct{}, 1),
		ctrl:       make(chan []byte, cfg.MaxControlQueue),
		streams:    make(map[uint64]*stream),
		creditSig:  make(chan struct{}),
		consumeSig: make(chan struct{}),
	}
	s.acceptSig[0], s.acceptSig[1] = make(chan struct{}), make(chan struct{})
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	s.lastRecv.Store(time.Now().UnixNano())
	conn.SetReadLimit(cfg.MaxMessageSize)
	if f == FramingQMux {
		ours := transportParams{
			maxData:            cfg.SessionWindow,
			maxStreamDataBidiL: cfg.StreamWindow,
			maxStreamDataBidiR: cfg.StreamWindow,
			maxStreamDataUni:   cfg.StreamWindow,
			maxStreamsBidi:     cfg.MaxIncomingStreams,
			maxStreamsUni:      cfg.MaxIncomingStreams,
		}
		s.maxPeer = [2]uint64{cfg.MaxIncomingStreams, cfg.MaxIncomingStreams}
		s.recvMax = cfg.SessionWindow
		// The parameters are the first frame either side sends, so they
		// are written before any goroutine may write.
		ctx, cancel := context.WithTimeout(context.Background(), cfg.HandshakeTimeout)
		err := conn.Write(ctx, websocket.MessageBinary, appendParamsFrame(nil, ours))
		cancel()
		if err != nil {
			conn.CloseNow()
			return nil, fmt.Errorf("wsconn: writing transport parameters: %w", err)
		}
		t := time.AfterFunc(cfg.HandshakeTimeout, func() {
			s.mu.Lock()
			got := s.gotParams
			s.mu.Unlock()
			if !got {
				s.shutdown(ErrHandshakeTimeout, websocket.StatusPolicyViolation, "handshake timeout")
			}
		})
		context.AfterFunc(s.ctx, func() { t.Stop() })
	}
	go s.readLoop()
	go s.writeLoop()
	if cfg.IdleTimeout > 0 {
		go s.keepalive()
	}
	return s, nil
}

// Framing is the framing the WebSocket subprotocol chose.
func (s *Session) Framing() Framing { return s.framing }

// Protocol is the application protocol from the subprotocol, "" for a bare
// framing.
func (s *Session) Protocol() string { return s.protocol }

// Context is done once the session has ended; its cause says why.
func (s *Session) Context() context.Context { return s.ctx }

// Err is why the session ended, or nil while it runs.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeErr
}

func (s *Session) err() error {
	if err := context.Cause(s.ctx); err != nil {
		return err
	}
	return net.ErrClosed
}

// shutdown ends the session once: it records why, wakes every waiter (all
// select on ctx) and closes the WebSocket with status and reason.
func (s *Session) shutdown(err error, status websocket.StatusCode, reason string) {
	s.mu.Lock()
	if s.closeErr != nil {
		s.mu.Unlock()
		return
	}
	s.closeErr = err
	s.mu.Unlock()
	s.cancel(err)
	if len(reason) > 120 { // a close frame's reason is at most 123 bytes
		reason = reason[:120]
	}
	go s.conn.Close(status, reason)
}

// CloseWithError sends the peer an application close with code and reason,
// then ends the session.
func (s *Session) CloseWithError(code uint64, reason string) error {
	if code > maxVarint {
		code = maxVarint
	}
	if s.ctx.Err() != nil {
		return nil
	}
	// Written before shutdown so the peer reads the code; bounded, since
	// a peer that does not read must not hold up the close.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	select {
	case s.wsem <- struct{}{}:
		_ = s.conn.Write(ctx, websocket.MessageBinary, appendCloseFrame(nil, s.framing, code, reason))
		<-s.wsem
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	cancel()
	s.shutdown(&SessionError{Code: code, Reason: reason}, websocket.StatusNormalClosure, "")
	return nil
}

func (s *Session) readLoop() {
	for {
		// Not s.ctx: cancelling a read closes the WebSocket at once, and
		// shutdown wants the close handshake. Closing the conn ends this.
		typ, msg, err := s.conn.Read(context.Background())
		if err != nil {
			if st := websocket.CloseStatus(err); st != -1 {
				s.shutdown(fmt.Errorf("wsconn: the peer closed the WebSocket (%d): %w", st, err), websocket.StatusNormalClosure, "")
			} else {
				s.shutdown(fmt.Errorf("wsconn: connection lost: %w", err), websocket.StatusAbnormalClosure, "")
			}
			return
		}
		s.lastRecv.Store(time.Now().UnixNano())
		if typ != websocket.MessageBinary {
			err = protoErr("text message")
		} else {
			err = s.handleMessage(msg)
		}
		if err != nil {
			status := websocket.StatusProtocolError
			if errors.Is(err, ErrControlQueueFull) {
				status = websocket.StatusPolicyViolation
			}
			s.shutdown(err, status, err.Error())
			return
		}
	}
}

func (s *Session) writeLoop() {
	for {
		select {
		case b := <-s.ctrl:
			select {
			case s.wsem <- struct{}{}:
			case <-s.ctx.Done():
				return
			}
			err := s.conn.Write(s.ctx, websocket.MessageBinary, b)
			<-s.wsem
			if err != nil {
				s.shutdown(fmt.Errorf("wsconn: write: %w", err), websocket.StatusAbnormalClosure, "")
				return
			}
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Session) keepalive() {
	half := s.cfg.IdleTimeout / 2
	t := time.NewTicker(half / 2)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		// While the read loop waits for a reader it reads no pongs; the
		// peer is not idle then, we are.
		if s.paused.Load() || time.Since(time.Unix(0, s.lastRecv.Load())) < half {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, half)
		err := s.conn.Ping(ctx)
		cancel()
		if err != nil {
			s.shutdown(ErrIdleTimeout, websocket.StatusPolicyViolation, "idle timeout")
			return
		}
		s.lastRecv.Store(time.Now().UnixNano())
	}
}

// queueFromPeer queues control frames the read loop produced; it never
// blocks, and a full queue ends the session.
func (s *Session) queueFromPeer(frames [][]byte) error {
	for _, b := range frames {
		select {
		case s.ctrl <- b:
		default:
			return ErrControlQueueFull
		}
	}
	return nil
}

// queueLocal queues control frames a local call produced, waiting for room.
func (s *Session) queueLocal(frames [][]byte) {
	for _, b := range frames {
		select {
		case s.ctrl <- b:
		case <-s.ctx.Done():
			return
		}
	}
}

// writeMsg writes one message of st, waiting for the turn until dl or
// st's abort. A stream aborted before its turn writes nothing, so its data
// never follows its RESET_STREAM, which takes a turn too.
func (s *Session) writeMsg(st *stream, msg []byte, dl time.Time) error {
	abort := st.abort
	var timer <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case s.wsem <- struct{}{}:
	case <-s.ctx.Done():
		return s.err()
	case <-timer:
		return os.ErrDeadlineExceeded
	case <-abort:
		return errAbortWait
	}
	s.mu.Lock()
	aborted := st.aborted
	s.mu.Unlock()
	if aborted {
		<-s.wsem
		return errAbortWait
	}
	err := s.conn.Write(s.ctx, websocket.MessageBinary, msg)
	<-s.wsem
	if err != nil {
		if s.ctx.Err() != nil {
			return s.err()
		}
		s.shutdown(fmt.Errorf("wsconn: write: %w", err), websocket.StatusAbnormalClosure, "")
		return s.err()
	}
	return nil
}

var errAbortWait = errors.New("wsconn: wait aborted")

// wait blocks until sig or extra is closed (nil), the session ends, or dl.
func (s *Session) wait(ctx context.Context, sig, extra <-chan struct{}, dl time.Time) error {
	var timer <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	select {
	case <-sig:
		return nil
	case <-extra:
		return nil
	case <-s.ctx.Done():
		return s.err()
	case <-done:
		return ctx.Err()
	case <-timer:
		return os.ErrDeadlineExceeded
	}
}

func signal(c *chan struct{}) {
	close(*c)
	*c = make(chan struct{})
}

// --- opening and accepting ---

// OpenBidi opens a bidirectional stream; under qmux-00 it waits for the
// peer's stream credit.
func (s *Session) OpenBidi(ctx context.Context) (transport.BidiStream, error) {
	st, err := s.open(ctx, dirBidi)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// OpenUni opens a stream only this side writes.
func (s *Session) OpenUni(ctx context.Context) (transport.SendStream, error) {
	st, err := s.open(ctx, dirUni)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (s *Session) open(ctx context.Context, dir int) (*stream, error) {
	for {
		s.mu.Lock()
		if s.closeErr != nil {
			s.mu.Unlock()
			return nil, s.err()
		}
		if s.framing == FramingWebTransport || s.nextLocal[dir] < s.maxLocal[dir] {
			idx := s.nextLocal[dir]
			s.nextLocal[dir]++
			st := s.newStream(streamID(idx, dir, s.isServer))
			s.mu.Unlock()
			return st, nil
		}
		sig := s.creditSig
		s.mu.Unlock()
		if err := s.wait(ctx, sig, nil, time.Time{}); err != nil {
			return nil, err
		}
	}
}

// AcceptBidi waits for the peer's next bidirectional stream.
func (s *Session) AcceptBidi(ctx context.Context) (transport.BidiStream, error) {
	st, err := s.acceptNext(ctx, dirBidi)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// AcceptUni waits for the peer's next unidirectional stream.
func (s *Session) AcceptUni(ctx context.Context) (transport.ReceiveStream, error) {
	st, err := s.acceptNext(ctx, dirUni)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (s *Session) acceptNext(ctx context.Context, dir int) (*stream, error) {
	for {
		s.mu.Lock()
		if q := s.accept[dir]; len(q) > 0 {
			st := q[0]
			q[0] = nil
			s.accept[dir] = q[1:]
			s.mu.Unlock()
			return st, nil
		}
		if s.closeErr != nil {
			s.mu.Unlock()
			return nil, s.err()
		}
		sig := s.acceptSig[dir]
		s.mu.Unlock()
		if err := s.wait(ctx, sig, nil, time.Time{}); err != nil {
			return nil, err
		}
	}
}

// newStream registers a stream; s.mu is held.
func (s *Session) newStream(id uint64) *stream {
	dir := dirOf(id)
	local := serverOpened(id) == s.isServer
	st := &stream{
		s: s, id: id,
		hasSend: local || dir == dirBidi,
		hasRecv: !local || dir == dirBidi,
		rsig:    make(chan struct{}),
		ssig:    make(chan struct{}),
		abort:   make(chan struct{}),
		recvMax: s.cfg.StreamWindow,
	}
	if s.framing == FramingQMux && s.gotParams {
		st.sendMax = s.streamSendLimit(id)
	}
	s.streams[id] = st
	return st
}

// streamSendLimit is the peer's initial credit for stream id.
func (s *Session) streamSendLimit(id uint64) uint64 {
	switch {
	case dirOf(id) == dirUni:
		return s.peer.maxStreamDataUni
	case serverOpened(id) == s.isServer:
		return s.peer.maxStreamDataBidiR // the peer's remote: streams we open
	default:
		return s.peer.maxStreamDataBidiL
	}
}

// maybeRemove forgets st once both its sides are finished, and returns
// stream credit for peer streams; s.mu is held.
func (s *Session) maybeRemove(st *stream, out [][]byte) [][]byte {
	if st.removed || (st.hasRecv && !st.rdone) || (st.hasSend && !st.sdone) {
		return out
	}
	st.removed = true
	delete(s.streams, st.id)
	if serverOpened(st.id) == s.isServer {
		return out
	}
	dir := dirOf(st.id)
	s.peerLive[dir]--
	s.peerDone[dir]++
	if s.framing != FramingQMux {
		return out
	}
	grant := s.peerDone[dir] + s.cfg.MaxIncomingStreams
	if step := max(s.cfg.MaxIncomingStreams/4, 1); grant-s.maxPeer[dir] >= step {
		s.maxPeer[dir] = grant
		typ := uint64(typeMaxStreamsBidi)
		if dir == dirUni {
			typ = typeMaxStreamsUni
		}
		out = append(out, appendMaxFrame(nil, typ, grant))
	}
	return out
}

// consumed accounts n bytes read or discarded from st and returns the
// credit updates due; s.mu is held.
func (s *Session) consumed(st *stream, n uint64, out [][]byte) [][]byte {
	st.consumed += n
	s.consumedTotal += n
	if n > 0 && s.framing == FramingWebTransport {
		signal(&s.consumeSig)
	}
	if s.framing != FramingQMux || n == 0 {
		return out
	}
	w := s.cfg.StreamWindow
	if !st.rfin && !st.rdone && st.consumed+w-st.recvMax >= w/2 {
		st.recvMax = st.consumed + w
		out = append(out, appendMaxStreamDataFrame(nil, st.id, st.recvMax))
	}
	sw := s.cfg.SessionWindow
	if s.consumedTotal+sw-s.recvMax >= sw/2 {
		s.recvMax = s.consumedTotal + sw
		out = append(out, appendMaxFrame(nil, typeMaxData, s.recvMax))
	}
	return out
}

// --- the read side: frames from the peer ---

func (s *Session) handleMessage(msg []byte) error {
	if len(msg) == 0 {
		return protoErr("empty message")
	}
	for len(msg) > 0 {
		fr, rest, err := parseFrame(s.framing, msg)
		if err != nil {
			return err
		}
		msg = rest
		if s.framing == FramingWebTransport && fr.kind == kindStream {
			if err := s.waitRoom(fr.id, uint64(len(fr.data))); err != nil {
				return err
			}
		}
		s.mu.Lock()
		if s.framing == FramingQMux && !s.gotParams && fr.kind != kindParams {
			s.mu.Unlock()
			return protoErr("first frame is not the transport parameters")
		}
		out, err := s.apply(&fr)
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if err := s.queueFromPeer(out); err != nil {
			return err
		}
	}
	return nil
}

// waitRoom holds the read loop until stream id has room for n more
// unread bytes. The webtransport framing has no credit, so the only
// bounded answer to a peer outrunning a reader is to stop reading the
// WebSocket, which TCP turns into backpressure on the peer. A stream with
// nothing buffered always takes one frame, so a frame larger than the
// window cannot wedge it.
func (s *Session) waitRoom(id, n uint64) error {
	for {
		s.mu.Lock()
		st := s.streams[id]
		// A stream not in the map is new (or finished, then dropped): only
		// the session's room counts for it.
		streamRoom := st == nil || st.rqLen == 0 || st.rqLen+n <= s.cfg.StreamWindow
		sessionRoom := s.buffered == 0 || s.buffered+n <= s.cfg.SessionWindow
		if (st != nil && st.rdone) || (streamRoom && sessionRoom) {
			s.mu.Unlock()
			s.paused.Store(false)
			return nil
		}
		sig := s.consumeSig
		s.mu.Unlock()
		s.paused.Store(true)
		select {
		case <-sig:
		case <-s.ctx.Done():
			return s.err()
		}
		s.lastRecv.Store(time.Now().UnixNano())
	}
}

// apply applies one frame; s.mu is held.
func (s *Session) apply(fr *frame) ([][]byte, error) {
	switch fr.kind {
	case kindStream:
		return s.onStream(fr)
	case kindReset:
		st, err := s.peerStream(fr.id, false)
		if err != nil || st == nil || st.rdone {
			return nil, err
		}
		st.rerr = &StreamError{Code: fr.code, Remote: true}
		return s.finishRecv(st, nil), nil
	case kindStop:
		st, err := s.peerStream(fr.id, true)
		if err != nil || st == nil || st.sdone {
			return nil, err
		}
		st.serr = &StreamError{Code: fr.code, Remote: true}
		st.sdone, st.aborted = true, true
		close(st.abort)
		signal(&st.ssig)
		// As QUIC asks, a stop is answered with a reset.
		out := [][]byte{appendResetFrame(nil, s.framing, st.id, fr.code, st.sendOff)}
		return s.maybeRemove(st, out), nil
	case kindClose:
		err := &SessionError{Code: fr.code, Reason: fr.reason, Remote: true}
		s.mu.Unlock()
		s.shutdown(err, websocket.StatusNormalClosure, "")
		s.mu.Lock()
		return nil, nil
	case kindParams:
		if s.gotParams {
			return nil, protoErr("transport parameters sent twice")
		}
		if fr.params.maxStreamsBidi > 1<<60 || fr.params.maxStreamsUni > 1<<60 {
			return nil, protoErr("stream limit above 2^60")
		}
		s.gotParams = true
		s.peer = fr.params
		s.sendMax = fr.params.maxData
		s.maxLocal = [2]uint64{fr.params.maxStreamsBidi, fr.params.maxStreamsUni}
		for _, st := range s.streams {
			if st.hasSend {
				st.sendMax = s.streamSendLimit(st.id)
				signal(&st.ssig)
			}
		}
		signal(&s.creditSig)
	case kindMaxData:
		if fr.max > s.sendMax {
			s.sendMax = fr.max
			signal(&s.creditSig)
		}
	case kindMaxStreamData:
		if st := s.streams[fr.id]; st != nil && st.hasSend && fr.max > st.sendMax {
			st.sendMax = fr.max
			signal(&st.ssig)
		}
	case kindMaxStreamsBidi, kindMaxStreamsUni:
		if fr.max > 1<<60 {
			return nil, protoErr("stream limit above 2^60")
		}
		dir := dirBidi
		if fr.kind == kindMaxStreamsUni {
			dir = dirUni
		}
		if fr.max > s.maxLocal[dir] {
			s.maxLocal[dir] = fr.max
			signal(&s.creditSig)
		}
	}
	return nil, nil
}

// peerStream finds the stream a RESET_STREAM (send=false) or STOP_SENDING
// (send=true) names, opening peer streams it implies; nil for a finished
// one. A frame for a direction the stream lacks breaks the framing.
func (s *Session) peerStream(id uint64, send bool) (*stream, error) {
	local := serverOpened(id) == s.isServer
	if dirOf(id) == dirUni && local != send {
		if send {
			return nil, protoErr("STOP_SENDING for a stream only the peer sends on")
		}
		return nil, protoErr("RESET_STREAM for a stream only we send on")
	}
	if st := s.streams[id]; st != nil {
		return st, nil
	}
	return s.openImplied(id)
}

// openImplied handles a frame for a stream not in the map: a local stream
// never opened breaks the framing, a finished one is nil, and a new peer
// stream index opens it and every lower one, as in QUIC.
func (s *Session) openImplied(id uint64) (*stream, error) {
	dir, idx := dirOf(id), id>>2
	if serverOpened(id) == s.isServer {
		if idx >= s.nextLocal[dir] {
			return nil, protoErr("frame for a stream we never opened")
		}
		return nil, nil
	}
	if idx < s.peerNext[dir] {
		return nil, nil
	}
	n := idx - s.peerNext[dir] + 1
	if s.framing == FramingQMux {
		if idx >= s.maxPeer[dir] {
			return nil, protoErr("stream limit exceeded")
		}
	} else if s.peerLive[dir]+n > s.cfg.MaxIncomingStreams {
		return nil, protoErr(fmt.Sprintf("more than %d streams open at once", s.cfg.MaxIncomingStreams))
	}
	var st *stream
	for i := s.peerNext[dir]; i <= idx; i++ {
		st = s.newStream(streamID(i, dir, !s.isServer))
		s.accept[dir] = append(s.accept[dir], st)
	}
	s.peerNext[dir] = idx + 1
	s.peerLive[dir] += n
	signal(&s.acceptSig[dir])
	return st, nil
}

func (s *Session) onStream(fr *frame) ([][]byte, error) {
	if dirOf(fr.id) == dirUni && serverOpened(fr.id) == s.isServer {
		return nil, protoErr("STREAM on a stream only we send on")
	}
	n := uint64(len(fr.data))
	st := s.streams[fr.id]
	if st == nil {
		var err error
		if st, err = s.openImplied(fr.id); err != nil {
			return nil, err
		}
		if st == nil {
			// A finished stream: late data after our Stop. Its credit
			// counts as received and consumed at once.
			if s.framing == FramingQMux && s.recvTotal+n > s.recvMax {
				return nil, protoErr("connection flow control exceeded")
			}
			s.recvTotal += n
			s.consumedTotal += n
			return nil, nil
		}
	}
	if st.rfin {
		if n > 0 {
			return nil, protoErr("stream data after FIN")
		}
		return nil, nil
	}
	if fr.hasOffset && fr.offset != st.recvOff {
		return nil, protoErr("stream data out of order")
	}
	if s.framing == FramingQMux {
		if st.recvOff+n > st.recvMax {
			return nil, protoErr("stream flow control exceeded")
		}
		if s.recvTotal+n > s.recvMax {
			return nil, protoErr("connection flow control exceeded")
		}
	}
	s.recvTotal += n
	st.recvOff += n
	st.rfin = fr.fin
	var out [][]byte
	if st.rdone {
		out = s.consumed(st, n, out) // stopped or reset here: dropped
	} else if n > 0 {
		// qmux-00 credit bounds these already; under the webtransport
		// framing waitRoom made the room.
		if st.rqLen > 0 && st.rqLen+n > s.cfg.StreamWindow {
			return nil, protoErr(fmt.Sprintf("more than %d unread bytes on a stream", s.cfg.StreamWindow))
		}
		if s.buffered > 0 && s.buffered+n > s.cfg.SessionWindow {
			return nil, protoErr(fmt.Sprintf("more than %d unread bytes in the session", s.cfg.SessionWindow))
		}
		st.rq = append(st.rq, fr.data)
		st.rqLen += n
		s.buffered += n
	}
	signal(&st.rsig)
	return out, nil
}

// finishRecv ends st's receive side, dropping what it still holds; s.mu is
// held.
func (s *Session) finishRecv(st *stream, out [][]byte) [][]byte {
	drop := st.rqLen
	s.buffered -= drop
	st.rq, st.rqLen = nil, 0
	st.rdone = true
	out = s.consumed(st, drop, out)
	signal(&st.rsig)
	return s.maybeRemove(st, out)
}

// --- streams ---

// stream is one stream; its fields below wmu are guarded by s.mu.
type stream struct {
	s       *Session
	id      uint64
	hasSend bool
	hasRecv bool

	wmu sync.Mutex // one Write or Close at a time, so chunks stay in order

	// receive side
	rq       [][]byte // unread data, aliasing the messages it came in
	rqLen    uint64
	rfin     bool  // FIN received
	rerr     error // the peer's reset, or errStopped
	rdone    bool  // finished: EOF returned, reset or stopped
	recvOff  uint64
	consumed uint64
	recvMax  uint64 // qmux-00 credit granted
	rdl      time.Time
	rsig     chan struct{}

	// send side
	sendOff uint64
	sendMax uint64 // qmux-00 credit from the peer
	serr    error  // the peer's stop, errReset or errClosed
	sdone   bool
	wdl     time.Time
	ssig    chan struct{}
	abort   chan struct{} // closed when the send side is aborted
	aborted bool          // reset here or stopped by the peer

	removed bool
}

var _ transport.BidiStream = (*stream)(nil)

// Read reads stream data in order; io.EOF follows the last byte before the
// peer's FIN.
func (st *stream) Read(p []byte) (int, error) {
	s := st.s
	for {
		s.mu.Lock()
		if !st.hasRecv {
			s.mu.Unlock()
			return 0, errors.New("wsconn: read on a send-only stream")
		}
		if s.closeErr != nil {
			s.mu.Unlock()
			return 0, s.err()
		}
		if st.rerr != nil {
			err := st.rerr
			s.mu.Unlock()
			return 0, err
		}
		if st.rqLen > 0 {
			if len(p) == 0 {
				s.mu.Unlock()
				return 0, nil
			}
			n := 0
			for n < len(p) && len(st.rq) > 0 {
				c := copy(p[n:], st.rq[0])
				n += c
				if c == len(st.rq[0]) {
					st.rq[0] = nil
					st.rq = st.rq[1:]
				} else {
					st.rq[0] = st.rq[0][c:]
				}
			}
			st.rqLen -= uint64(n)
			s.buffered -= uint64(n)
			out := s.consumed(st, uint64(n), nil)
			s.mu.Unlock()
			s.queueLocal(out)
			return n, nil
		}
		if st.rfin {
			var out [][]byte
			if !st.rdone {
				st.rdone = true
				out = s.maybeRemove(st, nil)
			}
			s.mu.Unlock()
			s.queueLocal(out)
			return 0, io.EOF
		}
		sig, dl := st.rsig, st.rdl
		s.mu.Unlock()
		if err := s.wait(nil, sig, nil, dl); err != nil {
			return 0, err
		}
	}
}

// Stop asks the peer to stop sending; later reads fail and data still
// arriving is dropped.
func (st *stream) Stop(code uint64) {
	s := st.s
	s.mu.Lock()
	if !st.hasRecv || st.rdone || s.closeErr != nil {
		s.mu.Unlock()
		return
	}
	var out [][]byte
	if !st.rfin {
		out = append(out, appendStopFrame(nil, s.framing, st.id, min(code, maxVarint)))
	}
	st.rerr = errStopped
	out = s.finishRecv(st, out)
	s.mu.Unlock()
	s.queueLocal(out)
}

// SetReadDeadline bounds Read; the zero time removes the bound.
func (st *stream) SetReadDeadline(t time.Time) error {
	st.s.mu.Lock()
	st.rdl = t
	signal(&st.rsig)
	st.s.mu.Unlock()
	return nil
}

// SetWriteDeadline bounds Write and Close.
func (st *stream) SetWriteDeadline(t time.Time) error {
	st.s.mu.Lock()
	st.wdl = t
	signal(&st.ssig)
	st.s.mu.Unlock()
	return nil
}

// Write sends p in frames of at most MaxFramePayload bytes, under qmux-00
// as the peer's stream and connection credit allow.
func (st *stream) Write(p []byte) (int, error) {
	if !st.hasSend {
		return 0, errors.New("wsconn: write on a receive-only stream")
	}
	st.wmu.Lock()
	defer st.wmu.Unlock()
	s := st.s
	written := 0
	for len(p) > 0 {
		n, dl, err := st.claim(min(len(p), MaxFramePayload))
		if err != nil {
			return written, err
		}
		msg := appendStreamFrame(make([]byte, 0, n+20), s.framing, st.id, p[:n], false)
		if err := s.writeMsg(st, msg, dl); err != nil {
			st.unclaim(n)
			if err == errAbortWait {
				s.mu.Lock()
				err = st.serr
				s.mu.Unlock()
			}
			return written, err
		}
		p = p[n:]
		written += n
	}
	return written, nil
}

// claim takes up to want bytes of send credit, waiting for at least one.
func (st *stream) claim(want int) (int, time.Time, error) {
	s := st.s
	for {
		s.mu.Lock()
		if s.closeErr != nil {
			s.mu.Unlock()
			return 0, time.Time{}, s.err()
		}
		if st.serr != nil {
			err := st.serr
			s.mu.Unlock()
			return 0, time.Time{}, err
		}
		n := uint64(want)
		if s.framing == FramingQMux {
			n = min(n, st.sendMax-st.sendOff, s.sendMax-s.sendUsed)
		}
		dl := st.wdl
		if n > 0 {
			st.sendOff += n
			s.sendUsed += n
			s.mu.Unlock()
			return int(n), dl, nil
		}
		sig, csig := st.ssig, s.creditSig
		s.mu.Unlock()
		if err := s.wait(nil, sig, csig, dl); err != nil {
			return 0, dl, err
		}
	}
}

func (st *stream) unclaim(n int) {
	st.s.mu.Lock()
	st.sendOff -= uint64(n)
	st.s.sendUsed -= uint64(n)
	st.s.mu.Unlock()
}

// Close ends the send side with a FIN after the bytes written.
func (st *stream) Close() error {
	if !st.hasSend {
		return nil
	}
	st.wmu.Lock()
	defer st.wmu.Unlock()
	s := st.s
	s.mu.Lock()
	if s.closeErr != nil {
		s.mu.Unlock()
		return s.err()
	}
	if st.sdone {
		err := st.serr
		s.mu.Unlock()
		if err == errClosed {
			return nil
		}
		return err
	}
	dl := st.wdl
	s.mu.Unlock()
	if err := s.writeMsg(st, appendStreamFrame(nil, s.framing, st.id, nil, true), dl); err != nil {
		if err == errAbortWait {
			s.mu.Lock()
			err = st.serr
			s.mu.Unlock()
		}
		return err
	}
	s.mu.Lock()
	var out [][]byte
	if !st.sdone {
		st.sdone, st.serr = true, errClosed
		out = s.maybeRemove(st, nil)
	}
	s.mu.Unlock()
	s.queueLocal(out)
	return nil
}

// Reset abandons the send side; the peer's reads fail with code.
func (st *stream) Reset(code uint64) {
	s := st.s
	s.mu.Lock()
	if !st.hasSend || st.sdone || s.closeErr != nil {
		s.mu.Unlock()
		return
	}
	st.sdone, st.serr, st.aborted = true, errReset, true
	close(st.abort)
	signal(&st.ssig)
	out := [][]byte{appendResetFrame(nil, s.framing, st.id, min(code, maxVarint), st.sendOff)}
	out = s.maybeRemove(st, out)
	s.mu.Unlock()
	s.queueLocal(out)
}
