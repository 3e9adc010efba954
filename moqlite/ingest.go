package moqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqstats/moqstats"
)

// IngestConfig makes a Server subscribe to the broadcasts its peers
// announce and publish each as its own, so that its subscribers (a
// follow.Cluster beside it, other relays) read them as they read the
// server's: an aggregator endpoint that nodes dial and publish into with
// Uplink or ClientConfig.Publish.
//
// A relayed group keeps its publisher's sequence, and a group that reached
// the server cut short is followed by a sequence skipped, so a subscriber
// sees every loss upstream as a skip (a consumer's Gap), never as a whole
// group. The relayed broadcast ends once every track's subscription to the
// peer ended, after its final frames, when the peer closes its broadcast or
// the session ends; a subscription the peer resets while the session stays
// up ends its track only (@moq/lite resets one to a track it does not
// publish). A peer's unannounce ends its subscriptions too, once
// no group stream has arrived for ClientConfig.EndLinger's default: a
// publisher may stop announcing a broadcast and leave the subscriptions
// to it open (@moq/lite does when an application closes its Broadcast and
// not the Tracks it was asked for).
type IngestConfig struct {
	// Prefix is what the server asks each peer to announce; "" means
	// moqstats.DefaultPrefix. Only broadcasts under it are relayed.
	Prefix string
	// Tracks are subscribed on each broadcast announced; the relayed
	// broadcast has those the peer publishes. nil means moqstats.Tracks()
	// and their compressed siblings.
	Tracks []string
	// MaxBroadcasts caps the broadcasts relayed from one session at once;
	// one past it is refused (Refusals.Broadcasts). 0 means 16.
	MaxBroadcasts int
	// Linger is how long a relayed broadcast stays published after its
	// peer's session was lost (not its broadcast closed), for the peer
	// to redial and go on; 0 means 30s. A peer announcing it again in
	// that time is taken for the same broadcast: a node that restarted
	// shows as counters going back, as a relay cannot tell the two
	// apart.
	Linger time.Duration
}

func (c IngestConfig) withDefaults() IngestConfig {
	if c.Prefix == "" {
		c.Prefix = moqstats.DefaultPrefix
	}
	if c.Tracks == nil {
		for _, t := range moqstats.Tracks() {
			c.Tracks = append(c.Tracks, t, t+moqstats.CompressedSuffix)
		}
	}
	if c.MaxBroadcasts <= 0 {
		c.MaxBroadcasts = 16
	}
	if c.Linger <= 0 {
		c.Linger = 30 * time.Second
	}
	return c
}

func (ss *session) ingestClientConfig() ClientConfig {
	return ClientConfig{HandshakeTimeout: ss.srv.cfg.HandshakeTimeout}
}

// ingest relays the broadcasts the peer announces under the prefix until
// the session ends.
func (ss *session) ingest(c *Client) {
	cfg := ss.srv.cfg.Ingest.withDefaults()
	interest, err := c.Announced(cfg.Prefix)
	if err != nil {
		// A peer that publishes nothing may refuse; it can still
		// subscribe.
		ss.srv.log.Debug("moqlite: ingest: announce interest refused", "err", err)
		return
	}
	defer interest.Close()
	relays := map[string]*relayRun{} // by path, the relay of its latest announce
	for {
		a, err := interest.Next(ss.ctx)
		if err != nil {
			return
		}
		prev := relays[a.Path]
		if !a.Active {
			// Its subscriptions end, after its final frames.
			if prev != nil && !prev.ended {
				prev.ended = true
				close(prev.unannounced)
			}
			continue
		}
		run := &relayRun{done: make(chan struct{}), unannounced: make(chan struct{})}
		relays[a.Path] = run
		go func() {
			defer close(run.done)
			if prev != nil {
				// The peer announced the path again: the previous
				// broadcast's relay ends first (its final frames), so
				// the path is free to publish.
				select {
				case <-prev.done:
				case <-ss.ctx.Done():
					return
				}
			}
			if err := ss.relay(c, a.Path, cfg, run.unannounced); err != nil {
				ss.srv.log.Debug("moqlite: ingest refused a broadcast", "path", a.Path, "err", err)
			}
		}()
	}
}

