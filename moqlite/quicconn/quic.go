package quicconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/quic-go/quic-go"

	"github.com/moqstats/moqstats/moqlite/transport"
)

// Session is a transport.Session over one native QUIC connection.
type Session struct {
	conn *quic.Conn
}

var _ transport.Session = (*Session)(nil)

// NewSession wraps an established connection, client or server side.
func NewSession(conn *quic.Conn) *Session { return &Session{conn: conn} }

// Conn is the underlying connection, for its addresses and TLS state.
func (s *Session) Conn() *quic.Conn { return s.conn }

// Protocol is the negotiated ALPN.
func (s *Session) Protocol() string { return s.conn.ConnectionState().TLS.NegotiatedProtocol }

// Context is done when the connection has ended.
func (s *Session) Context() context.Context { return s.conn.Context() }

// CloseWithError closes the connection with an application error.
func (s *Session) CloseWithError(code uint64, reason string) error {
	return s.conn.CloseWithError(quic.ApplicationErrorCode(code), reason)
}

// OpenBidi opens a bidirectional stream, waiting for the peer's credit.
func (s *Session) OpenBidi(ctx context.Context) (transport.BidiStream, error) {
	st, err := s.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return bidiStream{st}, nil
}

// OpenUni opens a unidirectional stream, waiting for the peer's credit.
func (s *Session) OpenUni(ctx context.Context) (transport.SendStream, error) {
	st, err := s.conn.OpenUniStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return sendStream{st}, nil
}

// AcceptBidi waits for the peer's next bidirectional stream.
func (s *Session) AcceptBidi(ctx context.Context) (transport.BidiStream, error) {
	st, err := s.conn.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return bidiStream{st}, nil
}

// AcceptUni waits for the peer's next unidirectional stream.
func (s *Session) AcceptUni(ctx context.Context) (transport.ReceiveStream, error) {
	st, err := s.conn.AcceptUniStream(ctx)
	if err != nil {
		return nil, err
	}
	return recvStream{st}, nil
}

type bidiStream struct{ *quic.Stream }

func (b bidiStream) Reset(code uint64) { b.CancelWrite(quic.StreamErrorCode(code)) }
func (b bidiStream) Stop(code uint64)  { b.CancelRead(quic.StreamErrorCode(code)) }

type sendStream struct{ *quic.SendStream }

func (s sendStream) Reset(code uint64) { s.CancelWrite(quic.StreamErrorCode(code)) }

type recvStream struct{ *quic.ReceiveStream }

func (r recvStream) Stop(code uint64) { r.CancelRead(quic.StreamErrorCode(code)) }

// Listen listens for native QUIC on addr (or on pc, when not nil), offering
// cfg.Protocols as ALPN. tlsConf must hold a certificate; it is cloned.
func Listen(addr string, pc net.PacketConn, tlsConf *tls.Config, cfg Config) (*quic.Listener, error) {
	if len(cfg.Protocols) == 0 {
		return nil, errors.New("quicconn: Listen needs at least one ALPN protocol")
	}
	tc := tlsConf.Clone()
	tc.NextProtos = slices.Clone(cfg.Protocols)
	if pc != nil {
		return quic.Listen(pc, tc, cfg.quicConfig(false))
	}
	return quic.ListenAddr(addr, tc, cfg.quicConfig(false))
}

// Dial connects to addr over native QUIC offering cfg.Protocols as ALPN.
func Dial(ctx context.Context, addr string, tlsConf *tls.Config, cfg Config) (*Session, error) {
	if len(cfg.Protocols) == 0 {
		return nil, errors.New("quicconn: Dial needs at least one ALPN protocol")
	}
	tc := tlsConf.Clone()
	tc.NextProtos = slices.Clone(cfg.Protocols)
	if cfg.KeepAlive == 0 && cfg.IdleTimeout >= 0 {
		cfg.KeepAlive = max(cfg.IdleTimeout, 30e9) / 3
	}
	conn, err := quic.DialAddr(ctx, addr, tc, cfg.quicConfig(false))
	if err != nil {
		return nil, fmt.Errorf("quicconn: dial %s: %w", addr, err)
	}
	return NewSession(conn), nil
}
