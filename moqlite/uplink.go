package moqlite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/moqlite/transport"
)

// UplinkConfig configures an Uplink.
type UplinkConfig struct {
	// Dial opens a session to the server published into; it is called
	// again, with backoff, whenever a session ends. Required.
	Dial func(ctx context.Context) (transport.Session, error)
	// Client configures each session (its Publish is the Uplink's).
	Client ClientConfig
	// Server configures the Uplink's own server: the caps and Authorize
	// that apply to what the peer asks for, and CloseTimeout, how long a
	// broadcast's Close waits for the peer to hold its final frames.
	Server ServerConfig
	// MinBackoff and MaxBackoff bound the wait before a redial, doubling
	// after each failed dial (with jitter) and back to MinBackoff after a
	// session that was up; 0 means 250ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// OnError receives every dial and session failure the Uplink recovers
	// from; nil drops them.
	OnError func(error)
	// Drain is how long Close keeps the session up after its broadcasts
	// ended: their last group streams travel apart from the end of
	// their subscriptions, and the server tells a broadcast closed from
	// a session lost by the session still being up when its
	// subscriptions end. 0 means 1s.
	Drain time.Duration
}

// Uplink is a moqstats.Origin that publishes into a server it dials: a
// relay node pushing its stats broadcast into its cluster's aggregator
// (a Server with ServerConfig.Ingest), as the reference publishes on the
// cluster origin. The session is symmetric: the Uplink dials, and the
// server asks it for its announces and subscribes.
//
// Close loses nothing while the server is reachable: a broadcast's Close
// first waits, within CloseTimeout, for the server to be subscribed to
// every one of its tracks (after a redial, say), then for it to hold the
// final frames, and only then ends the tracks. Frames written while no
// session is up are not queued: each track's latest group reaches the
// server when it subscribes again, which for stats' cumulative frames
// loses no count, and the server's subscribers see the reconnection as a
// skip.
type Uplink struct {
	cfg UplinkConfig
	srv *Server

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	connected bool
}

// NewUplink starts dialing and returns the Uplink.
func NewUplink(cfg UplinkConfig) (*Uplink, error) {
	if cfg.Dial == nil {
		return nil, errors.New("moqlite: UplinkConfig.Dial is nil")
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.Drain <= 0 {
		cfg.Drain = time.Second
	}
	u := &Uplink{cfg: cfg, srv: NewServer(cfg.Server), done: make(chan struct{})}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	go u.run()
	return u, nil
}

// Connected reports whether a session to the server is up.
func (u *Uplink) Connected() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.connected
}

// Stats returns the counters of the Uplink's own server: what the peer
// asked for and was refused.
func (u *Uplink) Stats() ServerStats { return u.srv.Stats() }

func (u *Uplink) report(err error) {
	if u.cfg.OnError != nil {
		u.cfg.OnError(err)
	}
}

func (u *Uplink) run() {
	defer close(u.done)
	delay := u.cfg.MinBackoff
	for {
		if u.session() {
			delay = u.cfg.MinBackoff
		}
		if u.ctx.Err() != nil {
			return
		}
		wait := delay/2 + rand.N(delay/2+1)
		delay = min(2*delay, u.cfg.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-u.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// session dials and serves one session until it ends; it reports whether
// one was up.
func (u *Uplink) session() bool {
	sess, err := u.cfg.Dial(u.ctx)
	if err != nil {
		if u.ctx.Err() == nil {
			u.report(fmt.Errorf("moqlite: uplink: dial: %w", err))
		}
		return false
	}
	cc := u.cfg.Client
	cc.Publish = u.srv
	c, err := NewClient(u.ctx, sess, cc)
	if err != nil {
		sess.CloseWithError(CodeNone, "")
		u.report(fmt.Errorf("moqlite: uplink: %w", err))
		return false
	}
	u.mu.Lock()
	u.connected = true
	u.mu.Unlock()
	select {
	case <-sess.Context().Done():
		if u.ctx.Err() == nil {
			u.report(fmt.Errorf("moqlite: uplink: session ended: %w", context.Cause(sess.Context())))
		}
	case <-u.ctx.Done():
		c.Close()
	}
	u.mu.Lock()
	u.connected = false
	u.mu.Unlock()
	return true
}

// Publish publishes a broadcast into the server. It implements
// moqstats.Origin; the Broadcast it returns implements moqstats.Appender.
func (u *Uplink) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	b, err := u.srv.PublishBroadcast(path, tracks)
	if err != nil {
		return nil, err
	}
	return &uplinkBroadcast{Broadcast: b}, nil
}

// Close closes every broadcast still published, as its Close does, then
// the session, and stops dialing.
func (u *Uplink) Close() error {
	u.srv.mu.Lock()
	bs := make([]*Broadcast, 0, len(u.srv.broadcasts))
	for _, b := range u.srv.broadcasts {
		bs = append(bs, b)
	}
	u.srv.mu.Unlock()
	var errs []error
	for _, b := range bs {
		errs = append(errs, (&uplinkBroadcast{b}).Close())
	}
	if u.Connected() {
		time.Sleep(u.cfg.Drain)
	}
	errs = append(errs, u.srv.Close())
	u.cancel()
	<-u.done
	return errors.Join(errs...)
}

// uplinkBroadcast is a Broadcast whose Close first waits for the server to
// subscribe to it.
type uplinkBroadcast struct{ *Broadcast }

func (b *uplinkBroadcast) Close() error {
	cfg := b.srv.cfg
	deadline := time.Now().Add(cfg.CloseTimeout)
	for !b.subscribed() {
		if time.Now().After(deadline) {
			return errors.Join(
				fmt.Errorf("moqlite: uplink: %q not subscribed by the server within %v: its final frames may not have reached it: %w", b.path, cfg.CloseTimeout, ErrTimeout),
				b.Broadcast.Close())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return b.Broadcast.Close()
}

// subscribed reports whether every track has a subscriber.
func (b *Broadcast) subscribed() bool {
	for _, t := range b.tracks {
		t.mu.Lock()
		n := len(t.subs)
		t.mu.Unlock()
		if n == 0 {
			return false
		}
	}
	return true
}

var (
	_ moqstats.Origin   = (*Uplink)(nil)
	_ moqstats.Appender = (*uplinkBroadcast)(nil)
)
