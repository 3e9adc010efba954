package moqlite

import (
	"bufio"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/moqstats/moqstats/internal/moqpath"
	"github.com/moqstats/moqstats/moqlite/internal/wire"
	"github.com/moqstats/moqstats/moqlite/transport"
)

// maxPendingAnnounces caps the announce events queued for a peer that does
// not read them; past it the interest's stream is reset.
const maxPendingAnnounces = 4096

// interest is one ANNOUNCE_INTEREST. Publish and unpublish queue events to
// it under the server's mu (never blocking); its writer sends them.
type interest struct {
	ss     *session
	prefix string
	stream transport.BidiStream

	mu       sync.Mutex
	initial  []string // suffixes active when it registered, sent first
	pending  []wire.Announce
	overflow bool
	wake     chan struct{}
}

// suffix returns path relative to prefix, by whole segments; ok is false
// for a path not under it.
func suffix(prefix, path string) (string, bool) {
	switch {
	case prefix == "":
		return path, true
	case !moqpath.HasPrefix(path, prefix):
		return "", false
	case len(path) == len(prefix):
		return "", true
	}
	return path[len(prefix)+1:], true
}

// update queues an announce of path if it is under the prefix; the
// server's mu is held.
func (in *interest) update(path string, active bool) {
	sfx, ok := suffix(in.prefix, path)
	if !ok {
		return
	}
	in.mu.Lock()
	if len(in.pending) >= maxPendingAnnounces {
		in.overflow = true
	} else {
		in.pending = append(in.pending, wire.Announce{Active: active, Suffix: sfx})
	}
	in.mu.Unlock()
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

func (ss *session) serveAnnounce(st transport.BidiStream, br *bufio.Reader) {
	body, err := ss.firstMessage(st, br, "ANNOUNCE_INTEREST")
	if err != nil {
		return
	}
	m, err := wire.ParseAnnounceInterest(body, ss.f)
	if err != nil {
		ss.fail(err)
		return
	}
	prefix := moqpath.Normalize(m.Prefix)
	if !ss.open(&ss.interests, ss.srv.cfg.MaxAnnounceInterests, &ss.srv.stats.interestsRefused) {
		refuse(st, CodeRefused)
		return
	}
	defer ss.closeOne(&ss.interests)
	if err := ss.srv.authorize(ss.info, Request{Action: ActionAnnounced, Path: prefix}); err != nil {
		refuse(st, CodeRefused)
		return
	}
	in := &interest{ss: ss, prefix: prefix, stream: st, wake: make(chan struct{}, 1)}
	srv := ss.srv
	srv.mu.Lock()
	for path := range srv.broadcasts {
		if sfx, ok := suffix(prefix, path); ok {
			in.initial = append(in.initial, sfx)
		}
	}
	srv.interests[in] = struct{}{}
	srv.mu.Unlock()
	sort.Strings(in.initial)
	defer func() {
		srv.mu.Lock()
		delete(srv.interests, in)
		srv.mu.Unlock()
	}()

	peerDone := make(chan struct{})
	go func() {
		// Nothing follows ANNOUNCE_INTEREST; the peer's end of the stream
		// ends the interest, and anything else is a protocol error.
		defer close(peerDone)
		var b [1]byte
		if n, _ := br.Read(b[:]); n > 0 {
			ss.fail(&protocolError{errors.Join(wire.ErrProtocol, errors.New("data after ANNOUNCE_INTEREST"))})
		}
	}()
	in.run(peerDone)
}

// run writes the initial announces and then each update, until the peer
// or the session ends.
func (in *interest) run(peerDone <-chan struct{}) {
	ss, st, f := in.ss, in.stream, in.ss.f
	var out []byte
	if f.AnnounceInit {
		out = wire.AppendMessage(out, wire.AppendAnnounceInit(nil, wire.AnnounceInit{Suffixes: in.initial}))
	} else {
		for _, sfx := range in.initial {
			out = wire.AppendMessage(out, wire.AppendAnnounce(nil, wire.Announce{Active: true, Suffix: sfx}, f))
		}
	}
	for {
		if len(out) > 0 {
			st.SetWriteDeadline(time.Now().Add(ss.srv.cfg.WriteTimeout))
			if _, err := st.Write(out); err != nil {
				st.Reset(CodeCancel)
				return
			}
		}
		select {
		case <-in.wake:
		case <-peerDone:
			st.Close()
			return
		case <-ss.ctx.Done():
			return
		}
		in.mu.Lock()
		events, overflow := in.pending, in.overflow
		in.pending = nil
		in.mu.Unlock()
		if overflow {
			st.Reset(CodeRefused)
			return
		}
		out = out[:0]
		for _, a := range events {
			out = wire.AppendMessage(out, wire.AppendAnnounce(nil, a, f))
		}
	}
}
