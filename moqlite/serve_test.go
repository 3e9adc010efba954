package moqlite_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/quicconn"
	"github.com/moqstats/moqstats/moqlite/transport"
	"github.com/moqstats/moqstats/moqlite/wsconn"
)

// dialer connects a transport session to a fresh server for srv.
type dialer func(t *testing.T, srv *moqlite.Server, protocol string) transport.Session

func wsDialer(f wsconn.Framing) dialer {
	return func(t *testing.T, srv *moqlite.Server, protocol string) transport.Session {
		hs := httptest.NewServer(srv.WebSocketHandler())
		t.Cleanup(hs.Close)
		url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/"
		sess, err := wsconn.Dial(context.Background(), url, wsconn.Config{Protocols: []string{protocol}, Framings: []wsconn.Framing{f}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if sess.Protocol() != protocol || sess.Framing() != f {
			t.Fatalf("negotiated %q over %v, want %q over %v", sess.Protocol(), sess.Framing(), protocol, f)
		}
		return sess
	}
}

func loopbackUDP(t *testing.T) net.PacketConn {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

func testCert(t *testing.T) (*tls.Config, [32]byte) {
	c, h, err := quicconn.SelfSignedCert([]string{"127.0.0.1"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{c}}, h
}

func quicDialer(t *testing.T, srv *moqlite.Server, protocol string) transport.Session {
	tc, h := testCert(t)
	ln, err := quicconn.Listen("", loopbackUDP(t), tc, quicconn.Config{Protocols: moqlite.Protocols})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go srv.ServeQUIC(ln)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := quicconn.Dial(ctx, ln.Addr().String(), quicconn.PinnedClientTLS(h), quicconn.Config{Protocols: []string{protocol}})
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

func webTransportDialer(t *testing.T, srv *moqlite.Server, protocol string) transport.Session {
	tc, h := testCert(t)
	wt := srv.WebTransportServer(quicconn.WebTransportConfig{TLSConfig: tc, Path: "/moq"})
	pc := loopbackUDP(t)
	go wt.Serve(pc)
	t.Cleanup(func() { wt.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := quicconn.DialWebTransport(ctx, "https://"+pc.LocalAddr().String()+"/moq", quicconn.PinnedClientTLS(h), quicconn.Config{Protocols: []string{protocol}})
	if err != nil {
		t.Fatal(err)
	}
	if sess.Protocol() != protocol {
		t.Fatalf("negotiated %q, want %q", sess.Protocol(), protocol)
	}
	return sess
}

// TestEveryTransportDeliversFramesGroupedAsWritten runs a subscription
// over each transport and version: every frame arrives byte-identical, in
// order, in the groups it was written in.
func TestEveryTransportDeliversFramesGroupedAsWritten(t *testing.T) {
	transports := []struct {
		name string
		dial dialer
	}{
		{"websocket", wsDialer(wsconn.FramingWebTransport)},
		{"qmux", wsDialer(wsconn.FramingQMux)},
		{"quic", quicDialer},
		{"webtransport", webTransportDialer},
	}
	for _, tr := range transports {
		for _, v := range versions {
			t.Run(tr.name+"/"+v.name, func(t *testing.T) {
				srv := moqlite.NewServer(moqlite.ServerConfig{WriteTimeout: time.Minute, CloseTimeout: time.Minute, EndLinger: quickLinger})
				defer srv.Close()
				b, err := srv.PublishBroadcast(".stats/test", []string{"t.json"})
				if err != nil {
					t.Fatal(err)
				}
				ctx := timeout(t, 60*time.Second)
				sess := tr.dial(t, srv, v.protocol)
				c, err := moqlite.NewClient(ctx, sess, moqlite.ClientConfig{HandshakeTimeout: 5 * time.Second})
				if err != nil {
					t.Fatalf("NewClient: %v", err)
				}
				defer c.Close()
				sub, err := c.Subscribe(".stats/test", "t.json")
				if err != nil {
					t.Fatalf("Subscribe: %v", err)
				}
				// A subscriber starts at the latest group, so a warm-up group
				// read back first proves the subscription is live.
				if err := b.WriteFrame("t.json", []byte("warm-up")); err != nil {
					t.Fatal(err)
				}
				g0, err := sub.NextGroup(ctx)
				if err != nil {
					t.Fatal(err)
				}
				// The group stays open until the next WriteFrame, so read
				// its one frame rather than to its end.
				if got, err := g0.ReadFrame(ctx); err != nil || string(got) != "warm-up" {
					t.Fatalf("warm-up group: got %q, %v", got, err)
				}
				// Each group is read back before the next is written: a
				// subscriber behind by a whole group may skip to the latest
				// (as MoQ subscribers do), which is the session layer's
				// business, not the transport's.
				for g := range 5 {
					var want [][]byte
					for f := range 3 {
						frame := bytes.Repeat(fmt.Appendf(nil, "g%d f%d ", g, f), 1+g*3000) // up to ~100 KiB: many transport frames
						want = append(want, frame)
						if f == 0 {
							err = b.WriteFrame("t.json", frame)
						} else {
							err = b.AppendFrame("t.json", frame)
						}
						if err != nil {
							t.Fatal(err)
						}
					}
					grp, err := sub.NextGroup(ctx)
					if err != nil {
						t.Fatalf("group %d: %v", g, err)
					}
					for j := range want {
						got, err := grp.ReadFrame(ctx)
						if err != nil {
							t.Fatalf("group %d frame %d: %v", g, j, err)
						}
						if !bytes.Equal(got, want[j]) {
							t.Fatalf("group %d frame %d differs (%d bytes, want %d)", g, j, len(got), len(want[j]))
						}
					}
				}
			})
		}
	}
}
