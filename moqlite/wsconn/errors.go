package wsconn

import (
	"errors"
	"fmt"
)

// StreamError is a stream aborted by RESET_STREAM or STOP_SENDING: a Read
// after the peer's reset, or a Write after the peer's stop, returns one
// with Remote set. It ends that stream only.
type StreamError struct {
	Code   uint64
	Remote bool
}

func (e *StreamError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by the peer"
	}
	return fmt.Sprintf("wsconn: stream aborted %s with code %d", who, e.Code)
}

// SessionError is a session ended by CloseWithError on either side.
type SessionError struct {
	Code   uint64
	Reason string
	Remote bool
}

func (e *SessionError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by the peer"
	}
	return fmt.Sprintf("wsconn: session closed %s with code %d: %q", who, e.Code, e.Reason)
}

var (
	// ErrIdleTimeout ends a session that heard nothing for Config.IdleTimeout.
	ErrIdleTimeout = errors.New("wsconn: idle timeout: the peer sent nothing and answered no ping")
	// ErrHandshakeTimeout ends a qmux-00 session whose peer sent no
	// transport parameters within Config.HandshakeTimeout.
	ErrHandshakeTimeout = errors.New("wsconn: handshake timeout: no transport parameters from the peer")
	// ErrNoSubprotocol is a WebSocket peer that offered or chose no
	// subprotocol this side speaks.
	ErrNoSubprotocol = errors.New("wsconn: no common WebSocket subprotocol")
	// ErrControlQueueFull ends a session whose peer provoked more control
	// frames than Config.MaxControlQueue before they could be written.
	ErrControlQueueFull = errors.New("wsconn: control frame queue full: the peer provokes replies faster than it reads them")

	errStopped = errors.New("wsconn: read after Stop")
	errReset   = errors.New("wsconn: write after Reset")
	errClosed  = errors.New("wsconn: write after Close")
)
