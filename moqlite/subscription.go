package moqlite

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/moqstats/moqstats/moqlite/internal/wire"
	"github.com/moqstats/moqstats/moqlite/transport"
)

// subscription serves one SUBSCRIBE: a writer goroutine sends the track's
// groups, each on its own uni stream, in order.
//
// Its position (cur, idx, pos) is guarded by the track's mu and moved only
// by its writer: on taking a frame, it compares its offset with the
// track's (track.written) and, more than MaxQueuedBytes behind, skips to
// the latest group. The producer never visits a subscription, so it is
// never slowed by one; a stalled one holds at most its own group alive
// (track.evict cuts the links past it).
type subscription struct {
	sess   *session
	id     uint64
	tr     *track
	stream transport.BidiStream

	// guarded by tr.mu
	cur       *group // the group being sent (counted in its refs); nil once removed
	idx       int    // the next frame of cur to send
	pos       int64  // the track's offset of that frame
	abandoned *group // a group whose stream was reset; its frames are skipped

	timedOut atomic.Bool   // the peer did not end its half within CloseTimeout
	wake     chan struct{} // cap 1: the producer's nudge
	peerDone chan struct{} // closed when the peer ended its half
	done     chan struct{} // closed when the writer has finished
}

// moveTo makes g the group being sent, from its first frame. Called under
// tr.mu.
func (s *subscription) moveTo(g *group) {
	s.cur.refs--
	g.refs++
	s.cur, s.idx, s.pos = g, 0, g.start
}

func (s *subscription) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the writer. It ends when the track has ended and every frame is
// sent (then it closes the subscribe stream and waits, within
// CloseTimeout, for the peer to close its half), when the peer ends the
// subscription, or when the session ends.
func (s *subscription) run() {
	defer close(s.done)
	defer s.sess.endSubscription(s)
	srv := s.sess.srv
	var (
		st      transport.SendStream // the open group stream
		stGroup *group               // the group st carries
		hdr     []byte
		lastEnd time.Time // when the last group stream was ended or reset
	)
	resetOpen := func(code uint64) {
		if st != nil {
			st.Reset(code)
			st, stGroup = nil, nil
			lastEnd = time.Now()
		}
	}
	for {
		var (
			frame   []byte
			g       *group
			finish  bool
			closeSt transport.SendStream
			leave   transport.SendStream
		)
		t := s.tr
		t.mu.Lock()
		for {
			g = s.cur
			if g == nil {
				panic("BUG: moqlite: a subscription's writer runs after its removal")
			}
			if g != t.latest && (g.cut || t.written-s.pos > int64(srv.cfg.MaxQueuedBytes)) {
				// Behind by more than the cap: skip to the latest group from
				// its first frame, as MoQ subscribers do. The stream of the
				// group left is reset below.
				srv.stats.groupsSkipped.Add(1)
				s.moveTo(t.latest)
				g = s.cur
			}
			if stGroup != nil && stGroup != g {
				// We skipped past the group st carries.
				leave, st, stGroup = st, nil, nil
			}
			if s.idx < len(g.frames) {
				frame = g.frames[s.idx]
				s.idx++
				s.pos += int64(len(frame))
				if g == s.abandoned {
					frame = nil
					continue
				}
				break
			}
			if !g.closed {
				break // wait for more
			}
			// g is complete: end its stream, move on.
			if stGroup == g {
				closeSt, st, stGroup = st, nil, nil
			}
			if g.next == nil {
				// The track's end (a cut group was skipped above).
				finish = true
				break
			}
			s.moveTo(g.next)
			if closeSt != nil {
				g = nil
				break // close outside the lock, then continue
			}
		}
		t.mu.Unlock()

		if leave != nil {
			leave.Reset(CodeSkipped)
			lastEnd = time.Now()
		}
		if closeSt != nil {
			// The deadline set for the group's last frame may have passed
			// long ago (an idle track, passes further apart than
			// WriteTimeout), and some transports apply it to the end too:
			// the end gets its own. An end that still fails resets the
			// stream, so the peer never waits on a group that is over.
			closeSt.SetWriteDeadline(time.Now().Add(srv.cfg.WriteTimeout))
			if err := closeSt.Close(); err != nil {
				if isTimeout(err) {
					srv.stats.writeTimeouts.Add(1)
				}
				closeSt.Reset(CodeSkipped)
			}
			lastEnd = time.Now()
		}
		switch {
		case frame != nil:
			if st == nil {
				var err error
				st, err = s.sess.sess.OpenUni(s.sess.ctx)
				if err != nil {
					return
				}
				stGroup = g
				hdr = wire.AppendGroupStream(hdr[:0], wire.Group{Subscribe: s.id, Sequence: g.seq})
			} else {
				hdr = hdr[:0]
			}
			hdr = wire.AppendFrameHeader(hdr, len(frame))
			st.SetWriteDeadline(time.Now().Add(srv.cfg.WriteTimeout))
			_, err := st.Write(hdr)
			if err == nil {
				_, err = st.Write(frame)
			}
			if err != nil {
				if s.sess.ctx.Err() != nil {
					return
				}
				// The peer stopped the stream or did not read it in time:
				// abandon the group, continue with the next.
				if isTimeout(err) {
					srv.stats.writeTimeouts.Add(1)
				}
				t.mu.Lock()
				if s.cur == g {
					s.abandoned = g
				}
				t.mu.Unlock()
				resetOpen(CodeSkipped)
			}
			continue
		case finish:
			resetOpen(CodeCancel) // not reached with st open; kept for safety
			s.end(lastEnd)
			return
		case closeSt != nil:
			continue
		}
		select {
		case <-s.wake:
		case <-s.peerDone:
			resetOpen(CodeCancel)
			s.stream.Reset(CodeCancel)
			return
		case <-s.sess.ctx.Done():
			return
		}
	}
}

// end ends the subscribe stream once the track has ended and every group
// stream has been ended: EndLinger after lastEnd (the last group stream's
// end, zero if there was none), so that a peer that drops the groups it
// has not finished reading when it sees the subscribe stream end (as
// @moq/lite does) has read them by then. It then waits for the peer to end
// its half. Both waits share one CloseTimeout deadline, the one
// Broadcast.Close keeps, and a peer that ends the subscription first cuts
// the linger short.
func (s *subscription) end(lastEnd time.Time) {
	srv := s.sess.srv
	deadline := time.NewTimer(srv.cfg.CloseTimeout)
	defer deadline.Stop()
	if !lastEnd.IsZero() {
		if wait := time.Until(lastEnd.Add(srv.cfg.EndLinger)); wait > 0 {
			linger := time.NewTimer(wait)
			defer linger.Stop()
			select {
			case <-linger.C:
			case <-s.peerDone:
			case <-s.sess.ctx.Done():
				return
			case <-deadline.C:
				s.timedOut.Store(true)
				s.stream.Close()
				return
			}
		}
	}
	s.stream.Close()
	select {
	case <-s.peerDone:
	case <-s.sess.ctx.Done():
	case <-deadline.C:
		s.timedOut.Store(true)
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
