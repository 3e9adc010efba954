package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/memorigin"
)

// Source yields the frames of one track of a stats broadcast, in order.
// *memorigin.Subscription is one; a relay's own subscription type needs a
// few lines to become one. A Source that is also a FrameSource tells
// where each frame sits, which a compressed track needs.
type Source interface {
	// Next returns the next frame, blocking until there is one. It
	// returns io.EOF once the track ended (its broadcast closed), and
	// ctx.Err() once ctx is done.
	Next(ctx context.Context) ([]byte, error)
}

// Frame is one frame of a track with its place in it: its group's
// sequence number and its index in the group. It is memorigin's Frame,
// so that *memorigin.Subscription is a FrameSource.
type Frame = memorigin.Frame

// FrameSource is a Source that also tells each frame's group and index,
// as MoQ subscriptions deliver them. Follow needs one for a compressed
// track (a delta only decodes after the frames of its group before it),
// and uses one on a plain track to tell skipped groups (Aggregator.Gap).
type FrameSource interface {
	Source
	// NextFrame is Next with the frame's group and index.
	NextFrame(ctx context.Context) (Frame, error)
}

var _ FrameSource = (*memorigin.Subscription)(nil)

// FollowOptions configures Follow.
type FollowOptions struct {
	// Now stamps frames as they arrive; default time.Now.
	Now func() time.Time
	// OnError receives frames the Aggregator rejected (a *FrameError or
	// ErrKeyLimit, wrapped with the node and track); Follow skips them
	// and goes on. nil drops them.
	OnError func(error)
}

func (o FollowOptions) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o FollowOptions) report(err error) {
	if o.OnError != nil {
		o.OnError(err)
	}
}

// Follow feeds agg with the frames src yields for node's track, until src
// ends or fails or ctx is done. When src returns io.EOF the track ended:
// Follow calls agg.EndTrack and returns nil. Otherwise it returns the error
// (ctx.Err() after a cancel). Each frame is stamped with opts.Now when it
// arrives.
//
// track may be a compressed sibling ("publisher.json.z"); src must then
// be a FrameSource, and Follow rebuilds the values with a
// CompressedTrack: they reach agg as the plain track's, so follow one
// flavor of each track, not both (the Aggregator keeps one state per
// plain track, and would apply every value twice). Frames it cannot
// apply go to opts.OnError (a late join mid-group: ErrMissingSnapshot
// until the next group). On a FrameSource, a frame that does not follow
// the one before it (a group skipped, or a frame of a group) is reported
// to agg as a Gap.
func Follow(ctx context.Context, agg *Aggregator, node, track string, src Source, opts FollowOptions) error {
	t, err := ParseTrack(track)
	if err != nil {
		return err
	}
	fs, placed := src.(FrameSource)
	if t.Compressed && !placed {
		return fmt.Errorf("consumer: follow node %q track %q: a compressed track needs a FrameSource (each frame's group and index); %T is not one", node, track, src)
	}
	f := newFeed(agg, node, track, t)
	for {
		var fr Frame
		var err error
		if placed {
			fr, err = fs.NextFrame(ctx)
		} else {
			fr.Data, err = src.Next(ctx)
		}
		if errors.Is(err, io.EOF) {
			f.end(opts.now())
			return nil
		}
		if err != nil {
			return fmt.Errorf("consumer: follow node %q track %q: %w", node, track, err)
		}
		if placed {
			err = f.frame(opts.now(), fr.Group, fr.Index, fr.Data)
		} else {
			err = f.unplaced(opts.now(), fr.Data)
		}
		if err != nil {
			opts.report(err)
		}
	}
}

// feed applies the frames of one track of one node to an Aggregator: a
// plain track's as they are, a compressed one's through a
// CompressedTrack. It tells the Aggregator of frames lost (Gap). A feed
// is owned by one goroutine.
type feed struct {
	agg   *Aggregator
	node  string
	name  string
	track Track
	z     *CompressedTrack // nil for a plain track

	// last is the place of the last frame received, valid if hasLast.
	last    [2]uint64
	hasLast bool
}

