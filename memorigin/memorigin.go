package memorigin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/moqstats/moqstats"
)

var (
	// ErrDuplicate is returned by Publish when a broadcast is already
	// announced at the path.
	ErrDuplicate = errors.New("path already announced")
	// ErrNotFound is returned by Subscribe when the path is not announced or
	// the broadcast has no such track.
	ErrNotFound = errors.New("not found")
	// ErrClosed is returned by WriteFrame and Close on a closed broadcast.
	ErrClosed = errors.New("broadcast closed")
	// ErrUnknownTrack is returned by WriteFrame for a track the broadcast was
	// not published with.
	ErrUnknownTrack = errors.New("unknown track")
	// ErrNoGroup is returned by AppendFrame on a track with no group yet.
	ErrNoGroup = errors.New("no group to append to")
)

var (
	_ moqstats.Origin    = (*Origin)(nil)
	_ moqstats.Broadcast = (*Broadcast)(nil)
	_ moqstats.Appender  = (*Broadcast)(nil)
)

// Origin is an in-memory origin: the broadcasts currently announced, keyed
// by path. The zero value is ready to use, as is the result of New.
type Origin struct {
	// mu guards paths and announced. Lock order: Origin.mu before
	// Broadcast.mu, never the reverse (Broadcast.Close takes both).
	mu    sync.Mutex
	paths map[string]*Broadcast
	// announced is made by the first waiter and closed (then set to nil) by
	// the next Publish, waking all WaitAnnounced callers so they re-check
	// the map without polling.
	announced chan struct{}
}

// New returns an empty Origin.
func New() *Origin {
	return &Origin{}
}

// Publish announces a broadcast at path carrying tracks. It fails with
// ErrDuplicate if path is already announced, and with a descriptive error if
// tracks is empty or has an empty or repeated name. The returned value is a
// *Broadcast.
func (o *Origin) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	if len(tracks) == 0 {
		return nil, fmt.Errorf("memorigin: publish %q: no tracks", path)
	}
	byName := make(map[string]*track, len(tracks))
	for i, name := range tracks {
		if name == "" {
			return nil, fmt.Errorf("memorigin: publish %q: track %d has an empty name", path, i)
		}
		if _, dup := byName[name]; dup {
			return nil, fmt.Errorf("memorigin: publish %q: duplicate track %q", path, name)
		}
		byName[name] = &track{}
	}
	b := &Broadcast{
		origin: o,
		path:   path,
		names:  slices.Clone(tracks),
		tracks: byName,
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	if _, dup := o.paths[path]; dup {
		return nil, fmt.Errorf("memorigin: publish %q: %w", path, ErrDuplicate)
	}
	if o.paths == nil {
		o.paths = make(map[string]*Broadcast)
	}
	o.paths[path] = b
	if o.announced != nil {
		close(o.announced)
		o.announced = nil // the next waiter makes a fresh one
	}
	return b, nil
}

// Paths returns the currently announced paths, sorted.
func (o *Origin) Paths() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Sorted(maps.Keys(o.paths))
}

// Lookup returns the broadcast currently announced at path.
func (o *Origin) Lookup(path string) (*Broadcast, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.paths[path]
	return b, ok
}

// Latest returns a copy of the latest frame of track in the broadcast
// announced at path. It reports false if the path is not announced, the
// track does not exist or nothing has been written to it.
func (o *Origin) Latest(path, track string) ([]byte, bool) {
	b, ok := o.Lookup(path)
	if !ok {
		return nil, false
	}
	return b.Latest(track)
}

// Subscribe subscribes to track of the broadcast announced at path. It fails
// with ErrNotFound if the path is not announced or has no such track.
func (o *Origin) Subscribe(path, track string) (*Subscription, error) {
	b, ok := o.Lookup(path)
	if !ok {
		return nil, fmt.Errorf("memorigin: subscribe %q: %w", path, ErrNotFound)
	}
	return b.subscribe(track)
}

