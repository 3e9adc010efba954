package moqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"time"

	"github.com/moqstats/moqstats/internal/moqpath"
	"github.com/moqstats/moqstats/moqlite/internal/wire"
	"github.com/moqstats/moqstats/moqlite/transport"
)

// ClientConfig configures a Client. Zero values mean the defaults.
type ClientConfig struct {
	// HandshakeTimeout bounds SETUP and each request's first response;
	// 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxFrame caps a frame's size; 0 means 16 MiB. A larger one closes
	// the session as a protocol error.
	MaxFrame int
	// MaxBufferedGroups caps the groups of one subscription received and
	// not yet taken by NextGroup; past it the oldest is dropped (its
	// stream stopped), as a subscriber that falls behind skips to newer
	// groups. 0 means 64.
	MaxBufferedGroups int
	// MaxGroupBytes caps what one group holds of frames received and not
	// yet read: past it the client stops reading the group's stream until
	// ReadFrame takes a frame, so a server cannot grow a group without
	// bound in a client that reads slowly or not at all (its transport's
	// flow control then holds the server back). 0 means 1 MiB; one frame
	// up to MaxFrame is always taken.
	MaxGroupBytes int
	// EndLinger is how long after the server ends a subscription the
	// client still takes group streams that were sent before the end but
	// arrive after it (streams are independent); 0 means 250ms.
	EndLinger time.Duration
	// Publish, when set, offers the broadcasts published on this Server
	// to the peer over the same session: it may ask for their announces
	// and subscribe to them, as if it had dialed us. It is how a node
	// pushes its stats into a server that subscribes to what its clients
	// announce (ServerConfig.Ingest); Uplink does it for a moqstats.Origin.
	// Publish's caps and Authorize apply, with ConnInfo.Transport
	// "dialed".
	Publish *Server
}

func (cfg ClientConfig) withDefaults() ClientConfig {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = wire.MaxFrame
	}
	if cfg.MaxBufferedGroups <= 0 {
		cfg.MaxBufferedGroups = 64
	}
	if cfg.EndLinger <= 0 {
		cfg.EndLinger = 250 * time.Millisecond
	}
	if cfg.MaxGroupBytes <= 0 {
		cfg.MaxGroupBytes = 1 << 20
	}
	return cfg
}

// Client is the subscriber side of a moq-lite session.
type Client struct {
	sess transport.Session
	f    wire.Features
	cfg  ClientConfig
	ctx  context.Context

	mu     sync.Mutex
	subs   map[uint64]*Subscription
	nextID uint64
	err    error
}

// NewClient runs the handshake on sess: the version is chosen by the
// application protocol, or (for "moql" and "") by SETUP, offering lite-02.
func NewClient(ctx context.Context, sess transport.Session, cfg ClientConfig) (*Client, error) {
	cfg = cfg.withDefaults()
	c := &Client{sess: sess, cfg: cfg, ctx: sess.Context(), subs: map[uint64]*Subscription{}}
	f, ok, setup := wire.ByProtocol(sess.Protocol())
	switch {
	case ok:
		c.f = f
	case setup:
		var err error
		if c.f, err = c.setup(ctx); err != nil {
			sess.CloseWithError(CodeProtocol, "setup failed")
			return nil, err
		}
	default:
		sess.CloseWithError(CodeProtocol, "unsupported protocol")
		return nil, fmt.Errorf("moqlite: unsupported application protocol %q", sess.Protocol())
	}
	go c.acceptUni()
	if cfg.Publish != nil {
		// Our server's half of the session takes the peer's bidi
		// streams: its announce interests and subscriptions.
		ss := cfg.Publish.newSession(context.Background(), sess, ConnInfo{Transport: "dialed"})
		ss.f = c.f
		if err := cfg.Publish.register(ss); err != nil {
			ss.cancel()
			return nil, err
		}
		go ss.acceptBidi()
		return c, nil
	}
	go func() {
		// Nothing is published to the peer; refuse what it asks for.
		for {
			st, err := sess.AcceptBidi(c.ctx)
			if err != nil {
				return
			}
			refuse(st, CodeUnsupported)
		}
	}()
	return c, nil
}

// newClient is the subscriber half of a session whose version is known:
// a server's, subscribing to what its peer announces. It takes the peer's
// uni streams; the caller takes its bidi streams.
func newClient(sess transport.Session, f wire.Features, cfg ClientConfig) *Client {
	c := &Client{sess: sess, f: f, cfg: cfg.withDefaults(), ctx: sess.Context(), subs: map[uint64]*Subscription{}}
	go c.acceptUni()
	return c
}

