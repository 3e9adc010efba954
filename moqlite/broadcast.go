package moqlite

import (
	"context"
	"fmt"
	"sync"

	"github.com/moqstats/moqstats"
)

// Broadcast is a published broadcast. WriteFrame and AppendFrame copy the
// frame into the track and have its subscribers' writers woken; they never
// wait on the network.
type Broadcast struct {
	srv    *Server
	path   string
	tracks map[string]*track // fixed at Publish

	closeOnce sync.Once
	closeErr  error
}

// Path is the broadcast's normalized path.
func (b *Broadcast) Path() string { return b.path }

// WriteFrame starts a new group on track holding frame.
func (b *Broadcast) WriteFrame(name string, frame []byte) error {
	t, ok := b.tracks[name]
	if !ok {
		return fmt.Errorf("%w %q in %q", ErrUnknownTrack, name, b.path)
	}
	return t.write(frame, true)
}

// writeGroup starts group seq on track holding frame: a relayed group keeps
// its publisher's sequence, so a group lost upstream shows as one skipped.
// seq must be past every group written.
func (b *Broadcast) writeGroup(name string, seq uint64, frame []byte) error {
	t, ok := b.tracks[name]
	if !ok {
		return fmt.Errorf("%w %q in %q", ErrUnknownTrack, name, b.path)
	}
	t.mu.Lock()
	if seq < t.seq {
		t.mu.Unlock()
		return fmt.Errorf("moqlite: group %d of %q written after group %d", seq, name, t.seq-1)
	}
	t.seq = seq
	t.mu.Unlock()
	return t.write(frame, true)
}

// AppendFrame appends frame to track's current group.
func (b *Broadcast) AppendFrame(name string, frame []byte) error {
	t, ok := b.tracks[name]
	if !ok {
		return fmt.Errorf("%w %q in %q", ErrUnknownTrack, name, b.path)
	}
	return t.write(frame, false)
}

// Close unannounces the broadcast and ends its tracks. It returns once
// every subscriber has been sent every frame and its streams have ended,
// or after CloseTimeout, with an error naming how many had not.
func (b *Broadcast) Close() error {
	b.closeOnce.Do(func() {
		b.srv.unpublish(b)
		var subs []*subscription
		for _, t := range b.tracks {
			subs = append(subs, t.end()...)
		}
		// One deadline for all: a done context stays done, so each
		// subscriber left when it passes is counted late at once.
		ctx, cancel := context.WithTimeout(context.Background(), b.srv.cfg.CloseTimeout)
		defer cancel()
		late := 0
		for _, sub := range subs {
			select {
			case <-sub.done:
				if sub.timedOut.Load() {
					late++
				}
			case <-ctx.Done():
				late++
			}
		}
		if late > 0 {
			b.closeErr = fmt.Errorf("moqlite: %d subscribers of %q not finished within %v: %w", late, b.path, b.srv.cfg.CloseTimeout, ErrTimeout)
		}
	})
	return b.closeErr
}

var (
	_ moqstats.Broadcast = (*Broadcast)(nil)
	_ moqstats.Appender  = (*Broadcast)(nil)
)

// group is one group of a track. frames only grows, and only under the
// track's mu; a frame once appended is never changed, so a writer may use
// it after unlocking.
type group struct {
	seq    uint64
	frames [][]byte
	size   int
	// closed: no frame will be appended (a newer group started, or the
	// track ended). next is the newer group, nil at the track's end.
	closed bool
	next   *group
}

// track holds the latest group and the subscriptions to it. Older groups
// stay reachable only from subscriptions still writing them.
type track struct {
	name string
	srv  *Server

	mu     sync.Mutex
	latest *group
	seq    uint64 // the next group's sequence
	ended  bool
	// subs is replaced, never changed in place, when a subscription
	// leaves (add appends past its end, which no earlier slice of it
	// sees), so a slice taken under mu stays as it was after mu is
	// released: write hands one to wakeAll.
	subs []*subscription
}

func (t *track) write(frame []byte, newGroup bool) error {
	buf := append([]byte(nil), frame...)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return ErrClosed
	}
	g := t.latest
	if newGroup {
		ng := &group{seq: t.seq}
		t.seq++
		if g != nil {
			g.closed = true
			g.next = ng
		}
		t.latest, g = ng, ng
	} else if g == nil || g.closed {
		return ErrNoGroup
	}
	g.frames = append(g.frames, buf)
	g.size += len(buf)
	for _, sub := range t.subs {
		sub.added(g, len(buf), newGroup)
	}
	if len(t.subs) > 0 {
		// Waking a writer readies its goroutine, which costs more than
		// the bookkeeping above, and the woken writers would queue on mu
		// while this loop holds it. A goroutine of its own wakes them
		// after mu is released, so what a write costs the producer (the
		// stats pass) grows with subscribers by the bookkeeping alone.
		go wakeAll(t.subs)
	}
	return nil
}

// wakeAll nudges each subscription's writer, after the write that
// positioned them (under mu) is complete.
func wakeAll(subs []*subscription) {
	for _, sub := range subs {
		sub.wakeUp()
	}
}

// end closes the latest group for good and returns the subscriptions,
// whose writers then drain and finish.
func (t *track) end() []*subscription {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ended = true
	if t.latest != nil {
		t.latest.closed = true
	}
	for _, sub := range t.subs {
		sub.wakeUp()
	}
	return append([]*subscription(nil), t.subs...)
}

// add registers sub at the latest group's first frame, so a late
// subscriber starts from a group's beginning (a compressed track's
// snapshot). false if the track has ended.
func (t *track) add(sub *subscription) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return false
	}
	sub.cur = t.latest
	if sub.cur != nil {
		sub.queued = sub.cur.size
	}
	t.subs = append(t.subs, sub)
	return true
}

func (t *track) remove(sub *subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, s := range t.subs {
		if s == sub {
			// A new array (the full slice expression caps the prefix), so
			// a slice a wakeAll holds keeps its elements.
			t.subs = append(t.subs[:i:i], t.subs[i+1:]...)
			break
		}
	}
	sub.cur = nil // let old groups go
}
