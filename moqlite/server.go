package moqlite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/internal/moqpath"
)

// Defaults for the zero ServerConfig.
const (
	DefaultMaxSessions         = 1024
	DefaultMaxSubscriptions    = 256
	DefaultMaxAnnounceInterest = 16
	DefaultMaxQueuedBytes      = 4 << 20
	DefaultHandshakeTimeout    = 10 * time.Second
	DefaultIdleTimeout         = 60 * time.Second
	DefaultWriteTimeout        = 10 * time.Second
	DefaultCloseTimeout        = 5 * time.Second
	DefaultEndLinger           = time.Second
)

// ServerConfig configures a Server. Zero and negative values mean the
// default.
type ServerConfig struct {
	// MaxSessions caps the sessions served at once; one past it is closed
	// with CodeRefused.
	MaxSessions int
	// MaxSubscriptions caps the open subscriptions of one session; one
	// past it has its stream reset with CodeRefused.
	MaxSubscriptions int
	// MaxAnnounceInterests caps the open announce interests of one
	// session, refused the same way.
	MaxAnnounceInterests int
	// MaxQueuedBytes caps what one subscriber may fall behind on a track:
	// past it, it skips to the latest group (as MoQ subscribers do), so a
	// slow subscriber holds at most about this much of old groups alive.
	MaxQueuedBytes int
	// HandshakeTimeout bounds SETUP (lite-02) and the first message of
	// every stream the peer opens.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a session with no subscription, announce
	// interest or probe open for this long.
	IdleTimeout time.Duration
	// WriteTimeout abandons a group stream the peer has not read for this
	// long (the subscriber then continues at the latest group).
	WriteTimeout time.Duration
	// CloseTimeout bounds how long closing a broadcast (Stats.Close) and
	// Shutdown wait for subscribers to receive the final frames.
	CloseTimeout time.Duration
	// EndLinger is how long, once a broadcast is closed, a subscription's
	// writer waits after its last group stream was fully written before
	// ending the subscribe stream. Group streams travel apart from the
	// subscribe stream, and @moq/lite drops the groups it has not finished
	// reading when it sees that end, so ending it at once loses the final
	// frames. The wait is cut short when the peer ends the subscription,
	// is skipped by a subscription that never got a group, and ends
	// within CloseTimeout of the close: a longer EndLinger is cut there,
	// and Close reports those subscriptions with ErrTimeout.
	EndLinger time.Duration
	// Authorize, when set, sees every session at connect and every path a
	// peer asks for; an error refuses it (the session is closed, or the
	// stream reset, with CodeRefused).
	Authorize func(info ConnInfo, req Request) error
	// Ingest, when set, makes every session symmetric: the server asks
	// its peer for the broadcasts it announces and publishes each as its
	// own, an aggregator endpoint that nodes dial and publish into (see
	// IngestConfig). nil: the server subscribes to nothing.
	Ingest *IngestConfig
	// Logger receives refusals and protocol errors at debug level; nil
	// means slog.Default().
	Logger *slog.Logger
}