// relayRun is the relay of one announce of a path. Only ingest's loop
// touches ended.
type relayRun struct {
	done        chan struct{} // closed when the relay ended
	unannounced chan struct{} // closed when the peer unannounced the path
	ended       bool          // unannounced is closed
}

// relayed is a broadcast relayed from a peer, kept across its sessions.
type relayed struct {
	b        *Broadcast
	attached bool        // a session relays into it now
	linger   *time.Timer // set while detached
	tracks   map[string]*relayState
}

// relayState is where a relayed track is: the group it writes, and the
// offset from the peer's sequences to its own. It outlives a lost session,
// so the next one goes on where it stopped.
type relayState struct {
	started  bool
	newest   uint64 // the sequence of the group written last
	upstream uint64 // ... and the peer's sequence for it
	frames   int    // frames of it written
	complete bool   // its stream ended cleanly: no frame of it is missing
	skip     uint64
}

// relay publishes the peer's broadcast at path as the server's own until
// its subscriptions end, which they do once the peer ends them or
// unannounced is closed.
func (ss *session) relay(c *Client, path string, cfg IngestConfig, unannounced <-chan struct{}) error {
	srv := ss.srv
	refused := &srv.stats.broadcastsRefused
	if err := srv.authorize(ss.info, Request{Action: ActionPublish, Path: path}); err != nil {
		refused.Add(1)
		return err
	}
	if !ss.open(&ss.relays, cfg.MaxBroadcasts, refused) {
		return fmt.Errorf("%w: past %d broadcasts relayed from one session", ErrRefused, cfg.MaxBroadcasts)
	}
	defer ss.closeOne(&ss.relays)
	// Subscribe first, then publish what the peer has: a subscriber of
	// the relay never waits on a track that will not come.
	subs := make([]*Subscription, len(cfg.Tracks))
	var wg sync.WaitGroup
	for i, name := range cfg.Tracks {
		wg.Go(func() {
			sub, err := c.Subscribe(path, name)
			if err != nil && !errors.Is(err, ErrNotFound) {
				srv.log.Debug("moqlite: ingest: subscribe failed", "path", path, "track", name, "err", err)
			}
			subs[i] = sub
		})
	}
	wg.Wait()
	defer func() {
		for _, sub := range subs {
			if sub != nil {
				sub.Close()
			}
		}
	}()
	var names []string
	for i, sub := range subs {
		if sub != nil {
			names = append(names, cfg.Tracks[i])
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("%w: %q publishes none of the tracks ingested", ErrNotFound, path)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-unannounced:
		case <-stop:
			return
		}
		// The peer no longer publishes the broadcast: each subscription
		// ends as if the peer had ended it, once the group streams sent
		// before the unannounce are in (streams are independent, so
		// they may arrive after it).
		for _, sub := range subs {
			if sub != nil {
				go sub.lingerEnd(c.cfg.EndLinger)
			}
		}
	}()
	r, err := srv.attachRelay(path, names)
	if err != nil {
		refused.Add(1)
		return err
	}
	var unclean atomic.Bool
	for i, sub := range subs {
		st := r.tracks[cfg.Tracks[i]]
		if sub == nil || st == nil {
			continue
		}
		wg.Go(func() {
			if !relayTrack(ss.ctx, r.b, cfg.Tracks[i], sub, st) {
				unclean.Store(true)
			}
		})
	}
	wg.Wait()
	// c.ctx is the transport's own, which ends with it; ss.ctx follows a
	// moment later.
	lost := func() bool { return c.ctx.Err() != nil || ss.ctx.Err() != nil }
	if unclean.Load() && !lost() {
		// A subscription that ended with an error while the session is
		// up was reset by the peer: @moq/lite answers SUBSCRIBE_OK to
		// any track name and resets the subscription to one it does not
		// publish, which ends that track and not the broadcast. A
		// session being cut may fail its streams a moment before its
		// end shows, so an error counts as a reset only once the
		// session outlived it by EndLinger.
		select {
		case <-c.ctx.Done():
		case <-ss.ctx.Done():
		case <-time.After(c.cfg.EndLinger):
			unclean.Store(false)
		}
	}
	// A subscription may read as ended when the session was cut under
	// it; only one that ended while the session is up was ended by
	// the peer.
	if lost() {
		unclean.Store(true)
	}
	if !unclean.Load() {
		// The peer closed its broadcast: so does the relay, once its
		// subscribers hold the final frames.
		srv.mu.Lock()
		delete(srv.relayed, path)
		srv.mu.Unlock()
		return r.b.Close()
	}
	// The session was lost, not the broadcast: it stays published for
	// Linger, for the peer to come back to and go on where it stopped
	// (relayTrack), any group it missed showing as a sequence skipped.
	srv.mu.Lock()
	r.attached = false
	r.linger = time.AfterFunc(cfg.Linger, func() {
		srv.mu.Lock()
		gone := srv.relayed[path] == r && !r.attached
		if gone {
			delete(srv.relayed, path)
		}
		srv.mu.Unlock()
		if gone {
			r.b.Close()
		}
	})
	srv.mu.Unlock()
	return nil
}

