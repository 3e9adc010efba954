// Package wsconn carries moq-lite sessions over WebSocket, for peers
// without WebTransport: Node, and browsers that lack it. It speaks both
// framings @moq/lite uses there, chosen by WebSocket subprotocol:
//
//   - "webtransport" (@moq/web-transport-ws): a one-byte frame type per
//     message; STREAM, RESET_STREAM, STOP_SENDING and APPLICATION_CLOSE.
//   - "qmux-00" (@moq/qmux): QUIC frames with varint types, transport
//     parameters as the first frame, and QUIC's credit (MAX_DATA,
//     MAX_STREAM_DATA, MAX_STREAMS).
//
// The application protocol rides in the subprotocol after a dot
// ("qmux-00.moq-lite-04"); a bare framing means none, and moq-lite then
// negotiates its version by SETUP. Accept picks this side's best offer.
//
// # Invariants
//
// Bytes of a stream are delivered in order, once, and io.EOF only after
// the FIN: WebSocket is one ordered reliable byte stream, frames are
// applied in arrival order by one goroutine, and a stream's writes are
// serialized by its own lock, whole frames at a time.
//
// A RESET_STREAM is never followed by data on that stream: a reset marks
// the stream before taking its turn to write, and a data frame whose
// stream was reset before its turn is dropped.
//
// Buffering is bounded: a stream holds at most Config.StreamWindow unread
// bytes and a session Config.SessionWindow. Under qmux-00 these are the
// credit granted, refreshed as the reader consumes; the webtransport
// framing has no credit, so when a frame would pass them the read loop
// stops reading the WebSocket until a reader makes room, and TCP pushes
// back on the peer. As with any credit-less stream mux this is head-of-line
// blocking: a reader that leaves one stream unread while it waits on
// another stalls the session, so the session layer reads every stream it
// accepts. Peer
// streams open at once are capped by Config.MaxIncomingStreams, control
// replies by Config.MaxControlQueue, and one message by
// Config.MaxMessageSize.
//
// The read goroutine never writes: replies it provokes go to a bounded
// queue, so a peer that stops reading cannot stall it, and one that
// provokes more replies than the queue holds is closed.
//
// Malformed input never panics: a frame that breaks the framing ends the
// session with a *ProtocolError and WebSocket status 1002.
package wsconn