func (c ServerConfig) withDefaults() ServerConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxSessions, DefaultMaxSessions)
	def(&c.MaxSubscriptions, DefaultMaxSubscriptions)
	def(&c.MaxAnnounceInterests, DefaultMaxAnnounceInterest)
	def(&c.MaxQueuedBytes, DefaultMaxQueuedBytes)
	defd(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	defd(&c.IdleTimeout, DefaultIdleTimeout)
	defd(&c.WriteTimeout, DefaultWriteTimeout)
	defd(&c.CloseTimeout, DefaultCloseTimeout)
	defd(&c.EndLinger, DefaultEndLinger)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Server serves moq-lite sessions. It implements moqstats.Origin (its
// Broadcast implements moqstats.Appender), so
// moqstats.New(moqstats.Config{Origin: srv, Compressed: true}) works.
type Server struct {
	cfg ServerConfig
	log *slog.Logger

	// mu guards the maps and closed. Broadcast and interest changes are
	// made under it, so an interest sees every publish and close after
	// its initial set exactly once.
	mu         sync.Mutex
	broadcasts map[string]*Broadcast
	interests  map[*interest]struct{}
	sessions   map[*session]struct{}
	relayed    map[string]*relayed // ServerConfig.Ingest's, by path
	closed     bool

	active atomic.Int64 // sessions being served, counted before the cap check
	stats  counters
}

// counters are the refusals and events Stats reports.
type counters struct {
	sessions, sessionsRefused, subscriptionsRefused, interestsRefused atomic.Uint64
	authRefused, handshakeTimeouts, idleTimeouts, protocolErrors      atomic.Uint64
	notFound, groupsSkipped, writeTimeouts, unsupported               atomic.Uint64
	streamsRefused, broadcastsRefused                                 atomic.Uint64
}

// ServerStats is a snapshot of a Server's counters.
type ServerStats struct {
	// Sessions is the sessions served now; SessionsTotal all accepted.
	Sessions      int
	SessionsTotal uint64
	Refusals      Refusals
	// GroupsSkipped counts the skips of a subscriber that fell
	// MaxQueuedBytes behind, each counted when its writer skips (a writer
	// blocked on the network skips once the write returns); WriteTimeouts,
	// group streams abandoned after WriteTimeout.
	GroupsSkipped uint64
	WriteTimeouts uint64
}

// Refusals counts what the server refused, by reason.
type Refusals struct {
	Sessions          uint64 // past MaxSessions (or after Shutdown)
	Subscriptions     uint64 // past MaxSubscriptions
	AnnounceInterests uint64 // past MaxAnnounceInterests
	Streams           uint64 // past 64 streams of a session awaiting their first message
	Auth              uint64 // refused by Authorize
	HandshakeTimeouts uint64 // SETUP or a stream's first message too late
	IdleTimeouts      uint64 // sessions closed for idling
	ProtocolErrors    uint64 // sessions closed for malformed input
	NotFound          uint64 // subscriptions to an unknown broadcast or track
	Unsupported       uint64 // requests this server does not serve (FETCH)
	// Broadcasts counts broadcasts a peer announced that Ingest did not
	// take: past MaxBroadcasts, refused by Authorize, or at a path
	// already published.
	Broadcasts uint64
}

// NewServer returns a server with no broadcasts.
func NewServer(cfg ServerConfig) *Server {
	cfg = cfg.withDefaults()
	return &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		broadcasts: map[string]*Broadcast{},
		interests:  map[*interest]struct{}{},
		sessions:   map[*session]struct{}{},
	}
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	n := len(s.sessions)
	s.mu.Unlock()
	c := &s.stats
	return ServerStats{
		Sessions:      n,
		SessionsTotal: c.sessions.Load(),
		Refusals: Refusals{
			Sessions:          c.sessionsRefused.Load(),
			Subscriptions:     c.subscriptionsRefused.Load(),
			AnnounceInterests: c.interestsRefused.Load(),
			Streams:           c.streamsRefused.Load(),
			Auth:              c.authRefused.Load(),
			HandshakeTimeouts: c.handshakeTimeouts.Load(),
			IdleTimeouts:      c.idleTimeouts.Load(),
			ProtocolErrors:    c.protocolErrors.Load(),
			NotFound:          c.notFound.Load(),
			Unsupported:       c.unsupported.Load(),
			Broadcasts:        c.broadcastsRefused.Load(),
		},
		GroupsSkipped: c.groupsSkipped.Load(),
		WriteTimeouts: c.writeTimeouts.Load(),
	}
}

// Publish announces a broadcast at path with these tracks. It implements
// moqstats.Origin; the Broadcast it returns implements moqstats.Appender.
func (s *Server) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	return s.PublishBroadcast(path, tracks)
}

// PublishBroadcast is Publish returning the concrete type.
func (s *Server) PublishBroadcast(path string, tracks []string) (*Broadcast, error) {
	path = moqpath.Normalize(path)
	b := &Broadcast{srv: s, path: path, tracks: make(map[string]*track, len(tracks))}
	for _, name := range tracks {
		if _, dup := b.tracks[name]; dup {
			return nil, fmt.Errorf("moqlite: track %q listed twice", name)
		}
		b.tracks[name] = &track{name: name, srv: s}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrServerClosed
	}
	if _, dup := s.broadcasts[path]; dup {
		return nil, fmt.Errorf("moqlite: broadcast %q already published", path)
	}
	s.broadcasts[path] = b
	for in := range s.interests {
		in.update(path, true)
	}
	return b, nil
}

// unpublish removes b and unannounces it; false if it was gone already.
func (s *Server) unpublish(b *Broadcast) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broadcasts[b.path] != b {
		return false
	}
	delete(s.broadcasts, b.path)
	for in := range s.interests {
		in.update(b.path, false)
	}
	return true
}

func (s *Server) lookup(path, name string) (*track, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.broadcasts[path]
	if !ok {
		return nil, false
	}
	t, ok := b.tracks[name]
	return t, ok
}

// Shutdown stops serving: new sessions are refused, every broadcast still
// published is closed, all at once (their subscribers receive the final
// frames, within CloseTimeout), and then every session is closed with CodeShutdown,
// once its peer has ended its subscriptions or ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	bs := make([]*Broadcast, 0, len(s.broadcasts))
	for _, b := range s.broadcasts {
		bs = append(bs, b)
	}
	s.mu.Unlock()
	// The broadcasts close at once, so their EndLinger and CloseTimeout
	// waits overlap instead of adding up.
	errs := make([]error, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Go(func() { errs[i] = b.Close() })
	}
	wg.Wait()
	// Sessions whose subscriptions all ended close at once; the rest get
	// until ctx is done, so a peer still reading final frames is not cut off.
	for {
		s.mu.Lock()
		var open []*session
		for ss := range s.sessions {
			if ss.busy() {
				open = append(open, ss)
			} else {
				ss.close(CodeShutdown, "server shutting down")
			}
		}
		s.mu.Unlock()
		if len(open) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			for _, ss := range open {
				ss.close(CodeShutdown, "server shutting down")
			}
			errs = append(errs, fmt.Errorf("moqlite: %d sessions still subscribed at shutdown: %w", len(open), ctx.Err()))
			return errors.Join(errs...)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if already {
		return nil
	}
	return errors.Join(errs...)
}

// Close is Shutdown bounded by CloseTimeout.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CloseTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

var _ moqstats.Origin = (*Server)(nil)
