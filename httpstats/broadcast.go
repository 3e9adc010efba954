package httpstats

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Broadcast is the broadcast an Origin announced. It implements
// moqstats.Broadcast, and AppendFrame for writers that put several frames
// in a group.
type Broadcast struct {
	origin *Origin
	path   string
	names  []string // Publish order; immutable
	// etagPrefix opens every ETag of this broadcast: the Origin's id and
	// this broadcast's incarnation; immutable.
	etagPrefix string
	// firstGroup is the sequence number of every track's first group;
	// immutable.
	firstGroup uint64
	// tracks is filled by Publish and never changed after, so it may be
	// read without mu; the tracks' contents are guarded by mu.
	tracks map[string]*track

	// mu guards the tracks' contents, closed, and the state of every
	// stream on this broadcast, so a write, a subscribe and a close are
	// each atomic with respect to the others.
	mu     sync.Mutex
	closed bool
}

// kind is how a track's frames are represented over HTTP; it follows from
// the track's name.
type kind uint8

const (
	// kindJSON (".json"): a frame is compact JSON text. GET serves the
	// latest frame; an event carries it as text.
	kindJSON kind = iota
	// kindGroup (".z"): frame 0 of a group is a snapshot and later frames
	// are deltas on it, raw DEFLATE. GET serves the whole current group;
	// an event carries a frame in base64; a resynchronized stream starts
	// at frame 0.
	kindGroup
	// kindBinary (anything else): opaque bytes. GET serves the latest
	// frame; an event carries it in base64.
	kindBinary
)

func kindOf(name string) kind {
	switch {
	case strings.HasSuffix(name, ".z"):
		return kindGroup
	case strings.HasSuffix(name, ".json"):
		return kindJSON
	default:
		return kindBinary
	}
}

// track is one track's state, guarded by Broadcast.mu.
type track struct {
	name  string // immutable
	kind  kind   // immutable
	index int    // position in Publish order, for ETags; immutable

	started bool   // a WriteFrame has opened a group
	group   uint64 // the current group's sequence number, when started
	// frames are the current group's frames, 1 to MaxGroupFrames of them
	// once started. Each is a private copy never mutated after it is
	// stored, so readers may keep and use it outside the lock; the slice
	// itself is reused, so they copy the slice headers they need.
	frames  [][]byte
	streams map[*stream]struct{}
}

// position names a frame of a track: its group's sequence number and its
// index in the group.
type position struct {
	group uint64
	index int
}

// event is a frame with its position, as queued for a stream.
type event struct {
	position
	frame []byte // shared, immutable
}

// Path returns the path the broadcast was published at.
func (b *Broadcast) Path() string { return b.path }

// Tracks returns the broadcast's track names in Publish order. The slice
// is a copy.
func (b *Broadcast) Tracks() []string { return slices.Clone(b.names) }

// WriteFrame starts a new group on track holding frame, which becomes the
// track's latest frame, and queues it for the track's streams without
// waiting on any of them. The frame is copied. It fails with ErrClosed
// after Close and ErrUnknownTrack for a track the broadcast was not
// published with.
func (b *Broadcast) WriteFrame(name string, frame []byte) error {
	f := bytes.Clone(frame)
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.writable("write", name)
	if err != nil {
		return err
	}
	if t.started {
		t.group++
	} else {
		t.started, t.group = true, b.firstGroup
	}
	clear(t.frames) // drop the old group's frames for the collector
	t.frames = append(t.frames[:0], f)
	t.deliver(event{position{t.group, 0}, f})
	return nil
}

// AppendFrame appends frame to track's current group, which becomes the
// track's latest frame, and queues it for the track's streams without
// waiting on any of them. The frame is copied. Besides WriteFrame's
// errors it fails with ErrNoGroup before the track's first WriteFrame and
// with ErrGroupFull once the group holds MaxGroupFrames frames; the frame
// is then dropped.
func (b *Broadcast) AppendFrame(name string, frame []byte) error {
	f := bytes.Clone(frame)
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.writable("append", name)
	if err != nil {
		return err
	}
	switch {
	case !t.started:
		return fmt.Errorf("%w: append to track %q of %q before its first WriteFrame", ErrNoGroup, name, b.path)
	case len(t.frames) >= MaxGroupFrames:
		return fmt.Errorf("%w: append to track %q of %q: group %d holds %d frames", ErrGroupFull, name, b.path, t.group, MaxGroupFrames)
	}
	t.frames = append(t.frames, f)
	t.deliver(event{position{t.group, len(t.frames) - 1}, f})
	return nil
}

// writable returns the named track if frames may be written to it. The
// caller holds b.mu.
func (b *Broadcast) writable(op, name string) (*track, error) {
	if b.closed {
		return nil, fmt.Errorf("%w: %s to track %q of %q", ErrClosed, op, name, b.path)
	}
	t, ok := b.tracks[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s to track %q of %q", ErrUnknownTrack, op, name, b.path)
	}
	return t, nil
}

// Close unannounces the broadcast, so the Origin may publish another. Each
// of its streams is sent the events already queued for it, then an end
// event, and ends. A second Close returns ErrClosed.
func (b *Broadcast) Close() error {
	o := b.origin
	o.mu.Lock()
	defer o.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("%w: close %q again", ErrClosed, b.path)
	}
	b.closed = true
	for _, t := range b.tracks {
		if t.started {
			o.nextGroup = max(o.nextGroup, t.group+1)
		}
		for s := range t.streams {
			s.ended = true
			s.signal()
		}
	}
	// Under both locks, so nobody finds a closed broadcast current. The
	// identity check is defensive: only the current broadcast is open.
	if o.current == b {
		o.current = nil
	}
	return nil
}

// Closed reports whether Close has been called.
func (b *Broadcast) Closed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// deliver queues ev for every stream of t. The caller holds the
// broadcast's mu.
func (t *track) deliver(ev event) {
	for s := range t.streams {
		s.push(ev)
	}
}

// appendCurrent appends to dst what a client positioned after `after`
// (if has) needs to catch up with the track: the frames after it if it
// names a frame of the current group; otherwise the current group from
// frame 0 for a group track, and the latest frame for any other. The
// caller holds the broadcast's mu.
func (t *track) appendCurrent(dst []event, after position, has bool) []event {
	if !t.started {
		return dst
	}
	from := 0
	switch {
	case has && after.group == t.group && after.index < len(t.frames):
		from = after.index + 1
	case t.kind != kindGroup:
		from = len(t.frames) - 1
	}
	for i := from; i < len(t.frames); i++ {
		dst = append(dst, event{position{t.group, i}, t.frames[i]})
	}
	return dst
}

// view is a copy of what GET serves for one track, taken under the
// broadcast's lock and used after it.
type view struct {
	b       *Broadcast
	t       *track // for the immutable name and kind only
	started bool
	group   uint64
	last    int      // index of the latest frame in the group
	frames  [][]byte // a group track's whole group, else the latest frame
}

// etag names the view's group and last frame, within its track, its
// broadcast's incarnation and its Origin:
// "<origin>.<incarnation>.<track index>.<group>.<frame>".
func (v *view) etag() string {
	buf := make([]byte, 0, len(v.b.etagPrefix)+32)
	buf = append(buf, v.b.etagPrefix...)
	buf = strconv.AppendInt(buf, int64(v.t.index), 10)
	buf = append(buf, '.')
	buf = strconv.AppendUint(buf, v.group, 10)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, int64(v.last), 10)
	buf = append(buf, '"')
	return string(buf)
}
