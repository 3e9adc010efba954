// Package follow reads stats over moq-lite: Cluster follows every node
// that publishes under a prefix on one server, as nodes come and go, and
// feeds a consumer.Aggregator, the way consumer.FollowHTTP follows one
// node over HTTP.
//
// Its invariant is that a frame is never guessed: every frame applied is
// one the server delivered, in its group's order, and every place where
// frames may be missing (a subscription opened, a group skipped, a group
// whose stream was cut) is reported to the Aggregator as a Gap before the
// frames after it are applied, so the Aggregator never measures an
// absence across it. It holds because each track is read by one goroutine,
// which reports the Gap itself before it takes the next frame.
//
// It is its own package so that a relay that only serves stats with
// moqlite does not link the consumer's JSON decoder.
package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/transport"
)

// Dialer opens a session to a moq-lite server: wsconn.Dial, quicconn.Dial
// or quicconn.DialWebTransport wrapped with their arguments.
type Dialer func(ctx context.Context) (transport.Session, error)

// Options configures Cluster. Zero values mean the defaults.
type Options struct {
	// Prefix is the producers' prefix (moqstats.Config.Prefix); ""
	// means moqstats.DefaultPrefix. Cluster asks for every broadcast
	// under it and follows those that name a node (consumer.NodeName).
	Prefix string
	// Compressed follows each track's ".json.z" sibling where the node
	// publishes one, and the plain track where it does not.
	Compressed bool
	// Tracks are the plain tracks followed on each node; nil means
	// moqstats.Tracks(). A track a node does not publish is skipped.
	Tracks []string
	// Client configures each session's Client.
	Client moqlite.ClientConfig
	// MinBackoff and MaxBackoff bound the wait before a redial, which
	// doubles after each session that announced nothing (with jitter)
	// and restarts from MinBackoff after one that did; defaults
	// consumer.DefaultMinBackoff and consumer.DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// MaxNodes caps the broadcasts followed at once on one session; an
	// announce past it is reported and skipped, so a server cannot make
	// a follower open subscriptions without bound. 0 means 1024.
	MaxNodes int
	// EndGrace is how long a node announced again waits for the
	// subscriptions of its previous broadcast to deliver their final
	// frames and end before they are cut; 0 means 5s.
	EndGrace time.Duration
	// Now stamps frames as they arrive; default time.Now.
	Now func() time.Time
	// OnError receives every failure Cluster recovers from: dials and
	// sessions that failed, subscriptions refused, frames the Aggregator
	// rejected. nil drops them.
	OnError func(error)
}