func newFeed(agg *Aggregator, node, name string, t Track) *feed {
	f := &feed{agg: agg, node: node, name: name, track: t}
	if t.Compressed {
		f.z = NewCompressedTrack(t.Kind, agg.cfg.Decoder)
	}
	return f
}

// frame applies frame index of group, received at time at. A frame that
// does not follow the last one received, or that a compressed track
// cannot apply, means values were lost: a Gap.
func (f *feed) frame(at time.Time, group uint64, index int, data []byte) error {
	if index < 0 {
		return located(&FrameError{Kind: ErrFrameOrder, Detail: "negative index", Group: group, Index: index, placed: true}, f.node, f.name)
	}
	pos := [2]uint64{group, uint64(index)}
	if f.hasLast && pos != [2]uint64{f.last[0] + 1, 0} && pos != [2]uint64{f.last[0], f.last[1] + 1} && cmpPos(pos, f.last) > 0 {
		f.gap(at)
	}
	stale := f.hasLast && cmpPos(pos, f.last) <= 0
	if !stale {
		f.last, f.hasLast = pos, true
	}
	if f.z == nil {
		if stale {
			// A plain frame is a whole cumulative value, so one placed
			// before the last applied is older than what the Aggregator
			// holds: applied, it would look like a reset and count the
			// node's totals twice.
			return located(&FrameError{Kind: ErrFrameOrder, Detail: "at or before frame " + strconv.FormatUint(f.last[0], 10) + "." + strconv.FormatUint(f.last[1], 10), Group: group, Index: index, placed: true}, f.node, f.name)
		}
		return f.agg.Observe(f.node, f.name, at, data)
	}
	if err := f.z.Apply(group, index, data); err != nil {
		if !errors.Is(err, ErrFrameOrder) {
			f.gap(at) // a value is lost, and with it what it showed
		}
		return located(err, f.node, f.name)
	}
	return f.observe(at)
}

// unplaced applies a frame of a plain track whose place is unknown.
func (f *feed) unplaced(at time.Time, data []byte) error {
	if f.z != nil {
		return located(&FrameError{Kind: ErrMissingSnapshot, Detail: "a frame of a compressed track without its group and index"}, f.node, f.name)
	}
	return f.agg.Observe(f.node, f.name, at, data)
}

// observe hands the compressed track's value to the Aggregator.
func (f *feed) observe(at time.Time) error {
	if f.track.Kind == SessionsKind {
		return f.agg.ObservePresence(f.node, f.track, at, f.z.Presence())
	}
	return f.agg.ObserveTraffic(f.node, f.track, at, f.z.Traffic())
}

func (f *feed) gap(at time.Time) {
	// Gap fails only for a name that is not a stats track, which newFeed
	// was given parsed.
	_ = f.agg.Gap(f.node, f.name, at)
}

// end ends the track: its broadcast closed, or a new one replaced it.
func (f *feed) end(at time.Time) {
	f.agg.EndTrack(f.node, f.name, at)
	f.hasLast = false
	if f.z != nil {
		f.z.Reset()
	}
}

func cmpPos(a, b [2]uint64) int {
	return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
}

// Origin is a moqstats.Origin that feeds an Aggregator with every frame a
// Stats writes, and passes everything on to another Origin (if any): an
// in-process consumer that needs no subscription, for a relay that
// exports its own counters (to Prometheus, say) and publishes them too.
//
// A Stats with Config.Compressed also writes a compressed sibling of
// every track. The Origin passes those frames on and feeds the Aggregator
// the plain frames only: both flavors carry the same values, and the
// Aggregator keeps one state per plain track, so feeding both would apply
// every value twice (each tick's rate measured over no time). The plain
// frame is the value itself, with nothing to inflate or patch.
type Origin struct {
	next moqstats.Origin // nil: publish nowhere else
	agg  *Aggregator
	opts OriginOptions
}

