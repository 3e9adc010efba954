package moqstats

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/encode"
	"github.com/moqstats/moqstats/internal/registry"
	"github.com/moqstats/moqstats/snapshot"
)

// Stats is the aggregator: one per relay. Sessions get tier-scoped Handles
// from Tier. A *Stats is safe for concurrent use; a nil *Stats is a
// disabled one.
type Stats struct {
	settings
	enabled bool
	bc      Broadcast // nil when disabled

	broadcasts *registry.Map[broadcastEntry]
	sessions   [2]*registry.Map[sessionEntry] // by Tier

	// closed is set by Close; guards are no longer handed out after it.
	closed atomic.Bool
	stop   chan struct{} // closed by Close to stop run
	done   chan struct{} // closed by run when it returns

	// mu serializes passes and guards everything below.
	mu            sync.Mutex
	finished      bool // Close ran its final pass
	tracks        [4]snapshot.Track[counters.Snapshot]
	sessionTracks [2]snapshot.Track[counters.SessionSnapshot]
}

// broadcastEntry is one broadcast path's state: its counters per slot
// (tier*2 + role), and, owned by the pass, what was last written for each.
type broadcastEntry struct {
	slots   [4]counters.Counters
	emitted [4]counters.Snapshot
}

// sessionEntry is one auth root's session gauge on one tier, and what the
// pass last wrote for it.
type sessionEntry struct {
	gauge   counters.Gauge
	emitted counters.SessionSnapshot
}

func quote(key string) string { return string(encode.AppendString(nil, key)) }

// New builds a Stats from cfg. With an Origin, it publishes the stats
// broadcast, writes the baseline frame {} on all six tracks, and starts
// the goroutine that runs a pass every Interval; call Close to stop it.
// Without one it returns a disabled Stats.
//
// Errors: a configuration error (wrapping ErrInvalidConfig), a failed
// Publish, or a failed baseline write (the broadcast is then closed).
func New(cfg Config) (*Stats, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	s := &Stats{settings: set}
	if cfg.Origin == nil {
		return s, nil
	}
	bc, err := cfg.Origin.Publish(s.path, Tracks())
	if err != nil {
		return nil, fmt.Errorf("moqstats: publishing %s: %w", s.path, err)
	}
	if bc == nil {
		return nil, fmt.Errorf("moqstats: publishing %s: Origin returned a nil Broadcast", s.path)
	}
	s.enabled = true
	s.bc = bc
	s.broadcasts = registry.New[broadcastEntry](quote)
	for t := range s.sessions {
		s.sessions[t] = registry.New[sessionEntry](quote)
	}
	for i := range s.tracks {
		s.tracks[i].Name = tracks[i]
	}
	for i := range s.sessionTracks {
		s.sessionTracks[i].Name = tracks[len(s.tracks)+i]
	}
	if err := s.Flush(); err != nil {
		return nil, errors.Join(fmt.Errorf("moqstats: writing baseline frames: %w", err), bc.Close())
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go s.run()
	return s, nil
}

// Enabled reports whether s publishes stats.
func (s *Stats) Enabled() bool { return s != nil && s.enabled }

// Prefix returns the normalized top-level prefix (".stats" by default),
// also for a disabled Stats. It is "" for a nil *Stats.
func (s *Stats) Prefix() string {
	if s == nil {
		return ""
	}
	return s.prefix
}

// Path returns the advertised path of the stats broadcast, "" when
// disabled.
func (s *Stats) Path() string {
	if !s.Enabled() {
		return ""
	}
	return s.path
}

// Tier returns a handle whose bumps land in tier t's counters. An unknown
// tier (neither External nor Internal) yields a no-op handle.
func (s *Stats) Tier(t Tier) Handle {
	if !s.Enabled() || t > Internal {
		return Handle{tier: t}
	}
	return Handle{s: s, tier: t}
}

// Flush runs one pass now: it collects entries no guard pins, reads every
// counter, and writes each track whose frame changed. It returns the write
// failures joined (the frames are retried on the next pass), nil for a
// disabled Stats, and ErrClosed after Close.
func (s *Stats) Flush() error {
	if !s.Enabled() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return ErrClosed
	}
	return s.pass()
}