func (o *Options) defaults() {
	if o.Tracks == nil {
		o.Tracks = moqstats.Tracks()
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = consumer.DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = consumer.DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.MaxNodes <= 0 {
		o.MaxNodes = 1024
	}
	if o.EndGrace <= 0 {
		o.EndGrace = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

func (o *Options) report(err error) {
	if o.OnError != nil {
		o.OnError(err)
	}
}

// Cluster feeds agg with the stats of every node that publishes under the
// prefix on the server dial reaches, until ctx is done, and then returns
// ctx.Err(). One server is enough to follow a whole cluster: Cluster sends
// ANNOUNCE_INTEREST on the prefix, follows each node as its broadcast is
// announced, and lets each track end (consumer.Aggregator.EndTrack) when
// the broadcast's subscription ends, after its final frames.
//
// A session that fails is dialed again, with backoff. Frames published
// while no subscription was open are lost, and Cluster says so instead of
// guessing: every subscription it opens is reported to agg as a Gap (the
// first one too, since it starts at the track's latest group), as is every
// group a frame of which may be missing: a group skipped, or one whose
// stream was cut before its end. A node announced again (a restart, a new
// incarnation) is followed once its previous broadcast's subscriptions
// ended, or after Options.EndGrace.
func Cluster(ctx context.Context, agg *consumer.Aggregator, dial Dialer, opts Options) error {
	opts.defaults()
	prefix := opts.Prefix
	if prefix == "" {
		prefix = moqstats.DefaultPrefix
	}
	delay := opts.MinBackoff
	for {
		announced, err := followSession(ctx, agg, dial, prefix, &opts)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			opts.report(err)
		}
		if announced {
			delay = opts.MinBackoff
		}
		// Full jitter in [delay/2, delay): followers that lost the same
		// server do not redial it at once.
		wait := delay/2 + rand.N(delay/2+1)
		delay = min(2*delay, opts.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// maxSubscribing bounds a session's subscriptions awaiting SUBSCRIBE_OK.
const maxSubscribing = 32

// nodeFollow is the following of one announced broadcast.
type nodeFollow struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// followSession follows the nodes of one session until it ends or ctx is
// done, and reports whether the server announced anything.
func followSession(ctx context.Context, agg *consumer.Aggregator, dial Dialer, prefix string, opts *Options) (announced bool, err error) {
	sess, err := dial(ctx)
	if err != nil {
		return false, fmt.Errorf("follow: dial: %w", err)
	}
	client, err := moqlite.NewClient(ctx, sess, opts.Client)
	if err != nil {
		sess.CloseWithError(moqlite.CodeNone, "")
		return false, fmt.Errorf("follow: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	nodes := map[string]*nodeFollow{}
	// Subscriptions waiting for their answer, per session: a server
	// refuses streams past a cap of those awaiting their first message
	// (moqlite's is 64), and a cluster announced at once would open
	// six per node together.
	inflight := make(chan struct{}, maxSubscribing)
	defer func() {
		// The session ended: what it still delivers is taken until the
		// followers see the end, then they are cut.
		cancel()
		for _, n := range nodes {
			<-n.done
		}
		client.Close()
	}()
	interest, err := client.Announced(prefix)
	if err != nil {
		return false, fmt.Errorf("follow: announce interest on %q: %w", prefix, err)
	}
	defer interest.Close()
	for {
		a, err := interest.Next(ctx)
		if err != nil {
			return announced, fmt.Errorf("follow: session ended: %w", err)
		}
		announced = true
		if !a.Active {
			// The broadcast's subscriptions end on their own, after
			// its final frames.
			continue
		}
		node, ok := consumer.NodeName(prefix, a.Path)
		if !ok {
			opts.report(fmt.Errorf("%w: follow: announced path %q is not a stats broadcast under %q", consumer.ErrSkippedTrack, a.Path, prefix))
			continue
		}
		if len(nodes) >= opts.MaxNodes {
			for p, n := range nodes {
				select {
				case <-n.done:
					delete(nodes, p)
				default:
				}
			}
		}
		prev := nodes[a.Path]
		if prev == nil && len(nodes) >= opts.MaxNodes {
			opts.report(fmt.Errorf("%w: follow: node %q past MaxNodes (%d)", consumer.ErrSkippedTrack, node, opts.MaxNodes))
			continue
		}
		nctx, ncancel := context.WithCancel(ctx)
		n := &nodeFollow{cancel: ncancel, done: make(chan struct{})}
		nodes[a.Path] = n
		go func() {
			defer close(n.done)
			defer ncancel()
			if prev != nil {
				// The previous broadcast on this path ended before this
				// one was announced; its final frames come first.
				grace := time.NewTimer(opts.EndGrace)
				select {
				case <-prev.done:
				case <-grace.C:
					prev.cancel()
					<-prev.done
				case <-nctx.Done():
					grace.Stop()
					return
				}
				grace.Stop()
			}
			followNode(nctx, agg, client, inflight, a.Path, node, opts)
		}()
	}
}

// followNode follows every track of one broadcast until each ended or
// ctx is done.
func followNode(ctx context.Context, agg *consumer.Aggregator, client *moqlite.Client, inflight chan struct{}, path, node string, opts *Options) {
	var wg sync.WaitGroup
	for _, plain := range opts.Tracks {
		wg.Go(func() {
			name, sub, err := subscribe(ctx, client, inflight, path, node, plain, opts)
			if err != nil {
				if !errors.Is(err, moqlite.ErrNotFound) && ctx.Err() == nil {
					opts.report(fmt.Errorf("follow node %q track %q: %w", node, plain, err))
				}
				return
			}
			defer sub.Close()
			if err := agg.Gap(node, name, opts.Now()); err != nil {
				opts.report(err)
				return
			}
			src := &frameSource{sub: sub, cut: func() {
				if err := agg.Gap(node, name, opts.Now()); err != nil {
					opts.report(err)
				}
			}}
			err = consumer.Follow(ctx, agg, node, name, src, consumer.FollowOptions{Now: opts.Now, OnError: opts.OnError})
			if err != nil && ctx.Err() == nil {
				opts.report(err)
			}
		})
	}
	wg.Wait()
}

// subscribe subscribes to plain's flavor (subscribeFlavor), and again,
// with backoff, after any failure but the track's absence, until ctx is
// done (the session ended): a refusal is a cap reached for now, such as
// the server's bound on one session's streams still waiting for their
// first message, which a follower subscribing to every track of many
// nodes at once overruns for a moment, and it reaches the client as
// ErrRefused or, when the stream is reset while the request is being
// written, as the transport's stream error; a request left unanswered
// past the handshake timeout is the same overload. Given up on, the
// track would never be followed on this session.
func subscribe(ctx context.Context, client *moqlite.Client, inflight chan struct{}, path, node, plain string, opts *Options) (string, *moqlite.Subscription, error) {
	delay := opts.MinBackoff
	for {
		select {
		case inflight <- struct{}{}:
		case <-ctx.Done():
			return plain, nil, ctx.Err()
		}
		name, sub, err := subscribeFlavor(client, path, plain, opts.Compressed)
		<-inflight
		if err == nil || errors.Is(err, moqlite.ErrNotFound) || ctx.Err() != nil {
			return name, sub, err
		}
		opts.report(fmt.Errorf("follow node %q track %q: %w; subscribing again", node, plain, err))
		wait := delay/2 + rand.N(delay/2+1)
		delay = min(2*delay, opts.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return name, nil, ctx.Err()
		case <-t.C:
		}
	}
}

// subscribeFlavor subscribes to plain's compressed sibling if compressed
// and the node publishes it, else to plain.
func subscribeFlavor(client *moqlite.Client, path, plain string, compressed bool) (string, *moqlite.Subscription, error) {
	if compressed {
		z := plain + moqstats.CompressedSuffix
		sub, err := client.Subscribe(path, z)
		if err == nil || !errors.Is(err, moqlite.ErrNotFound) {
			return z, sub, err
		}
	}
	sub, err := client.Subscribe(path, plain)
	return plain, sub, err
}

// frameSource is a consumer.FrameSource over a Subscription: each frame
// with its group's sequence and its index in the group.
type frameSource struct {
	sub   *moqlite.Subscription
	group *moqlite.Group
	index int
	// newest is the sequence of the newest group taken, if any: each
	// group is a stream of its own, and over QUIC an older one can
	// arrive after a newer one, when what it holds is already stale.
	newest   uint64
	anyTaken bool
	// cut is called when a group's stream ends before the group does:
	// its later frames are lost, which the next group's numbering
	// cannot show.
	cut func()
}

func (s *frameSource) Next(ctx context.Context) ([]byte, error) {
	f, err := s.NextFrame(ctx)
	return f.Data, err
}

func (s *frameSource) NextFrame(ctx context.Context) (consumer.Frame, error) {
	for {
		if s.group == nil {
			g, err := s.sub.NextGroup(ctx)
			if err != nil {
				return consumer.Frame{}, err
			}
			if s.anyTaken && g.Sequence <= s.newest {
				g.Stop()
				continue
			}
			s.group, s.index = g, 0
			s.newest, s.anyTaken = g.Sequence, true
		}
		data, err := s.group.ReadFrame(ctx)
		if err == nil {
			f := consumer.Frame{Group: s.group.Sequence, Index: s.index, Data: data}
			s.index++
			return f, nil
		}
		s.group = nil
		if ctx.Err() != nil {
			return consumer.Frame{}, ctx.Err()
		}
		if !errors.Is(err, io.EOF) {
			s.cut()
		}
	}
}