// WaitAnnounced blocks until a broadcast is announced at path and returns
// it, or returns ctx.Err() once ctx is done. A done ctx wins even if the path
// is already announced, so the result does not depend on timing.
func (o *Origin) WaitAnnounced(ctx context.Context, path string) (*Broadcast, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for {
		o.mu.Lock()
		b, ok := o.paths[path]
		if ok {
			o.mu.Unlock()
			return b, nil
		}
		if o.announced == nil {
			o.announced = make(chan struct{})
		}
		// Taken under the lock, so a Publish after our check closes
		// exactly this channel.
		wake := o.announced
		o.mu.Unlock()

		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Broadcast is a broadcast announced on an Origin. It implements
// moqstats.Broadcast and adds accessors for tests.
type Broadcast struct {
	origin *Origin
	path   string
	names  []string // Publish order; immutable

	// mu guards everything below, and the queues of all subscriptions to
	// this broadcast, so writes, subscribes and closes are atomic with
	// respect to each other (see the package doc's invariant).
	mu     sync.Mutex
	tracks map[string]*track
	closed bool
	hook   func(track string, frame []byte) error
}

// track is one track's state, guarded by Broadcast.mu.
type track struct {
	// group is the current group's sequence number (from 1; 0: none yet)
	// and frames its frames: private copies, never mutated once stored.
	group  uint64
	frames [][]byte
	writes int
	subs   map[*Subscription]struct{}
}

// Frame is one frame of a track as a subscriber reads it: its group's
// sequence number (from 1), its index in the group, and its bytes.
type Frame struct {
	Group uint64
	Index int
	Data  []byte
}

// Path returns the path the broadcast was published at.
func (b *Broadcast) Path() string { return b.path }

// Tracks returns the broadcast's track names in Publish order. The slice is
// a copy.
func (b *Broadcast) Tracks() []string { return slices.Clone(b.names) }

// WriteFrame makes frame a new group of track, holding just this frame,
// and delivers it to the track's subscribers. The frame is copied, so the
// caller may reuse it. It fails with ErrClosed after Close and
// ErrUnknownTrack for a track the broadcast was not published with. If a
// write hook is set, it runs first, and its error is returned unchanged
// with the frame dropped.
func (b *Broadcast) WriteFrame(trackName string, frame []byte) error {
	return b.write(trackName, frame, true)
}

// AppendFrame appends frame to track's current group and delivers it to
// the track's subscribers, as WriteFrame does; it fails with ErrNoGroup
// before the track's first WriteFrame. The write hook sees it like any
// write.
func (b *Broadcast) AppendFrame(trackName string, frame []byte) error {
	return b.write(trackName, frame, false)
}

func (b *Broadcast) write(trackName string, frame []byte, newGroup bool) error {
	b.mu.Lock()
	hook := b.hook
	b.mu.Unlock()
	// Run the hook outside the lock so it may call back into b (Latest,
	// Writes, Close) without deadlocking.
	if hook != nil {
		if err := hook(trackName, frame); err != nil {
			return err
		}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	op := "write"
	if !newGroup {
		op = "append"
	}
	if b.closed {
		return fmt.Errorf("memorigin: %s %q track %q: %w", op, b.path, trackName, ErrClosed)
	}
	t, ok := b.tracks[trackName]
	if !ok {
		return fmt.Errorf("memorigin: %s %q track %q: %w", op, b.path, trackName, ErrUnknownTrack)
	}
	if !newGroup && t.group == 0 {
		return fmt.Errorf("memorigin: %s %q track %q: %w", op, b.path, trackName, ErrNoGroup)
	}
	// One copy shared by the group and all queues: it is never mutated,
	// and readers get their own copy on the way out.
	f := clone(frame)
	if newGroup {
		t.group++
		clear(t.frames)
		t.frames = t.frames[:0]
	}
	t.frames = append(t.frames, f)
	t.writes++
	q := queued{t.group, len(t.frames) - 1, f}
	for s := range t.subs {
		s.queue = append(s.queue, q)
		s.signal()
	}
	return nil
}

// Close unannounces the broadcast: it is removed from the Origin, so the
// path may be published again. Subscribers receive io.EOF after draining the
// frames already queued for them. A second Close returns ErrClosed.
func (b *Broadcast) Close() error {
	b.origin.mu.Lock()
	defer b.origin.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("memorigin: close %q: %w", b.path, ErrClosed)
	}
	b.closed = true
	for _, t := range b.tracks {
		for s := range t.subs {
			s.end()
		}
		t.subs = nil
	}
	// Holding origin.mu makes the close and the unannounce one step: nobody
	// can Lookup a closed broadcast. The identity check is defensive; a
	// path maps to at most one open broadcast.
	if b.origin.paths[b.path] == b {
		delete(b.origin.paths, b.path)
	}
	return nil
}

// Closed reports whether Close has been called.
func (b *Broadcast) Closed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Writes returns the number of frames successfully written (or appended)
// to track: frames rejected by an error or by the write hook are not
// counted. It returns 0 for an unknown track.
func (b *Broadcast) Writes(trackName string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.tracks[trackName]; ok {
		return t.writes
	}
	return 0
}

// Latest returns a copy of the latest frame written to track (the last
// frame of its current group). It reports false for an unknown track or
// one never written to. It keeps working after Close.
func (b *Broadcast) Latest(trackName string) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tracks[trackName]
	if !ok || t.group == 0 {
		return nil, false
	}
	return clone(t.frames[len(t.frames)-1]), true
}

// Group returns track's current group: its sequence number (from 1) and
// copies of its frames, in order. It reports false for an unknown track
// or one never written to. It keeps working after Close.
func (b *Broadcast) Group(trackName string) (seq uint64, frames [][]byte, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tracks[trackName]
	if !ok || t.group == 0 {
		return 0, nil, false
	}
	for _, f := range t.frames {
		frames = append(frames, clone(f))
	}
	return t.group, frames, true
}

// SetWriteHook installs hook to run at the start of every WriteFrame, before
// any other check, with WriteFrame's arguments (frame is valid only during
// the call). A non-nil error from hook is returned from WriteFrame and the
// frame is dropped: not stored, not counted, not delivered. This lets tests
// inject write failures. A nil hook removes it. The hook runs without the
// broadcast's lock held, so it may call the broadcast's methods.
func (b *Broadcast) SetWriteHook(hook func(track string, frame []byte) error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hook = hook
}

// subscribe registers a subscription to trackName, seeded with the
// current group. Seeding and registering under one lock hold is what makes the
// subscriber's view contiguous.
func (b *Broadcast) subscribe(trackName string) (*Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tracks[trackName]
	if !ok {
		return nil, fmt.Errorf("memorigin: subscribe %q track %q: %w", b.path, trackName, ErrNotFound)
	}
	if b.closed {
		// Closed between the Origin lookup and here: it is no longer
		// announced.
		return nil, fmt.Errorf("memorigin: subscribe %q: %w", b.path, ErrNotFound)
	}
	s := &Subscription{
		b:      b,
		track:  t,
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	for i, f := range t.frames {
		s.queue = append(s.queue, queued{t.group, i, f})
	}
	if t.subs == nil {
		t.subs = make(map[*Subscription]struct{})
	}
	t.subs[s] = struct{}{}
	return s, nil
}

// Subscription reads one track of one Broadcast: the current group at
// subscribe time (if any), from its first frame, then every later frame in
// write order. It stays tied to that Broadcast even if the path is later
// published again. Its queue is unbounded.
type Subscription struct {
	b     *Broadcast
	track *track

	// Guarded by b.mu.
	queue    []queued // shared, immutable frames
	ended    bool     // broadcast closed or subscription closed; done is closed
	canceled bool     // Close was called: drop the queue, report io.EOF

	// notify holds one token when the queue may be non-empty; buffered so
	// writers never block. done is closed when ended is set.
	notify chan struct{}
	done   chan struct{}
}

// queued is a frame in a subscription's queue.
type queued struct {
	group uint64
	index int
	data  []byte
}

// Next returns the next frame, blocking until one is available. It returns
// io.EOF once the broadcast is closed and every queued frame has been read,
// or at once after Close. It returns ctx.Err() if ctx is done, even if a
// frame is queued, so a cancelled reader stops deterministically. The
// returned slice is the caller's own copy.
func (s *Subscription) Next(ctx context.Context) ([]byte, error) {
	f, err := s.NextFrame(ctx)
	return f.Data, err
}

// NextFrame is Next with the frame's group and index in it.
func (s *Subscription) NextFrame(ctx context.Context) (Frame, error) {
	if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	for {
		if f, ok, eof := s.poll(); ok {
			return f, nil
		} else if eof {
			return Frame{}, io.EOF
		}
		select {
		case <-s.notify:
		case <-s.done:
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		}
	}
}

// TryNext is Next without blocking: it returns the next frame and true, or
// false if none is queued right now or the subscription has ended.
func (s *Subscription) TryNext() ([]byte, bool) {
	f, ok := s.TryNextFrame()
	return f.Data, ok
}

// TryNextFrame is TryNext with the frame's group and index in it.
func (s *Subscription) TryNextFrame() (Frame, bool) {
	f, ok, _ := s.poll()
	return f, ok
}

// Close unsubscribes: queued frames are dropped and later calls to Next
// return io.EOF. Calling it again does nothing.
func (s *Subscription) Close() {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	s.canceled = true
	s.queue = nil
	delete(s.track.subs, s)
	s.end()
}

// poll pops the next frame if one is queued. eof reports that none is and
// none ever will be.
func (s *Subscription) poll() (frame Frame, ok, eof bool) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.canceled {
		return Frame{}, false, true
	}
	if len(s.queue) == 0 {
		return Frame{}, false, s.ended
	}
	f := s.queue[0]
	s.queue[0] = queued{} // let the frame be collected once every reader is past it
	s.queue = s.queue[1:]
	if len(s.queue) > 0 {
		// The token we consumed may have stood for several frames; pass
		// one on so a concurrent Next on this subscription is not
		// stranded.
		s.signal()
	}
	return Frame{f.group, f.index, clone(f.data)}, true, false
}

// signal leaves a wake-up token without blocking. Callers hold b.mu.
func (s *Subscription) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// end marks the subscription ended and wakes its readers. Callers hold
// b.mu; safe to call more than once.
func (s *Subscription) end() {
	if !s.ended {
		s.ended = true
		close(s.done)
	}
}

// clone copies a frame, returning a non-nil slice even for an empty frame
// so a stored empty frame reads back as empty, not as missing.
func clone(f []byte) []byte {
	return append(make([]byte, 0, len(f)), f...)
}
