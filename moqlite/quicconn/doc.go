// Package quicconn carries moq-lite sessions over native QUIC, where the
// application protocol is the TLS ALPN (what relay peers such as moq-relay
// speak), and over WebTransport on HTTP/3, where it is the
// WT-Available-Protocols / WT-Protocol header pair (what browsers speak).
//
// # Invariants
//
// Both are thin adapters: quic-go and webtransport-go already give every
// property package transport asks for (ordered reliable streams, FIN as
// io.EOF, per-stream reset and stop, session close ending every stream,
// flow control). The adapters only map types and codes, so they add no
// buffering and no goroutine per stream.
//
// WebTransport error codes are 32 bits wide: a stream or session code
// above 2^32-1 is sent as 2^32-1.
//
// Caps come from quic.Config: incoming streams (MaxIncomingStreams,
// MaxIncomingUniStreams), receive windows, and the handshake and idle
// timeouts; Config fills them with defaults for the open internet.
package quicconn
