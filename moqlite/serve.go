package moqlite

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"

	"github.com/quic-go/quic-go"

	"github.com/moqstats/moqstats/moqlite/quicconn"
	"github.com/moqstats/moqstats/moqlite/wsconn"
)

// WebSocketHandler serves moq-lite over WebSocket, in both framings
// @moq/lite uses (qmux-00 and webtransport, picked by subprotocol), so it
// mounts on any HTTP server beside other handlers. Each session runs in
// its request's goroutine until it ends.
func (s *Server) WebSocketHandler() http.Handler {
	return s.WebSocketHandlerWith(wsconn.Config{})
}

// WebSocketHandlerWith is WebSocketHandler with the transport's bounds
// (windows, stream caps, timeouts, allowed origins). Protocols defaults to
// Protocols.
func (s *Server) WebSocketHandlerWith(cfg wsconn.Config) http.Handler {
	if cfg.Protocols == nil {
		cfg.Protocols = Protocols
	}
	return wsconn.Handler(cfg, func(sess *wsconn.Session, r *http.Request) {
		name := "websocket"
		if sess.Framing() == wsconn.FramingQMux {
			name = "qmux"
		}
		_ = s.ServeSession(r.Context(), sess, ConnInfo{
			Transport:  name,
			Request:    r,
			TLS:        r.TLS,
			RemoteAddr: parseAddr(r.RemoteAddr),
		})
	})
}

// ServeQUIC serves native QUIC connections from ln, which should offer
// Protocols as ALPN (quicconn.Listen does), until ln is closed; it then
// returns the listener's error.
func (s *Server) ServeQUIC(ln *quic.Listener) error {
	for {
		conn, err := ln.Accept(context.Background())
		if err != nil {
			if errors.Is(err, quic.ErrServerClosed) {
				return nil
			}
			return err
		}
		go func() {
			cs := conn.ConnectionState().TLS
			_ = s.ServeSession(context.Background(), quicconn.NewSession(conn), ConnInfo{
				Transport:  "quic",
				TLS:        &cs,
				RemoteAddr: conn.RemoteAddr(),
			})
		}()
	}
}

// WebTransportServer returns an HTTP/3 server that serves moq-lite over
// WebTransport, negotiating cfg.Protocols (default Protocols) through
// WT-Available-Protocols; run it with Serve and stop it with Close.
func (s *Server) WebTransportServer(cfg quicconn.WebTransportConfig) *quicconn.WebTransportServer {
	if cfg.Protocols == nil {
		cfg.Protocols = Protocols
	}
	return quicconn.NewWebTransportServer(cfg, func(sess *quicconn.WTSession, r *http.Request) {
		cs := sess.Session().SessionState().ConnectionState.TLS
		_ = s.ServeSession(r.Context(), sess, ConnInfo{
			Transport:  "webtransport",
			Request:    r,
			TLS:        &cs,
			RemoteAddr: parseAddr(r.RemoteAddr),
		})
	})
}

// ServeWebTransport serves WebTransport on pc until pc is closed; it is
// WebTransportServer(cfg).Serve(pc), for callers that need no Close.
func (s *Server) ServeWebTransport(pc net.PacketConn, cfg quicconn.WebTransportConfig) error {
	return s.WebTransportServer(cfg).Serve(pc)
}

func parseAddr(a string) net.Addr {
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}
