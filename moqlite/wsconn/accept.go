package wsconn

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// Accept upgrades r to a WebSocket session. It picks this side's best
// subprotocol among those the client offers; a client offering none that
// Config lists gets HTTP 400 and ErrNoSubprotocol. On any error the
// response has been written.
func Accept(w http.ResponseWriter, r *http.Request, cfg Config) (*Session, error) {
	cfg = cfg.withDefaults()
	if !offersAny(r.Header.Values("Sec-WebSocket-Protocol"), cfg.subprotocols()) {
		http.Error(w, fmt.Sprintf("%v: offer one of %s", ErrNoSubprotocol, strings.Join(cfg.subprotocols(), ", ")), http.StatusBadRequest)
		return nil, ErrNoSubprotocol
	}
	// The server's read and write timeouts would outlive the upgrade on
	// the hijacked connection and cut a healthy session; the session's
	// own idle timeout replaces them.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:    cfg.subprotocols(),
		OriginPatterns:  cfg.OriginPatterns,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, fmt.Errorf("wsconn: upgrade: %w", err)
	}
	f, proto, ok := cfg.parseSubprotocol(conn.Subprotocol())
	if !ok {
		conn.Close(websocket.StatusPolicyViolation, "no common subprotocol")
		return nil, ErrNoSubprotocol
	}
	return newSession(conn, f, proto, true, cfg)
}

func offersAny(headers []string, ours []string) bool {
	for _, h := range headers {
		for tok := range strings.SplitSeq(h, ",") {
			tok = strings.TrimSpace(tok)
			for _, o := range ours {
				if strings.EqualFold(tok, o) {
					return true
				}
			}
		}
	}
	return false
}

// Handler serves every upgraded request by calling serve with its session,
// in the request's goroutine; the session is closed when serve returns.
func Handler(cfg Config, serve func(*Session, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := Accept(w, r, cfg)
		if err != nil {
			return
		}
		defer sess.CloseWithError(0, "")
		serve(sess, r)
	})
}

// Dial connects to a WebSocket URL (ws:// or wss://), offering cfg's
// subprotocols, and returns the session the server chose. hdr, if not nil,
// is sent with the upgrade request.
func Dial(ctx context.Context, url string, cfg Config, hdr http.Header) (*Session, error) {
	cfg = cfg.withDefaults()
	dctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{
		Subprotocols:    cfg.subprotocols(),
		HTTPHeader:      hdr,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, fmt.Errorf("wsconn: dial %s: %w", url, err)
	}
	f, proto, ok := cfg.parseSubprotocol(conn.Subprotocol())
	if !ok {
		conn.Close(websocket.StatusPolicyViolation, "no common subprotocol")
		return nil, fmt.Errorf("%w: the server chose %q", ErrNoSubprotocol, conn.Subprotocol())
	}
	return newSession(conn, f, proto, false, cfg)
}
