package quicconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/moqstats/moqstats/moqlite/transport"
)

// WTSession is a transport.Session over one WebTransport session.
type WTSession struct {
	sess *webtransport.Session
}

var _ transport.Session = (*WTSession)(nil)

// NewWTSession wraps an established WebTransport session.
func NewWTSession(s *webtransport.Session) *WTSession { return &WTSession{sess: s} }

// Session is the underlying WebTransport session.
func (s *WTSession) Session() *webtransport.Session { return s.sess }

// Protocol is the protocol the server chose from WT-Available-Protocols.
func (s *WTSession) Protocol() string { return s.sess.SessionState().ApplicationProtocol }

// Context is done when the session has ended.
func (s *WTSession) Context() context.Context { return s.sess.Context() }

func code32(c uint64) uint32 { return uint32(min(c, math.MaxUint32)) }

// CloseWithError closes the session; the code is cut to 32 bits.
func (s *WTSession) CloseWithError(code uint64, reason string) error {
	return s.sess.CloseWithError(webtransport.SessionErrorCode(code32(code)), reason)
}

// OpenBidi opens a bidirectional stream.
func (s *WTSession) OpenBidi(ctx context.Context) (transport.BidiStream, error) {
	st, err := s.sess.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return wtBidi{st}, nil
}

// OpenUni opens a unidirectional stream.
func (s *WTSession) OpenUni(ctx context.Context) (transport.SendStream, error) {
	st, err := s.sess.OpenUniStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return wtSend{st}, nil
}

// AcceptBidi waits for the peer's next bidirectional stream.
func (s *WTSession) AcceptBidi(ctx context.Context) (transport.BidiStream, error) {
	st, err := s.sess.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return wtBidi{st}, nil
}

// AcceptUni waits for the peer's next unidirectional stream.
func (s *WTSession) AcceptUni(ctx context.Context) (transport.ReceiveStream, error) {
	st, err := s.sess.AcceptUniStream(ctx)
	if err != nil {
		return nil, err
	}
	return wtRecv{st}, nil
}

type wtBidi struct{ *webtransport.Stream }

func (b wtBidi) Reset(code uint64) { b.CancelWrite(webtransport.StreamErrorCode(code32(code))) }
func (b wtBidi) Stop(code uint64)  { b.CancelRead(webtransport.StreamErrorCode(code32(code))) }

type wtSend struct{ *webtransport.SendStream }

func (s wtSend) Reset(code uint64) { s.CancelWrite(webtransport.StreamErrorCode(code32(code))) }

type wtRecv struct{ *webtransport.ReceiveStream }

func (r wtRecv) Stop(code uint64) { r.CancelRead(webtransport.StreamErrorCode(code32(code))) }

// WebTransportServer serves WebTransport over HTTP/3 and hands every
// session to a callback, in the CONNECT request's goroutine.
type WebTransportServer struct {
	wt *webtransport.Server
}

// WebTransportConfig configures a WebTransportServer.
type WebTransportConfig struct {
	Config
	// TLSConfig holds the certificate; it is cloned and given h3's ALPN.
	TLSConfig *tls.Config
	// Path is where sessions are accepted; other paths go to Fallback.
	// Default "/".
	Path string
	// Fallback serves every other HTTP/3 request (nil: 404).
	Fallback http.Handler
	// CheckOrigin may refuse a browser's Origin; nil accepts same-origin
	// requests and requests without one.
	CheckOrigin func(*http.Request) bool
}

// NewWebTransportServer makes a server calling serve for each session;
// the session is closed when serve returns. A request whose upgrade fails
// (no common protocol is not a failure: the session then has none) gets
// an HTTP error.
func NewWebTransportServer(cfg WebTransportConfig, serve func(*WTSession, *http.Request)) *WebTransportServer {
	path := cfg.Path
	if path == "" {
		path = "/"
	}
	tc := http3.ConfigureTLSConfig(cfg.TLSConfig.Clone())
	h3 := &http3.Server{
		TLSConfig:  tc,
		QUICConfig: cfg.quicConfig(true),
	}
	s := &WebTransportServer{wt: &webtransport.Server{
		H3:                   h3,
		ApplicationProtocols: slices.Clone(cfg.Protocols),
		CheckOrigin:          cfg.CheckOrigin,
	}}
	fallback := cfg.Fallback
	if fallback == nil {
		fallback = http.NotFoundHandler()
	}
	h3.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.URL.Path != path {
			fallback.ServeHTTP(w, r)
			return
		}
		sess, err := s.wt.Upgrade(w, r)
		if err != nil {
			http.Error(w, "quicconn: webtransport upgrade: "+err.Error(), http.StatusBadRequest)
			return
		}
		ws := NewWTSession(sess)
		defer ws.CloseWithError(0, "")
		serve(ws, r)
	})
	return s
}

// Serve serves on pc until Close.
func (s *WebTransportServer) Serve(pc net.PacketConn) error { return s.wt.Serve(pc) }

// Close stops the server and its sessions.
func (s *WebTransportServer) Close() error { return s.wt.Close() }

// DialWebTransport opens a WebTransport session to url (https://),
// offering cfg.Protocols in WT-Available-Protocols.
func DialWebTransport(ctx context.Context, url string, tlsConf *tls.Config, cfg Config) (*WTSession, error) {
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = max(cfg.IdleTimeout, 30*time.Second) / 3
	}
	d := &webtransport.Transport{
		TLSClientConfig:      tlsConf.Clone(),
		QUICConfig:           cfg.quicConfig(true),
		ApplicationProtocols: slices.Clone(cfg.Protocols),
	}
	rsp, sess, err := d.Dial(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("quicconn: webtransport dial %s: %w", url, err)
	}
	if rsp.StatusCode < 200 || rsp.StatusCode > 299 {
		sess.CloseWithError(0, "")
		return nil, fmt.Errorf("quicconn: webtransport dial %s: HTTP %d", url, rsp.StatusCode)
	}
	ws := NewWTSession(sess)
	// The transport owns the QUIC connection; close it with the session.
	context.AfterFunc(sess.Context(), func() { _ = d.Close() })
	return ws, nil
}
