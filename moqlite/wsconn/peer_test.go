package wsconn_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/moqstats/moqstats/moqlite/wsconn"
)

// Hand-written frames, independent of the package's encoder.
const (
	qmuxParams = "ff5153300d0a0d0a200404801000000504800400000604800400000704800400000802406409024064" // as @moq/qmux sends
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawPeer dials url with one subprotocol and returns the raw WebSocket and
// the server's session.
func rawPeer(t *testing.T, url, subprotocol string, ch <-chan *wsconn.Session) (*websocket.Conn, *wsconn.Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{subprotocol}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	select {
	case s := <-ch:
		return c, s
	case <-ctx.Done():
		t.Fatal("no server session")
	}
	return nil, nil
}

func waitEnd(t *testing.T, s *wsconn.Session, d time.Duration) error {
	t.Helper()
	select {
	case <-s.Context().Done():
		return context.Cause(s.Context())
	case <-time.After(d):
		t.Fatalf("session still running after %v", d)
	}
	return nil
}

// drain reads the raw peer's messages in the background (answering
// pings), so the server's writes never block on it.
func drain(c *websocket.Conn) <-chan error {
	done := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				done <- err
				return
			}
		}
	}()
	return done
}

func TestMalformedPeerInputClosesTheSessionWithAProtocolError(t *testing.T) {
	cases := []struct {
		name, sub string
		msgs      []string
		text      bool
		cfg       wsconn.Config
	}{
		{name: "wt empty message", sub: "webtransport", msgs: []string{""}},
		{name: "wt unknown frame type", sub: "webtransport", msgs: []string{"07"}},
		{name: "wt truncated varint", sub: "webtransport", msgs: []string{"0840"}},
		{name: "wt stream on the server's own uni stream", sub: "webtransport", msgs: []string{"0803aa"}},
		{name: "wt reset on the server's own uni stream", sub: "webtransport", msgs: []string{"040300"}},
		{name: "wt stop on a client uni stream", sub: "webtransport", msgs: []string{"080201", "050200"}},
		{name: "wt stream the server never opened", sub: "webtransport", msgs: []string{"0801aa"}},
		{name: "wt data after FIN", sub: "webtransport", msgs: []string{"0902aa", "0802bb"}},
		{name: "wt trailing bytes after stop", sub: "webtransport", msgs: []string{"08000a", "0500000000"}},
		{name: "wt text message", sub: "webtransport", msgs: []string{"0802aa"}, text: true},
		{name: "wt close reason past its cap", sub: "webtransport", msgs: []string{"1d00" + strings.Repeat("61", 1025)}},
		{name: "wt too many streams at once", sub: "webtransport", cfg: wsconn.Config{MaxIncomingStreams: 2}, msgs: []string{"0802aa", "0806aa", "080aaa"}},
		{name: "wt stream index leap past the stream cap", sub: "webtransport", msgs: []string{"08bfffffffaa"}},
		{name: "qmux first frame not parameters", sub: "qmux-00", msgs: []string{"0b0201aa"}},
		{name: "qmux parameters twice", sub: "qmux-00", msgs: []string{qmuxParams, qmuxParams}},
		{name: "qmux unknown frame type", sub: "qmux-00", msgs: []string{qmuxParams, "21"}},
		{name: "qmux stream length past the message", sub: "qmux-00", msgs: []string{qmuxParams, "0b0205aa"}},
		{name: "qmux stream offset out of order", sub: "qmux-00", msgs: []string{qmuxParams, "0e0205aa"}},
		{name: "qmux stream past its credit", sub: "qmux-00", cfg: wsconn.Config{StreamWindow: 4}, msgs: []string{qmuxParams, "0a0205aabbccddee"}},
		{name: "qmux session past its credit", sub: "qmux-00", cfg: wsconn.Config{StreamWindow: 4, SessionWindow: 6}, msgs: []string{qmuxParams, "0a0204aabbccdd", "0a0604aabbccdd"}},
		{name: "qmux stream past the stream limit", sub: "qmux-00", cfg: wsconn.Config{MaxIncomingStreams: 2}, msgs: []string{qmuxParams, "0a0a01aa"}},
		{name: "qmux max_streams above 2^60", sub: "qmux-00", msgs: []string{qmuxParams, "13d000000000000001"}},
		{name: "qmux params truncated", sub: "qmux-00", msgs: []string{"ff5153300d0a0d0a0504"}},
		{name: "qmux param value longer than its varint", sub: "qmux-00", msgs: []string{"ff5153300d0a0d0a0404020101"}},
		{name: "qmux close reason past the message", sub: "qmux-00", msgs: []string{qmuxParams, "1d000009aa"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url, ch := serve(t, tc.cfg)
			c, s := rawPeer(t, url, tc.sub, ch)
			done := drain(c)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, m := range tc.msgs {
				typ := websocket.MessageBinary
				b := unhex(t, m)
				if tc.text {
					typ = websocket.MessageText
				}
				if err := c.Write(ctx, typ, b); err != nil {
					break // the server may already have closed
				}
			}
			err := waitEnd(t, s, 10*time.Second)
			var pe *wsconn.ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("session ended with %v, want a *wsconn.ProtocolError", err)
			}
			if st := websocket.CloseStatus(<-done); st != websocket.StatusProtocolError {
				t.Fatalf("peer saw close status %v, want %v (1002)", st, websocket.StatusProtocolError)
			}
		})
	}
}

