package moqlite

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
)

// ConnInfo describes where a session came from, for the auth hook and logs.
type ConnInfo struct {
	Transport  string               // "websocket", "qmux", "webtransport", "quic"
	Request    *http.Request        // the upgrade/CONNECT request, nil for native QUIC
	TLS        *tls.ConnectionState // nil for plain ws://
	RemoteAddr net.Addr
}

// Protocols lists the application protocols to offer, best first: the
// versions chosen by the protocol, then "moql", under which SETUP chooses
// moq-lite-02.
var Protocols = []string{"moq-lite-04", "moq-lite-03", "moql"}

// Action is what a peer asks the auth hook for.
type Action int

// The actions Authorize sees.
const (
	// ActionConnect: a session, before its version is known; Path is "".
	ActionConnect Action = iota
	// ActionAnnounced: announces of the broadcasts under Path (a prefix).
	ActionAnnounced
	// ActionSubscribe: Track of the broadcast at Path.
	ActionSubscribe
	// ActionPublish: the peer announced the broadcast at Path, which
	// ServerConfig.Ingest would publish as the server's own.
	ActionPublish
)

func (a Action) String() string {
	switch a {
	case ActionConnect:
		return "connect"
	case ActionAnnounced:
		return "announced"
	case ActionSubscribe:
		return "subscribe"
	case ActionPublish:
		return "publish"
	}
	return "unknown"
}

// Request is what Authorize is asked to allow.
type Request struct {
	Action Action
	// Path is the broadcast path or prefix as the peer sent it,
	// normalized (no leading, trailing or doubled '/').
	Path  string
	Track string
}

// Application error codes: a session closed by the server, or a stream it
// resets, carries one.
const (
	CodeNone        uint64 = 0x0 // clean close
	CodeProtocol    uint64 = 0x1 // the peer broke the protocol
	CodeRefused     uint64 = 0x2 // a cap or the auth hook refused
	CodeNotFound    uint64 = 0x3 // no such broadcast or track
	CodeTimeout     uint64 = 0x4 // handshake, idle or write timeout
	CodeShutdown    uint64 = 0x5 // the server is shutting down
	CodeSkipped     uint64 = 0x6 // a group abandoned for a newer one
	CodeUnsupported uint64 = 0x7 // a request this server does not serve
	CodeCancel      uint64 = 0x8 // the subscriber went away
)

// Errors ServeSession and the client return; match them with errors.Is.
var (
	ErrServerClosed = errors.New("moqlite: server closed")
	ErrRefused      = errors.New("moqlite: refused")
	ErrNotFound     = errors.New("moqlite: not found")
	ErrTimeout      = errors.New("moqlite: timeout")
	ErrClosed       = errors.New("moqlite: closed")
	ErrUnknownTrack = errors.New("moqlite: unknown track")
	ErrNoGroup      = errors.New("moqlite: no open group to append to")
	ErrSkipped      = errors.New("moqlite: group skipped")
)
