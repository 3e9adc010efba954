package wsconn

import "time"

// Config bounds a session. The zero value takes every default.
type Config struct {
	// Protocols are the application protocols to offer or accept, best
	// first (moq-lite-04, moq-lite-03, moql). On the wire each is prefixed
	// with its framing ("qmux-00.moq-lite-04", "webtransport.moq-lite-04");
	// the bare framings are always offered and accepted too, with no
	// application protocol.
	Protocols []string
	// Framings lists the framings to offer or accept, best first. Default:
	// qmux-00, then webtransport, as @moq/qmux prefers.
	Framings []Framing
	// OriginPatterns are the cross-origin hosts a browser may connect from
	// (see github.com/coder/websocket AcceptOptions). Same-origin and
	// requests without an Origin header are always accepted.
	OriginPatterns []string
	// MaxMessageSize caps one WebSocket message, so one frame. Default 1 MiB.
	MaxMessageSize int64
	// StreamWindow is the unread bytes one stream may hold: qmux-00 grants
	// it as stream credit; under the webtransport framing, which has no
	// credit, the session stops reading until there is room. Default 256 KiB.
	StreamWindow uint64
	// SessionWindow is the unread bytes all streams may hold together,
	// granted as qmux-00 connection credit, and waited for as above.
	// Default 4 MiB.
	SessionWindow uint64
	// MaxIncomingStreams is how many streams of each direction the peer may
	// have open at once: qmux-00 grants it as stream credit; under the
	// webtransport framing more closes the session. Default 256.
	MaxIncomingStreams uint64
	// HandshakeTimeout bounds the WebSocket dial and, for qmux-00, the wait
	// for the peer's transport parameters. Default 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout ends a session that received nothing, not even a pong to
	// the ping sent after half of it, for this long. Default 30s; negative
	// disables.
	IdleTimeout time.Duration
	// MaxControlQueue caps the control frames (resets, credit) waiting to
	// be written; a peer that provokes more is closed. Default 4096.
	MaxControlQueue int
}

const (
	defaultMaxMessage    = 1 << 20
	defaultStreamWindow  = 256 << 10
	defaultSessionWindow = 4 << 20
	defaultMaxStreams    = 256
	defaultHandshake     = 10 * time.Second
	defaultIdle          = 30 * time.Second
	defaultControlQueue  = 4096
)

func (c Config) withDefaults() Config {
	if len(c.Framings) == 0 {
		c.Framings = []Framing{FramingQMux, FramingWebTransport}
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = defaultMaxMessage
	}
	if c.StreamWindow == 0 {
		c.StreamWindow = defaultStreamWindow
	}
	if c.SessionWindow == 0 {
		c.SessionWindow = defaultSessionWindow
	}
	if c.MaxIncomingStreams == 0 {
		c.MaxIncomingStreams = defaultMaxStreams
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = defaultHandshake
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = defaultIdle
	}
	if c.MaxControlQueue <= 0 {
		c.MaxControlQueue = defaultControlQueue
	}
	return c
}

// subprotocols lists the WebSocket subprotocols for c, best first: every
// application protocol under every framing, then the bare framings.
func (c Config) subprotocols() []string {
	var out []string
	for _, p := range c.Protocols {
		for _, f := range c.Framings {
			out = append(out, f.String()+"."+p)
		}
	}
	for _, f := range c.Framings {
		out = append(out, f.String())
	}
	return out
}

// parseSubprotocol splits a negotiated subprotocol into framing and
// application protocol; ok is false for one c does not offer.
func (c Config) parseSubprotocol(sp string) (f Framing, proto string, ok bool) {
	for _, cand := range c.subprotocols() {
		if cand != sp {
			continue
		}
		for _, fr := range c.Framings {
			name := fr.String()
			if sp == name {
				return fr, "", true
			}
			if len(sp) > len(name) && sp[:len(name)+1] == name+"." {
				return fr, sp[len(name)+1:], true
			}
		}
	}
	return 0, "", false
}