func TestMessagePastTheSizeCapClosesTheSession(t *testing.T) {
	url, ch := serve(t, wsconn.Config{MaxMessageSize: 1024})
	c, s := rawPeer(t, url, "webtransport", ch)
	done := drain(c)
	_ = c.Write(context.Background(), websocket.MessageBinary, append([]byte{0x08, 0x02}, make([]byte, 2000)...))
	if err := waitEnd(t, s, 10*time.Second); err == nil {
		t.Fatal("no error")
	}
	if st := websocket.CloseStatus(<-done); st != websocket.StatusMessageTooBig {
		t.Fatalf("peer saw close status %v, want %v", st, websocket.StatusMessageTooBig)
	}
}

func TestIdlePeerThatAnswersNoPingIsClosed(t *testing.T) {
	url, ch := serve(t, wsconn.Config{IdleTimeout: 300 * time.Millisecond})
	_, s := rawPeer(t, url, "webtransport", ch) // never reads, so never pongs
	if err := waitEnd(t, s, 10*time.Second); !errors.Is(err, wsconn.ErrIdleTimeout) {
		t.Fatalf("got %v, want ErrIdleTimeout", err)
	}
}

func TestQuietPeerThatAnswersPingsStaysOpen(t *testing.T) {
	url, ch := serve(t, wsconn.Config{IdleTimeout: 200 * time.Millisecond})
	c, s := rawPeer(t, url, "webtransport", ch)
	drain(c) // reading answers pings
	select {
	case <-s.Context().Done():
		t.Fatalf("a peer answering pings was closed: %v", context.Cause(s.Context()))
	case <-time.After(time.Second):
	}
}

func TestQMuxPeerWithoutParametersHitsTheHandshakeTimeout(t *testing.T) {
	url, ch := serve(t, wsconn.Config{HandshakeTimeout: 200 * time.Millisecond})
	c, s := rawPeer(t, url, "qmux-00", ch)
	drain(c)
	if err := waitEnd(t, s, 10*time.Second); !errors.Is(err, wsconn.ErrHandshakeTimeout) {
		t.Fatalf("got %v, want ErrHandshakeTimeout", err)
	}
}

func TestServerPicksItsBestSubprotocolAmongTheOffers(t *testing.T) {
	cfg := wsconn.Config{Protocols: []string{"moq-lite-04", "moq-lite-03", "moql"}}
	cases := []struct {
		offer         []string
		framing       wsconn.Framing
		proto, chosen string
	}{
		// What @moq/qmux offers for protocols [moq-lite-03, moq-lite-04].
		{[]string{"qmux-00", "webtransport", "qmux-00.moq-lite-03", "webtransport.moq-lite-03", "qmux-00.moq-lite-04", "webtransport.moq-lite-04"},
			wsconn.FramingQMux, "moq-lite-04", "qmux-00.moq-lite-04"},
		// What @moq/web-transport-ws offers.
		{[]string{"webtransport", "webtransport.moq-lite-03"}, wsconn.FramingWebTransport, "moq-lite-03", "webtransport.moq-lite-03"},
		// What @moq/lite's connect() offers: bare framings, SETUP decides.
		{[]string{"qmux-00", "webtransport"}, wsconn.FramingQMux, "", "qmux-00"},
		{[]string{"webtransport"}, wsconn.FramingWebTransport, "", "webtransport"},
	}
	for _, tc := range cases {
		url, ch := serve(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: tc.offer})
		cancel()
		if err != nil {
			t.Fatalf("offer %v: %v", tc.offer, err)
		}
		s := <-ch
		if c.Subprotocol() != tc.chosen || s.Framing() != tc.framing || s.Protocol() != tc.proto {
			t.Errorf("offer %v: chose %q (framing %v, protocol %q), want %q", tc.offer, c.Subprotocol(), s.Framing(), s.Protocol(), tc.chosen)
		}
		c.CloseNow()
	}
}

func TestUpgradeWithoutACommonSubprotocolGets400(t *testing.T) {
	url, _ := serve(t, wsconn.Config{Protocols: []string{"moq-lite-04"}})
	for _, offer := range [][]string{nil, {"chat"}} {
		_, resp, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{Subprotocols: offer})
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("offer %v: got %v (response %v), want HTTP 400", offer, err, resp)
		}
		body, _ := io.ReadAll(resp.Body)
		if !bytes.Contains(body, []byte("qmux-00.moq-lite-04")) {
			t.Errorf("400 body %q does not say what to offer", body)
		}
	}
}

func TestDialReportsTheNegotiatedProtocol(t *testing.T) {
	url, ch := serve(t, wsconn.Config{Protocols: []string{"moq-lite-04", "moq-lite-03"}})
	c, err := wsconn.Dial(context.Background(), url, wsconn.Config{Protocols: []string{"moq-lite-03"}, Framings: []wsconn.Framing{wsconn.FramingWebTransport}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	s := <-ch
	if c.Protocol() != "moq-lite-03" || s.Protocol() != "moq-lite-03" || c.Framing() != wsconn.FramingWebTransport {
		t.Fatalf("client %q/%v, server %q; want moq-lite-03 over webtransport", c.Protocol(), c.Framing(), s.Protocol())
	}
}

func TestCloseWithErrorCarriesCodeAndReasonToThePeer(t *testing.T) {
	for _, f := range []wsconn.Framing{wsconn.FramingWebTransport, wsconn.FramingQMux} {
		url, ch := serve(t, wsconn.Config{})
		c, err := wsconn.Dial(context.Background(), url, wsconn.Config{Framings: []wsconn.Framing{f}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s := <-ch
		_ = s.CloseWithError(0x1234, "going away")
		err = waitEnd(t, c, 10*time.Second)
		var se *wsconn.SessionError
		if !errors.As(err, &se) || se.Code != 0x1234 || se.Reason != "going away" || !se.Remote {
			t.Fatalf("%v: client saw %v, want the server's code 0x1234 and reason", f, err)
		}
	}
}