// Version is the moq-lite version spoken, "moq-lite-04" for example.
func (c *Client) Version() string { return c.f.Name }

func (c *Client) setup(ctx context.Context) (wire.Features, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	st, err := c.sess.OpenBidi(ctx)
	if err != nil {
		return wire.Features{}, err
	}
	dl := time.Now().Add(c.cfg.HandshakeTimeout)
	st.SetWriteDeadline(dl)
	st.SetReadDeadline(dl)
	var offered []wire.Version
	for _, v := range wire.Versions {
		if !v.ByALPN {
			offered = append(offered, v.Version)
		}
	}
	out := wire.AppendVarint(nil, uint64(wire.StreamClientSetup))
	out = wire.AppendSetupMessage(out, wire.AppendClientSetup(nil, wire.ClientSetup{
		Versions: offered,
		Params:   []wire.Param{{ID: 7, Bytes: []byte("moqstats-moqlite")}},
	}))
	if _, err := st.Write(out); err != nil {
		return wire.Features{}, err
	}
	br := bufio.NewReaderSize(st, 256)
	typ, err := wire.ReadVarint(br)
	if err != nil {
		return wire.Features{}, fmt.Errorf("moqlite: reading SERVER_SETUP: %w", err)
	}
	if wire.StreamType(typ) != wire.StreamServerSetup {
		return wire.Features{}, fmt.Errorf("%w: SETUP answered with type %#x", wire.ErrProtocol, typ)
	}
	body, err := wire.ReadSetupMessage(br)
	if err != nil {
		return wire.Features{}, err
	}
	ss, err := wire.ParseServerSetup(body)
	if err != nil {
		return wire.Features{}, err
	}
	f, ok := wire.Lookup(ss.Version)
	if !ok || f.ByALPN {
		return wire.Features{}, fmt.Errorf("%w: server chose %v, which SETUP cannot", wire.ErrProtocol, ss.Version)
	}
	st.SetWriteDeadline(time.Time{})
	st.SetReadDeadline(time.Time{})
	go func() {
		// SESSION_INFO until the stream ends; nothing in it is needed.
		for {
			if _, err := wire.ReadMessage(br, wire.MaxMessage); err != nil {
				return
			}
		}
	}()
	return f, nil
}

// Close ends the session.
func (c *Client) Close() error { return c.sess.CloseWithError(CodeNone, "") }

func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.sess.CloseWithError(CodeProtocol, err.Error())
}