// Close stops the background passes, runs a final pass so that nothing
// bumped before Close is lost, and closes the stats broadcast. It returns
// the final pass's write errors and the broadcast's Close error, joined.
// Close is idempotent: later calls return nil. Guards opened afterwards are
// nil; open guards stay usable, but nothing they bump is published.
func (s *Stats) Close() error {
	if !s.Enabled() || !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.pass()
	s.finished = true
	if cerr := s.bc.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("moqstats: closing %s: %w", s.path, cerr))
	}
	return err
}

func (s *Stats) run() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			err := s.pass()
			s.mu.Unlock()
			if err != nil {
				s.log.Warn("moqstats: pass failed; frames retried next pass", "path", s.path, "err", err)
			}
		}
	}
}

// Test hooks. testHookAfterCollect runs inside every pass between
// collecting entries and reading them; testHookDropped runs for every
// collected entry the pass forgets, with the final counters it wrote.
var (
	testHookAfterCollect atomic.Pointer[func()]
	testHookDropped      atomic.Pointer[func(key string, final *[4]counters.Snapshot)]
)

// pass is one snapshot pass. s.mu must be held.
//
// Order matters: Sweep first collects unpinned entries (after which their
// counters are final) and only then does the pass read every row, the
// collected ones included. Collected rows are dropped only once every
// track committed their final values, so an entry that opens and closes
// between two passes is always emitted.
func (s *Stats) pass() error {
	rows := s.broadcasts.Sweep()
	var sessionRows [2][]*registry.Entry[sessionEntry]
	for t, m := range s.sessions {
		sessionRows[t] = m.Sweep()
	}
	if hook := testHookAfterCollect.Load(); hook != nil {
		(*hook)()
	}

	for i := range s.tracks {
		s.tracks[i].Reset()
	}
	for _, e := range rows {
		v := &e.Value
		for i := range v.slots {
			s.tracks[i].Offer(e.Key(), e.Quoted(), v.slots[i].Read(), &v.emitted[i])
		}
	}
	var errs []error
	for i := range s.tracks {
		errs = appendErr(errs, flush(s.bc, &s.tracks[i], encode.AppendBroadcastFrame))
	}
	s.broadcasts.Retain(func(e *registry.Entry[broadcastEntry]) bool {
		for i := range e.Value.slots {
			if e.Value.slots[i].Read() != e.Value.emitted[i] {
				return false
			}
		}
		if hook := testHookDropped.Load(); hook != nil {
			(*hook)(e.Key(), &e.Value.emitted)
		}
		return true
	})

	for t, rows := range sessionRows {
		tr := &s.sessionTracks[t]
		tr.Reset()
		for _, e := range rows {
			tr.Offer(e.Key(), e.Quoted(), e.Value.gauge.Read(), &e.Value.emitted)
		}
		errs = appendErr(errs, flush(s.bc, tr, encode.AppendSessionFrame))
		s.sessions[t].Retain(func(e *registry.Entry[sessionEntry]) bool {
			return e.Value.gauge.Read() == e.Value.emitted
		})
	}
	return errors.Join(errs...)
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

// flush encodes t's frame and writes it unless it equals the last frame
// written. Only a frame that reached the wire is committed.
func flush[V snapshot.Value](bc Broadcast, t *snapshot.Track[V], enc func([]byte, []string, []V) []byte) error {
	frame := enc(t.Buffer(), t.Keys(), t.Values())
	if !t.Unchanged(frame) {
		if err := bc.WriteFrame(t.Name, frame); err != nil {
			return fmt.Errorf("moqstats: writing %s: %w", t.Name, err)
		}
	}
	t.Commit(frame)
	return nil
}