// attachRelay returns the relayed broadcast at path for a session to
// write: the one left by a lost session of the peer, or a new one.
func (s *Server) attachRelay(path string, tracks []string) (*relayed, error) {
	s.mu.Lock()
	if r := s.relayed[path]; r != nil {
		defer s.mu.Unlock()
		if r.attached {
			return nil, fmt.Errorf("%w: %q is relayed from another session", ErrRefused, path)
		}
		r.linger.Stop()
		r.attached = true
		return r, nil
	}
	s.mu.Unlock()
	b, err := s.PublishBroadcast(path, tracks)
	if err != nil {
		return nil, err
	}
	r := &relayed{b: b, attached: true, tracks: map[string]*relayState{}}
	for _, name := range tracks {
		r.tracks[name] = &relayState{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.relayed == nil {
		s.relayed = map[string]*relayed{}
	}
	s.relayed[path] = r
	return r, nil
}

// relayTrack copies sub's groups into b's track until the subscription
// ends, and reports whether it ended cleanly (the peer ended it). It is
// the track's only writer.
//
// A subscription starts at the peer's latest group, from its first frame.
// After a lost session that is often the group being relayed when it was
// lost: its frames already written are skipped and the rest appended, so
// nothing shows twice (a frame older than one written would read as
// counters going back). A group of the peer's cut short, or groups missed,
// show as a sequence skipped.
func relayTrack(ctx context.Context, b *Broadcast, name string, sub *Subscription, st *relayState) bool {
	fresh := true // no group taken on this subscription yet
	for {
		g, err := sub.NextGroup(ctx)
		if err != nil {
			return err == io.EOF
		}
		resume := -1 // frames of g already written, if g goes on the group written last
		switch {
		case !st.started:
		case g.Sequence == st.upstream && !st.complete:
			resume = st.frames
		case fresh && g.Sequence < st.upstream:
			// Sequences went back on a new subscription: the peer
			// published the broadcast anew (a restart). Its counters
			// start over, which subscribers see after a skip.
			st.skip = st.newest + 2 - g.Sequence
		case g.Sequence <= st.upstream:
			g.Stop() // a stream that arrived late; what it holds is stale
			continue
		}
		fresh = false
		seq := g.Sequence + st.skip
		if resume < 0 && st.started && !st.complete && seq == st.newest+1 {
			// The group written last lacks frames, which the next
			// one's sequence must not hide.
			st.skip++
			seq++
		}
		for i := 0; ; i++ {
			frame, err := g.ReadFrame(ctx)
			if err == io.EOF {
				st.complete = true
				break
			}
			if err != nil {
				if ctx.Err() != nil {
					return false
				}
				break // its later frames are lost
			}
			switch {
			case i < resume:
				continue
			case i == 0:
				err = b.writeGroup(name, seq, frame)
				*st = relayState{started: true, newest: seq, upstream: g.Sequence, frames: 1, skip: st.skip}
			default:
				err = b.AppendFrame(name, frame)
				st.frames++
			}
			if err != nil {
				return true // the relayed broadcast closed (Shutdown)
			}
		}
	}
}