// Subscribe subscribes to track of broadcast and waits for SUBSCRIBE_OK. A
// refusal (unknown broadcast or track, a cap, auth) is an error wrapping
// ErrRefused or ErrNotFound.
func (c *Client) Subscribe(broadcast, track string) (*Subscription, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	st, err := c.sess.OpenBidi(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	id := c.nextID
	c.nextID++
	sub := &Subscription{c: c, id: id, stream: st, notify: make(chan struct{}, 1)}
	c.subs[id] = sub
	c.mu.Unlock()
	drop := func(err error) (*Subscription, error) {
		c.mu.Lock()
		delete(c.subs, id)
		c.mu.Unlock()
		st.Reset(CodeCancel)
		return nil, err
	}
	out := wire.AppendVarint(nil, uint64(wire.StreamSubscribe))
	out = wire.AppendMessage(out, wire.AppendSubscribe(nil, wire.Subscribe{ID: id, Broadcast: moqpath.Normalize(broadcast), Track: track}, c.f))
	dl := time.Now().Add(c.cfg.HandshakeTimeout)
	st.SetWriteDeadline(dl)
	if _, err := st.Write(out); err != nil {
		return drop(err)
	}
	st.SetReadDeadline(dl)
	br := bufio.NewReaderSize(st, 256)
	if c.f.TypedSubscribeResponse {
		typ, err := wire.ReadVarint(br)
		if err != nil {
			return drop(responseErr(err))
		}
		if typ == wire.ResponseDrop {
			body, err := wire.ReadMessage(br, wire.MaxMessage)
			if err != nil {
				return drop(err)
			}
			d, err := wire.ParseSubscribeDrop(body)
			if err != nil {
				return drop(err)
			}
			return drop(fmt.Errorf("%w: SUBSCRIBE_DROP with error %d", ErrRefused, d.Error))
		}
		if typ != wire.ResponseOk {
			return drop(fmt.Errorf("%w: subscribe response type %#x", wire.ErrProtocol, typ))
		}
	}
	body, err := wire.ReadMessage(br, wire.MaxMessage)
	if err != nil {
		return drop(responseErr(err))
	}
	if _, err := wire.ParseSubscribeOk(body, c.f); err != nil {
		return drop(err)
	}
	st.SetWriteDeadline(time.Time{})
	st.SetReadDeadline(time.Time{})
	go func() {
		// The server ends the subscription by ending its half; ours
		// follows, which tells it we saw the end.
		var b [1]byte
		_, err := br.Read(b[:])
		if err == nil {
			err = fmt.Errorf("%w: data after SUBSCRIBE_OK", wire.ErrProtocol)
			c.fail(err)
		}
		if err == io.EOF {
			st.Close()
			// Group streams travel apart from this one, and the last
			// ones may still be on their way: the end is reported once
			// none has arrived for EndLinger.
			sub.lingerEnd(c.cfg.EndLinger)
			return
		}
		sub.finish(err)
	}()
	return sub, nil
}

// responseErr maps a reset subscribe stream to the refusal its code says.
func responseErr(err error) error {
	if c, ok := streamCode(err); ok {
		return codeErr(c)
	}
	return err
}

func codeErr(code uint64) error {
	switch code {
	case CodeNotFound:
		return fmt.Errorf("%w (stream reset with code %d)", ErrNotFound, code)
	case CodeRefused:
		return fmt.Errorf("%w (stream reset with code %d)", ErrRefused, code)
	}
	return fmt.Errorf("moqlite: subscribe stream reset with code %d", code)
}

// streamCode finds an application error code on a stream error: any error
// in the chain with an exported uint64 field or method named Code or
// ErrorCode, which is how the transports report one.
func streamCode(err error) (uint64, bool) {
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch v := e.(type) {
		case interface{ ErrorCode() uint64 }:
			return v.ErrorCode(), true
		case interface{ Code() uint64 }:
			return v.Code(), true
		}
		if c, ok := fieldCode(e); ok {
			return c, true
		}
	}
	return 0, false
}

func (c *Client) acceptUni() {
	for {
		st, err := c.sess.AcceptUni(c.ctx)
		if err != nil {
			c.mu.Lock()
			subs := make([]*Subscription, 0, len(c.subs))
			for _, s := range c.subs {
				subs = append(subs, s)
			}
			c.mu.Unlock()
			for _, s := range subs {
				s.finish(err)
			}
			return
		}
		// The header is read here, in accept order, so groups reach their
		// subscription in the order the server opened them.
		c.readHeader(st)
	}
}

func (c *Client) readHeader(st transport.ReceiveStream) {
	st.SetReadDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	br := bufio.NewReaderSize(st, 4096)
	typ, err := br.ReadByte()
	if err != nil {
		st.Stop(CodeCancel)
		return
	}
	if typ != wire.UniGroup {
		c.fail(fmt.Errorf("%w: unknown uni stream type %#x", wire.ErrProtocol, typ))
		return
	}
	body, err := wire.ReadMessage(br, wire.MaxMessage)
	var h wire.Group
	if err == nil {
		h, err = wire.ParseGroup(body)
	}
	if err != nil {
		if errors.Is(err, wire.ErrProtocol) {
			c.fail(err)
		}
		st.Stop(CodeCancel)
		return
	}
	st.SetReadDeadline(time.Time{})
	c.mu.Lock()
	sub := c.subs[h.Subscribe]
	c.mu.Unlock()
	if sub == nil {
		st.Stop(CodeCancel)
		return
	}
	g := &Group{Sequence: h.Sequence, stream: st, notify: make(chan struct{}, 1), room: make(chan struct{}, 1)}
	if !sub.push(g) {
		st.Stop(CodeCancel)
		return
	}
	go c.readFrames(g, br)
}

func (c *Client) readFrames(g *Group, br *bufio.Reader) {
	for {
		n, err := wire.ReadVarint(br)
		if err == io.EOF {
			g.end(io.EOF)
			return
		}
		if err == nil && n > uint64(c.cfg.MaxFrame) {
			err = fmt.Errorf("%w: frame of %d bytes, cap %d", wire.ErrProtocol, n, c.cfg.MaxFrame)
			c.fail(err)
		}
		var frame []byte
		if err == nil {
			frame = make([]byte, n)
			_, err = io.ReadFull(br, frame)
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			g.end(fmt.Errorf("moqlite: group %d ended early: %w", g.Sequence, err))
			g.stream.Stop(CodeCancel)
			return
		}
		if !g.add(frame, c.cfg.MaxGroupBytes, c.ctx) {
			return
		}
	}
}