// OriginOptions configures NewOrigin.
type OriginOptions struct {
	// Prefix is the Stats' prefix, to name the node from the path it
	// publishes at; "" means moqstats.DefaultPrefix.
	Prefix string
	// Now stamps frames as they are written; default time.Now.
	Now func() time.Time
	// OnError receives frames the Aggregator rejected, which cannot happen
	// with a well-behaved Stats; nil drops them. It never fails a write.
	OnError func(error)
}

// NewOrigin returns an Origin that publishes through next (nil: nowhere,
// only into agg) and feeds agg.
func NewOrigin(next moqstats.Origin, agg *Aggregator, opts OriginOptions) *Origin {
	return &Origin{next: next, agg: agg, opts: opts}
}

var (
	_ moqstats.Origin    = (*Origin)(nil)
	_ moqstats.Broadcast = (*originBroadcast)(nil)
	_ moqstats.Appender  = (*appendingBroadcast)(nil)
)

// Publish publishes through the next Origin, if any, and returns a
// broadcast whose plain frames also reach the Aggregator, under the node
// path names. The broadcast is a moqstats.Appender, as a compressed Stats
// needs, when the next Origin's is (or when there is no next Origin).
// A path outside <prefix>/node is an error: the Origin's Prefix does not
// match the Stats'.
func (o *Origin) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	node, ok := NodeName(o.opts.Prefix, path)
	if !ok {
		return nil, fmt.Errorf("consumer: publish %q: not a stats broadcast path under prefix %q", path, o.opts.Prefix)
	}
	b := &originBroadcast{o: o, node: node, tracks: tracks}
	if o.next == nil {
		return &appendingBroadcast{originBroadcast: b}, nil
	}
	nb, err := o.next.Publish(path, tracks)
	if err != nil {
		return nil, err
	}
	b.next = nb
	if app, ok := nb.(moqstats.Appender); ok {
		return &appendingBroadcast{originBroadcast: b, app: app}, nil
	}
	return b, nil
}

type originBroadcast struct {
	o      *Origin
	next   moqstats.Broadcast
	node   string
	tracks []string
	once   sync.Once
}

// WriteFrame writes through first: a frame the next Origin refused did not
// reach the track, and the Stats writes it again on its next pass. A
// compressed track's frame goes to the next Origin only.
func (b *originBroadcast) WriteFrame(track string, frame []byte) error {
	if b.next != nil {
		if err := b.next.WriteFrame(track, frame); err != nil {
			return err
		}
	}
	if strings.HasSuffix(track, moqstats.CompressedSuffix) {
		return nil
	}
	now := FollowOptions{Now: b.o.opts.Now}.now()
	if err := b.o.agg.Observe(b.node, track, now, frame); err != nil && b.o.opts.OnError != nil {
		b.o.opts.OnError(err)
	}
	return nil
}

// Close closes the next broadcast and ends the node's tracks.
func (b *originBroadcast) Close() error {
	var err error
	if b.next != nil {
		err = b.next.Close()
	}
	b.once.Do(func() {
		now := FollowOptions{Now: b.o.opts.Now}.now()
		for _, t := range b.tracks {
			if !strings.HasSuffix(t, moqstats.CompressedSuffix) {
				b.o.agg.EndTrack(b.node, t, now)
			}
		}
	})
	return err
}

// appendingBroadcast is an originBroadcast whose next broadcast, if any,
// appends frames to groups: the compressed tracks' deltas go through it.
type appendingBroadcast struct {
	*originBroadcast
	app moqstats.Appender // nil: publish nowhere
}

// AppendFrame appends to the next broadcast's group; deltas of compressed
// tracks do not reach the Aggregator (the plain frames carry their
// values).
func (b *appendingBroadcast) AppendFrame(track string, frame []byte) error {
	if b.app == nil {
		return nil
	}
	return b.app.AppendFrame(track, frame)
}
