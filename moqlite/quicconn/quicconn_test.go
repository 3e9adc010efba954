package quicconn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite/quicconn"
	"github.com/moqstats/moqstats/moqlite/transport"
	"github.com/moqstats/moqstats/moqlite/transport/transporttest"
)

var protocols = []string{"moq-lite-04", "moq-lite-03", "moql"}

func cert(t *testing.T) (*tls.Config, [32]byte) {
	t.Helper()
	c, h, err := quicconn.SelfSignedCert([]string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{c}}, h
}

func udp(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

func quicPair(t *testing.T, cfg quicconn.Config, offer []string) (*quicconn.Session, *quicconn.Session) {
	tc, h := cert(t)
	ln, err := quicconn.Listen("", udp(t), tc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := make(chan *quicconn.Session, 1)
	go func() {
		conn, err := ln.Accept(ctx)
		if err != nil {
			close(ch)
			return
		}
		ch <- quicconn.NewSession(conn)
	}()
	c, err := quicconn.Dial(ctx, ln.Addr().String(), quicconn.PinnedClientTLS(h), quicconn.Config{Protocols: offer})
	if err != nil {
		t.Fatal(err)
	}
	s := <-ch
	if s == nil {
		t.Fatal("no server session")
	}
	t.Cleanup(func() { c.CloseWithError(0, ""); s.CloseWithError(0, "") })
	return c, s
}

func TestTransportNativeQUIC(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) (transport.Session, transport.Session) {
		return quicPair(t, quicconn.Config{Protocols: protocols}, protocols)
	})
}

func TestNativeQUICNegotiatesTheServersBestALPN(t *testing.T) {
	c, s := quicPair(t, quicconn.Config{Protocols: protocols}, []string{"moql", "moq-lite-03"})
	if c.Protocol() != "moq-lite-03" || s.Protocol() != "moq-lite-03" {
		t.Fatalf("client %q, server %q; want moq-lite-03, the server's best among the offers", c.Protocol(), s.Protocol())
	}
}

func TestNativeQUICWithoutACommonALPNFailsTheHandshake(t *testing.T) {
	tc, h := cert(t)
	ln, err := quicconn.Listen("", udp(t), tc, quicconn.Config{Protocols: protocols})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := quicconn.Dial(ctx, ln.Addr().String(), quicconn.PinnedClientTLS(h), quicconn.Config{Protocols: []string{"h3"}}); err == nil {
		t.Fatal("dial with no common ALPN succeeded")
	}
}

func TestPinnedClientRefusesAnotherCertificate(t *testing.T) {
	tc, _ := cert(t)
	ln, err := quicconn.Listen("", udp(t), tc, quicconn.Config{Protocols: protocols})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := quicconn.Dial(ctx, ln.Addr().String(), quicconn.PinnedClientTLS([32]byte{1}), quicconn.Config{Protocols: protocols}); err == nil {
		t.Fatal("a client pinned to another hash connected")
	}
}

func TestHandshakeTimeoutEndsADialToASilentPeer(t *testing.T) {
	pc := udp(t) // nobody answers on it
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := quicconn.Dial(ctx, pc.LocalAddr().String(), quicconn.PinnedClientTLS([32]byte{}), quicconn.Config{Protocols: protocols, HandshakeTimeout: 300 * time.Millisecond})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("got %v after %v, want the handshake timeout before the test's 10s", err, time.Since(start))
	}
}

func TestIdleTimeoutEndsAQuietSession(t *testing.T) {
	// The server's 400ms idle timeout is below the client's keep-alive
	// (10s), so a session with no traffic must end on its own.
	c, s := quicPair(t, quicconn.Config{Protocols: protocols, IdleTimeout: 400 * time.Millisecond}, protocols)
	for _, sess := range []*quicconn.Session{c, s} {
		select {
		case <-sess.Context().Done():
		case <-time.After(10 * time.Second):
			t.Fatal("a quiet session outlived the idle timeout")
		}
	}
}

func wtPair(t *testing.T, cfg quicconn.Config, offer []string) (*quicconn.WTSession, *quicconn.WTSession) {
	tc, h := cert(t)
	ch := make(chan *quicconn.WTSession, 1)
	srv := quicconn.NewWebTransportServer(quicconn.WebTransportConfig{Config: cfg, TLSConfig: tc, Path: "/moq"},
		func(s *quicconn.WTSession, _ *http.Request) {
			ch <- s
			<-s.Context().Done()
		})
	pc := udp(t)
	go srv.Serve(pc)
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := quicconn.DialWebTransport(ctx, "https://"+pc.LocalAddr().String()+"/moq", quicconn.PinnedClientTLS(h), quicconn.Config{Protocols: offer})
	if err != nil {
		t.Fatal(err)
	}
	var s *quicconn.WTSession
	select {
	case s = <-ch:
	case <-ctx.Done():
		t.Fatal("no server session")
	}
	t.Cleanup(func() { c.CloseWithError(0, ""); s.CloseWithError(0, "") })
	return c, s
}

func TestTransportWebTransport(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) (transport.Session, transport.Session) {
		return wtPair(t, quicconn.Config{Protocols: protocols}, protocols)
	})
}

func TestWebTransportNegotiatesTheProtocolHeader(t *testing.T) {
	// webtransport-go takes the client's first offer that the server
	// speaks; @moq/lite offers best first (moq-lite-04, moq-lite-03, moql).
	c, s := wtPair(t, quicconn.Config{Protocols: protocols}, []string{"h3-something", "moq-lite-04", "moql"})
	if c.Protocol() != "moq-lite-04" || s.Protocol() != "moq-lite-04" {
		t.Fatalf("client %q, server %q; want moq-lite-04", c.Protocol(), s.Protocol())
	}
	c2, s2 := wtPair(t, quicconn.Config{Protocols: protocols}, []string{"something-else"})
	if c2.Protocol() != "" || s2.Protocol() != "" {
		t.Fatalf("no common protocol: client %q, server %q; want none", c2.Protocol(), s2.Protocol())
	}
}

func TestSelfSignedCertIsP256AndAtMost14Days(t *testing.T) {
	c, h, err := quicconn.SelfSignedCert([]string{"127.0.0.1"}, quicconn.MaxHashCertValidity)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := c.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || k.Curve != elliptic.P256() {
		t.Fatalf("key %T, want ECDSA P-256", c.PrivateKey)
	}
	if d := c.Leaf.NotAfter.Sub(c.Leaf.NotBefore); d > 14*24*time.Hour {
		t.Fatalf("validity %v, want at most 14 days", d)
	}
	if h != sha256.Sum256(c.Certificate[0]) {
		t.Fatal("hash is not the SHA-256 of the DER")
	}
	if _, _, err := quicconn.SelfSignedCert(nil, quicconn.MaxHashCertValidity+time.Second); err == nil {
		t.Fatal("a certificate valid past 14 days was made")
	}
}