// Subscription is a subscription to one track. Groups arrive in the order
// the server opened their streams, which is the order it wrote them.
type Subscription struct {
	c      *Client
	id     uint64
	stream transport.BidiStream

	mu       sync.Mutex
	groups   []*Group
	lastPush time.Time
	endSeen  bool // the server ended it cleanly; a later error is no error
	ended    bool
	err      error
	notify   chan struct{}
}

func (s *Subscription) push(g *Group) bool {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return false
	}
	var dropped *Group
	if len(s.groups) >= s.c.cfg.MaxBufferedGroups {
		// The reader is behind: drop the oldest untaken group, as the
		// server would skip it.
		dropped = s.groups[0]
		s.groups = s.groups[1:]
	}
	s.groups = append(s.groups, g)
	s.lastPush = time.Now()
	s.mu.Unlock()
	if dropped != nil {
		dropped.stream.Stop(CodeCancel)
		dropped.end(fmt.Errorf("moqlite: group %d dropped: %w", dropped.Sequence, ErrSkipped))
	}
	s.signal()
	return true
}

func (s *Subscription) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// lingerEnd finishes the subscription once no group has arrived for d.
func (s *Subscription) lingerEnd(d time.Duration) {
	s.mu.Lock()
	s.endSeen = true
	s.lastPush = time.Now()
	s.mu.Unlock()
	for {
		s.mu.Lock()
		wait := d - time.Since(s.lastPush)
		s.mu.Unlock()
		if wait <= 0 {
			s.finish(nil)
			return
		}
		select {
		case <-time.After(wait):
		case <-s.c.ctx.Done():
			// The server ended the subscription cleanly before the
			// session: what arrived is all there is.
			s.finish(nil)
			return
		}
	}
}

// finish marks the subscription's end: groups already received stay
// readable.
func (s *Subscription) finish(err error) {
	s.mu.Lock()
	if !s.ended {
		s.ended = true
		if err == io.EOF || s.endSeen {
			err = nil
		}
		s.err = err
	}
	s.mu.Unlock()
	s.signal()
}

