package main

import (
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/quicconn"
	"github.com/moqstats/moqstats/moqlite/wsconn"
)

// moqPath is where moq-lite is served: WebSocket on the demo's HTTP server,
// WebTransport on HTTP/3 on the same port number over UDP.
const moqPath = "/moq"

// moqEndLinger is how long the demo's moq-lite server waits, once the
// stats broadcast closed, between a subscription's last group stream and
// the end of its subscribe stream (moqlite.ServerConfig.EndLinger).
const moqEndLinger = 250 * time.Millisecond

// certValidity is the WebTransport certificate's lifetime: the longest
// browsers accept for a certificate given by hash.
const certValidity = quicconn.MaxHashCertValidity

// listenBoth listens on addr over TCP (HTTP, WebSocket) and over UDP on the
// same port (HTTP/3, WebTransport), so one port number serves both. With
// port 0 the kernel picks the TCP port; when that port is taken on UDP,
// it tries again with another, a few times.
func listenBoth(addr string) (net.Listener, net.PacketConn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	tries := 1
	if port == "0" {
		tries = 10
	}
	for i := 0; ; i++ {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return ln, pc, nil
		}
		ln.Close()
		if i+1 >= tries || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("listen on UDP for WebTransport: %w", err)
		}
	}
}

// loopbackOrigin reports whether r may upgrade to a moq-lite session: a
// request without an Origin header (not from a browser page), or one from
// a page served by this machine over http or https, on any port: the
// stats name customers and nothing here authenticates, so a page of any
// other site must not read them through the visitor's browser. A name
// other than localhost does not count as loopback even when it resolves
// there, so a site that rebinds its DNS name to 127.0.0.1 is refused too.
func loopbackOrigin(r *http.Request) bool {
	origin := r.Header.Values("Origin")
	if len(origin) == 0 {
		return true
	}
	if len(origin) > 1 {
		return false
	}
	return isLoopbackOrigin(origin[0])
}

// isLoopbackOrigin reports whether origin (an Origin header's value) is
// an http or https page on localhost or a loopback IP literal.
func isLoopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	host := u.Hostname()
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return false
		}
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// moqServer serves the stats broadcast over moq-lite beside the demo's
// HTTP endpoints.
type moqServer struct {
	srv  *moqlite.Server
	wt   *quicconn.WebTransportServer
	hash string // the WebTransport certificate's SHA-256, lowercase hex
}

// newMoqServer makes the moq-lite server, and the WebTransport server with
// a fresh self-signed certificate for host (an IP literal or a name).
func newMoqServer(cfg moqlite.ServerConfig, host string) (*moqServer, error) {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if host != "" && !slices.Contains(hosts, host) {
		hosts = append(hosts, host)
	}
	cert, sum, err := quicconn.SelfSignedCert(hosts, certValidity)
	if err != nil {
		return nil, fmt.Errorf("moq-lite certificate: %w", err)
	}
	srv := moqlite.NewServer(cfg)
	wt := srv.WebTransportServer(quicconn.WebTransportConfig{
		TLSConfig:   &tls.Config{Certificates: []tls.Certificate{cert}},
		Path:        moqPath,
		CheckOrigin: loopbackOrigin,
	})
	return &moqServer{srv: srv, wt: wt, hash: hex.EncodeToString(sum[:])}, nil
}

// webSocket serves moq-lite over WebSocket to loopback pages and
// non-browser clients; other pages get 403 before any upgrade.
func (m *moqServer) webSocket() http.Handler {
	// Origins are checked by loopbackOrigin first; the pattern lets the
	// loopback pages of other ports through the WebSocket library's own
	// same-origin check, which would refuse them.
	ws := m.srv.WebSocketHandlerWith(wsconn.Config{OriginPatterns: []string{"*"}})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackOrigin(r) {
			http.Error(w, "moq-lite is served to pages of this machine only", http.StatusForbidden)
			return
		}
		ws.ServeHTTP(w, r)
	})
}

// certificate serves the WebTransport certificate's SHA-256 as bare
// lowercase hex, where @moq/lite looks for it (/certificate.sha256 beside
// an http:// URL) to pass as serverCertificateHashes. Loopback pages of
// other ports may read it (CORS); it is no secret, but the rule is the
// sessions' rule.
func (m *moqServer) certificate() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Vary", "Origin")
		if origin := r.Header.Get("Origin"); origin != "" && isLoopbackOrigin(origin) {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		fmt.Fprint(w, m.hash)
	})
}

// lateSubscribers publishes through a moq-lite server's Origin, but a
// broadcast's Close that timed out waiting for subscribers to take the
// final frames (moqlite.ErrTimeout) is reported, not returned: the frames
// were written and a slow peer (a throttled background tab, say) is no
// failure of the demo, whose exit status should say whether it worked.
type lateSubscribers struct {
	origin moqstats.Origin
	report func(error)
}

func (o lateSubscribers) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	b, err := o.origin.Publish(path, tracks)
	if err != nil {
		return nil, err
	}
	app, ok := b.(moqstats.Appender)
	if !ok {
		return nil, fmt.Errorf("BUG: the moq-lite broadcast %T does not append, which compressed tracks need", b)
	}
	return lateBroadcast{Broadcast: b, app: app, report: o.report}, nil
}

type lateBroadcast struct {
	moqstats.Broadcast
	app    moqstats.Appender
	report func(error)
}

func (b lateBroadcast) AppendFrame(track string, frame []byte) error {
	return b.app.AppendFrame(track, frame)
}

func (b lateBroadcast) Close() error {
	err := b.Broadcast.Close()
	if errors.Is(err, moqlite.ErrTimeout) {
		b.report(err)
		return nil
	}
	return err
}
