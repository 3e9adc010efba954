package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/moqstats/moqstats"
)

// Source yields the frames of one track of a stats broadcast, in order.
// *memorigin.Subscription is one; a relay's own subscription type needs a
// few lines to become one.
type Source interface {
	// Next returns the next frame, blocking until there is one. It
	// returns io.EOF once the track ended (its broadcast closed), and
	// ctx.Err() once ctx is done.
	Next(ctx context.Context) ([]byte, error)
}

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
func Follow(ctx context.Context, agg *Aggregator, node, track string, src Source, opts FollowOptions) error {
	if _, err := ParseTrack(track); err != nil {
		return err
	}
	for {
		frame, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			agg.EndTrack(node, track, opts.now())
			return nil
		}
		if err != nil {
			return fmt.Errorf("consumer: follow node %q track %q: %w", node, track, err)
		}
		if err := agg.Observe(node, track, opts.now(), frame); err != nil {
			opts.report(err)
		}
	}
}

// Origin is a moqstats.Origin that feeds an Aggregator with every frame a
// Stats writes, and passes everything on to another Origin (if any): an
// in-process consumer that needs no subscription, for a relay that
// exports its own counters (to Prometheus, say) and publishes them too.
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
)

// Publish publishes through the next Origin, if any, and returns a
// broadcast whose frames also reach the Aggregator, under the node path
// names. A path outside <prefix>/node is an error: the Origin's Prefix
// does not match the Stats'.
func (o *Origin) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	node, ok := NodeName(o.opts.Prefix, path)
	if !ok {
		return nil, fmt.Errorf("consumer: publish %q: not a stats broadcast path under prefix %q", path, o.opts.Prefix)
	}
	b := &originBroadcast{o: o, node: node, tracks: tracks}
	if o.next != nil {
		nb, err := o.next.Publish(path, tracks)
		if err != nil {
			return nil, err
		}
		b.next = nb
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
// reach the track, and the Stats writes it again on its next pass.
func (b *originBroadcast) WriteFrame(track string, frame []byte) error {
	if b.next != nil {
		if err := b.next.WriteFrame(track, frame); err != nil {
			return err
		}
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
			b.o.agg.EndTrack(b.node, t, now)
		}
	})
	return err
}