// NextGroup returns the next group received. Once the server has ended the
// subscription and every group has been taken, it returns io.EOF (or the
// error that ended it).
func (s *Subscription) NextGroup(ctx context.Context) (*Group, error) {
	for {
		s.mu.Lock()
		if len(s.groups) > 0 {
			g := s.groups[0]
			s.groups[0] = nil // the reader holds it now, not the queue
			s.groups = s.groups[1:]
			s.mu.Unlock()
			return g, nil
		}
		if s.ended {
			err := s.err
			s.mu.Unlock()
			if err == nil {
				err = io.EOF
			}
			return nil, err
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close ends the subscription.
func (s *Subscription) Close() error {
	s.c.mu.Lock()
	delete(s.c.subs, s.id)
	s.c.mu.Unlock()
	s.finish(ErrClosed)
	return s.stream.Close()
}

// Group is one group: its frames, in order.
type Group struct {
	Sequence uint64
	stream   transport.ReceiveStream

	mu       sync.Mutex
	frames   [][]byte
	buffered int // bytes in frames
	done     bool
	err      error
	notify   chan struct{}
	room     chan struct{} // ReadFrame took a frame, or Stop
}

// add queues frame, then waits while the group holds more than limit
// bytes; false once the group was stopped or ctx is done.
func (g *Group) add(frame []byte, limit int, ctx context.Context) bool {
	g.mu.Lock()
	g.frames = append(g.frames, frame)
	g.buffered += len(frame)
	g.mu.Unlock()
	g.signal()
	for {
		g.mu.Lock()
		full, done := g.buffered > limit, g.done
		g.mu.Unlock()
		if done {
			return false
		}
		if !full {
			return true
		}
		select {
		case <-g.room:
		case <-ctx.Done():
			return false
		}
	}
}

// Stop ends the group for its reader, who wants no more of it (a newer
// group made it stale): the server is told to stop sending it, and
// ReadFrame returns ErrClosed.
func (g *Group) Stop() {
	g.stream.Stop(CodeCancel)
	g.mu.Lock()
	g.frames, g.buffered = nil, 0
	g.mu.Unlock()
	g.end(ErrClosed)
}

// end records the group's end, unless Stop came first; a frame queued
// waits no more.
func (g *Group) end(err error) {
	g.mu.Lock()
	if !g.done {
		g.done, g.err = true, err
	}
	g.mu.Unlock()
	g.signal()
	select {
	case g.room <- struct{}{}:
	default:
	}
}

func (g *Group) signal() {
	select {
	case g.notify <- struct{}{}:
	default:
	}
}

// ReadFrame returns the group's next frame; io.EOF after the last one of a
// complete group, another error if the stream was cut short (the server
// skipped to a newer group, or the session ended).
func (g *Group) ReadFrame(ctx context.Context) ([]byte, error) {
	for {
		g.mu.Lock()
		if len(g.frames) > 0 {
			f := g.frames[0]
			g.frames[0] = nil
			g.frames = g.frames[1:]
			g.buffered -= len(f)
			g.mu.Unlock()
			select {
			case g.room <- struct{}{}:
			default:
			}
			return f, nil
		}
		if g.done {
			err := g.err
			g.mu.Unlock()
			return nil, err
		}
		g.mu.Unlock()
		select {
		case <-g.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Announcement is a broadcast becoming active or ending.
type Announcement struct {
	Path   string // the full path: the prefix joined with the suffix sent
	Active bool
}

// Announced is an announce interest.
type Announced struct {
	c      *Client
	prefix string
	stream transport.BidiStream
	br     *bufio.Reader
	queue  []Announcement
	inited bool
}

// Announced asks for the broadcasts under prefix: every one active now, then
// each change.
func (c *Client) Announced(prefix string) (*Announced, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	st, err := c.sess.OpenBidi(ctx)
	if err != nil {
		return nil, err
	}
	prefix = moqpath.Normalize(prefix)
	out := wire.AppendVarint(nil, uint64(wire.StreamAnnounce))
	out = wire.AppendMessage(out, wire.AppendAnnounceInterest(nil, wire.AnnounceInterest{Prefix: prefix}, c.f))
	st.SetWriteDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	if _, err := st.Write(out); err != nil {
		st.Reset(CodeCancel)
		return nil, err
	}
	st.SetWriteDeadline(time.Time{})
	return &Announced{c: c, prefix: prefix, stream: st, br: bufio.NewReaderSize(st, 1024)}, nil
}

// Next returns the next announcement. It is not safe for concurrent use.
func (a *Announced) Next(ctx context.Context) (Announcement, error) {
	if len(a.queue) > 0 {
		n := a.queue[0]
		a.queue = a.queue[1:]
		return n, nil
	}
	type result struct {
		body []byte
		err  error
	}
	ch := make(chan result, 1)
	limit := wire.MaxMessage
	if a.c.f.AnnounceInit && !a.inited {
		limit = 1 << 20
	}
	go func() {
		b, err := wire.ReadMessage(a.br, limit)
		ch <- result{b, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		// The read continues; cut it off so the reader goroutine ends.
		a.stream.SetReadDeadline(time.Now())
		<-ch
		return Announcement{}, ctx.Err()
	}
	if r.err != nil {
		return Announcement{}, r.err
	}
	if a.c.f.AnnounceInit && !a.inited {
		a.inited = true
		init, err := wire.ParseAnnounceInit(r.body)
		if err != nil {
			return Announcement{}, err
		}
		for _, s := range init.Suffixes {
			a.queue = append(a.queue, Announcement{Path: moqpath.Join(a.prefix, s), Active: true})
		}
		return a.Next(ctx)
	}
	m, err := wire.ParseAnnounce(r.body, a.c.f)
	if err != nil {
		return Announcement{}, err
	}
	return Announcement{Path: moqpath.Join(a.prefix, m.Suffix), Active: m.Active}, nil
}

// Close ends the interest.
func (a *Announced) Close() error { return a.stream.Close() }

// fieldCode reads an unsigned field named ErrorCode or Code from a (pointer
// to a) struct error, as quic-go, webtransport-go and memconn report
// stream error codes.
func fieldCode(e error) (uint64, bool) {
	v := reflect.ValueOf(e)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return 0, false
	}
	for _, name := range []string{"ErrorCode", "Code"} {
		f := v.FieldByName(name)
		if f.IsValid() && f.CanUint() {
			return f.Uint(), true
		}
	}
	return 0, false
}
