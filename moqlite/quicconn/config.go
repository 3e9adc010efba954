package quicconn

import (
	"time"

	"github.com/quic-go/quic-go"
)

// Config bounds QUIC connections. The zero value takes every default.
type Config struct {
	// Protocols are the application protocols, best first: the ALPN list
	// for native QUIC, the WT-Available-Protocols for WebTransport.
	Protocols []string
	// HandshakeTimeout bounds the QUIC handshake. Default 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout ends a connection that heard nothing for this long.
	// Default 30s.
	IdleTimeout time.Duration
	// KeepAlive, when positive, pings at this period so an idle but
	// healthy session stays open. Default 0 (the peer's pings, or traffic,
	// keep it alive); dialers set it to a third of IdleTimeout.
	KeepAlive time.Duration
	// MaxIncomingStreams caps the peer's open streams of each direction.
	// Default 256.
	MaxIncomingStreams int64
	// StreamWindow and ConnectionWindow cap the unread bytes buffered per
	// stream and per connection. Defaults 1 MiB and 4 MiB.
	StreamWindow     uint64
	ConnectionWindow uint64
}

func (c Config) quicConfig(wt bool) *quic.Config {
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.MaxIncomingStreams <= 0 {
		c.MaxIncomingStreams = 256
	}
	if c.StreamWindow == 0 {
		c.StreamWindow = 1 << 20
	}
	if c.ConnectionWindow == 0 {
		c.ConnectionWindow = 4 << 20
	}
	return &quic.Config{
		HandshakeIdleTimeout:             c.HandshakeTimeout,
		MaxIdleTimeout:                   c.IdleTimeout,
		KeepAlivePeriod:                  c.KeepAlive,
		MaxIncomingStreams:               c.MaxIncomingStreams,
		MaxIncomingUniStreams:            c.MaxIncomingStreams,
		InitialStreamReceiveWindow:       c.StreamWindow,
		MaxStreamReceiveWindow:           c.StreamWindow,
		InitialConnectionReceiveWindow:   c.ConnectionWindow,
		MaxConnectionReceiveWindow:       c.ConnectionWindow,
		EnableDatagrams:                  wt,
		EnableStreamResetPartialDelivery: wt,
	}
}
