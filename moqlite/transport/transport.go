// Package transport is the boundary between the moq-lite session layer and
// the connections it runs over: WebTransport over HTTP/3, native QUIC, and
// the two WebSocket framings that emulate WebTransport (the "webtransport"
// subprotocol of @moq/web-transport-ws and qmux-00 of @moq/qmux).
//
// Every transport offers the same thing: a session of independent,
// ordered, reliable byte streams that either side may open, uni- or
// bidirectional, which either side may abort without touching the others.
// The session layer depends on nothing else, so a transport is correct when
// it keeps these properties:
//   - bytes on one stream arrive in order, once, and a FIN (Close) is seen
//     by the reader as io.EOF only after every byte before it;
//   - Reset and Stop reach the peer as an error on that stream only;
//   - CloseWithError ends every stream, and Context is done once the
//     session has ended for any reason, on either side;
//   - no method blocks past its context or deadline, and none panics on a
//     peer's input.
package transport

import (
	"context"
	"io"
	"time"
)

// Session is one multiplexed connection.
type Session interface {
	// OpenBidi opens a bidirectional stream; the peer sees it from
	// AcceptBidi once the first byte is written.
	OpenBidi(ctx context.Context) (BidiStream, error)
	// OpenUni opens a stream that only this side writes.
	OpenUni(ctx context.Context) (SendStream, error)
	// AcceptBidi waits for the peer's next bidirectional stream.
	AcceptBidi(ctx context.Context) (BidiStream, error)
	// AcceptUni waits for the peer's next unidirectional stream.
	AcceptUni(ctx context.Context) (ReceiveStream, error)
	// Protocol is the application protocol both sides agreed on (the QUIC
	// ALPN, the WebTransport protocol header, or the WebSocket framing's
	// equivalent), or "" when none was.
	Protocol() string
	// CloseWithError ends the session with an application error code and
	// a reason the peer may read.
	CloseWithError(code uint64, reason string) error
	// Context is done when the session has ended.
	Context() context.Context
}

// SendStream is the writing half of a stream.
type SendStream interface {
	io.Writer
	// Close ends the stream cleanly (FIN) after the bytes written.
	Close() error
	// Reset abandons the stream: bytes not yet delivered may be dropped.
	Reset(code uint64)
	SetWriteDeadline(t time.Time) error
}

// ReceiveStream is the reading half of a stream.
type ReceiveStream interface {
	io.Reader
	// Stop tells the peer to stop sending (STOP_SENDING).
	Stop(code uint64)
	SetReadDeadline(t time.Time) error
}

// BidiStream is a stream both sides write.
type BidiStream interface {
	SendStream
	ReceiveStream
}
