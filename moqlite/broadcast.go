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
	// start is the track's byte offset (track.written) at the group's
	// first frame, so a subscriber knows how far behind it is.
	start int64
	// placeholder marks the empty group a track holds before its first
	// write, so a subscriber that joins then has a place to wait; it
	// never gets a frame and opens no stream.
	placeholder bool
	// closed: no frame will be appended (a newer group started, or the
	// track ended). next is the newer group; nil at the track's end, or
	// once the group is evicted from the track's window (then cut says
	// whether a subscriber was still in it).
	closed bool
	next   *group
	cut    bool
	// refs counts the subscriptions whose cur is this group.
	refs int
}

// track holds its recent groups, from oldest to latest linked by next,
// and the subscriptions to them. Older groups stay reachable only from a
// subscription still writing one, and then one each: eviction cuts their
// link forward (see the package doc, Invariants).
type track struct {
	name string
	srv  *Server

	mu      sync.Mutex
	latest  *group // nil before the first write or subscriber
	oldest  *group // the window's first group; latest reached by next
	written int64  // bytes written to the track, the producer's offset
	seq     uint64 // the next group's sequence
	ended   bool
	// subs is replaced, never changed in place, when a subscription
	// leaves (add appends past its end, which no earlier slice of it
	// sees), so a slice taken under mu stays as it was after mu is
	// released: write hands one to wakeAll.
	subs []*subscription
}

// write appends frame to the latest group, or to a new one. It does the
// same work however many subscribe: it neither visits nor moves any
// subscription (each writer finds on waking how far behind it is, and
// skips itself); evicting groups from the window is amortized, each group
// evicted once.
func (t *track) write(frame []byte, newGroup bool) error {
	buf := append([]byte(nil), frame...)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return ErrClosed
	}
	g := t.latest
	if newGroup {
		ng := &group{seq: t.seq, start: t.written}
		t.seq++
		if g != nil {
			g.closed = true
			g.next = ng
		} else {
			t.oldest = ng
		}
		t.latest, g = ng, ng
	} else if g == nil || g.closed || g.placeholder {
		return ErrNoGroup
	}
	g.frames = append(g.frames, buf)
	g.size += len(buf)
	t.written += int64(len(buf))
	t.evict()
	if len(t.subs) > 0 {
		// Waking a writer readies its goroutine, which costs more than
		// the write itself, and the woken writers would queue on mu
		// while a loop here held it. A goroutine of its own wakes them
		// after mu is released, so what a write costs the producer (the
		// stats pass) does not grow with subscribers.
		go wakeAll(t.subs)
	}
	return nil
}

// evict moves the window's start past the groups no subscription needs:
// those no subscription is in, and those whose subscriptions are more than
// MaxQueuedBytes behind (they skip to the latest group on waking, so the
// rest of the chain is not theirs to hold). An evicted group's link
// forward is cut, so a writer stalled in it holds that group alone. Each
// group is evicted once, so a write's share is O(1). Called under mu.
func (t *track) evict() {
	limit := int64(t.srv.cfg.MaxQueuedBytes)
	for o := t.oldest; o != t.latest; o = t.oldest {
		// Everything after o is more than limit: a writer in o is at
		// least that far behind (its offset is at most o's end).
		far := t.written-o.next.start > limit
		if o.refs > 0 && !far {
			break
		}
		o.cut = o.refs > 0
		t.oldest, o.next = o.next, nil
	}
}

// wakeAll nudges each subscription's writer, after the write that
// woke them is complete (under mu).
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
// snapshot); before the first write, at a placeholder that the first group
// follows. false if the track has ended.
func (t *track) add(sub *subscription) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return false
	}
	if t.latest == nil {
		t.latest = &group{placeholder: true}
		t.oldest = t.latest
	}
	sub.cur, sub.idx, sub.pos = t.latest, 0, t.latest.start
	t.latest.refs++
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
	if sub.cur != nil {
		sub.cur.refs--
		sub.cur = nil // let old groups go
	}
}
