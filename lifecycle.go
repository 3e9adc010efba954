package moqstats

import (
	"errors"
	"fmt"
	"time"

	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/encode"
	"github.com/moqstats/moqstats/internal/registry"
	"github.com/moqstats/moqstats/snapshot"
	"github.com/moqstats/moqstats/zframe"
)

// New builds a Stats from cfg. With an Origin, it publishes the stats
// broadcast, writes the baseline frame {} on all six tracks, and starts
// the goroutine that runs a pass every Interval; call Close to stop it.
// Without one it returns a disabled Stats.
//
// Errors: a configuration error (wrapping ErrInvalidConfig), a failed (or
// panicking) Publish, or a failed baseline write (the broadcast is then
// closed).
func New(cfg Config) (*Stats, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	s := &Stats{settings: set}
	if cfg.Origin == nil {
		return s, nil
	}
	bc, err := publish(cfg.Origin, s.path, trackList(s.compressed))
	if err != nil {
		return nil, fmt.Errorf("moqstats: publishing %s: %w", s.path, err)
	}
	if bc == nil {
		return nil, fmt.Errorf("moqstats: publishing %s: Origin returned a nil Broadcast", s.path)
	}
	if s.compressed {
		app, ok := bc.(Appender)
		if !ok {
			return nil, errors.Join(fmt.Errorf("%w: Compressed needs a Broadcast with AppendFrame (moqstats.Appender); %T has none", ErrInvalidConfig, bc), closeBroadcast(bc, s.path))
		}
		s.app = app
		for i := range s.z {
			s.z[i] = zframe.NewWriter(s.deltaRatio)
		}
	}
	s.bc = bc
	s.start = time.Now()
	s.clock = func() time.Duration { return time.Since(s.start) }
	s.broadcasts = registry.New(registry.Config[broadcastEntry, keptBroadcast]{
		Quote:      encode.AppendString,
		Overflow:   OverflowKey,
		MaxEntries: s.maxEntries,
		Retention:  s.retention,
		Keep:       keepBroadcast,
		Continue:   continueBroadcast,
	})
	for t := range s.sessions {
		s.sessions[t] = registry.New(registry.Config[sessionEntry, counters.SessionSnapshot]{
			Quote:      encode.AppendString,
			Overflow:   OverflowKey,
			MaxEntries: s.maxEntries,
			Retention:  s.retention,
			Keep:       keepSession,
			Continue:   continueSession,
		})
	}
	for i := range s.tracks {
		t := &s.tracks[i]
		*t = snapshot.Track[counters.Snapshot]{Name: tracks[i], AppendMembers: encode.AppendBroadcastMembers}
		if s.newer {
			t.AppendMembers = encode.AppendBroadcastMembersAll
		}
		if s.compressed {
			all := s.newer
			t.AppendValue = func(dst []byte, v counters.Snapshot) []byte {
				if all {
					return encode.AppendSnapshotAll(dst, &v)
				}
				return encode.AppendSnapshot(dst, &v)
			}
			t.AppendPatch = func(dst []byte, old, cur counters.Snapshot) []byte {
				return encode.AppendSnapshotPatch(dst, &old, &cur, all)
			}
		}
	}
	for i := range s.sessionTracks {
		t := &s.sessionTracks[i]
		*t = snapshot.Track[counters.SessionSnapshot]{Name: tracks[len(s.tracks)+i], AppendMembers: encode.AppendSessionMembers}
		if s.compressed {
			t.AppendValue = func(dst []byte, v counters.SessionSnapshot) []byte { return encode.AppendSessionSnapshot(dst, &v) }
			t.AppendPatch = func(dst []byte, old, cur counters.SessionSnapshot) []byte {
				return encode.AppendSessionPatch(dst, &old, &cur)
			}
		}
	}
	s.stop, s.done, s.final = make(chan struct{}), make(chan struct{}), make(chan struct{})
	if err := s.Flush(); err != nil {
		return nil, errors.Join(fmt.Errorf("moqstats: writing baseline frames: %w", err), closeBroadcast(bc, s.path))
	}
	go s.run()
	return s, nil
}

// Flush runs one pass now: it collects entries no guard pins, reads every
// counter, and writes each track whose frame changed. It returns the write
// failures joined (the frames are retried on the next pass), nil for a
// disabled Stats, and ErrClosed after Close.
func (s *Stats) Flush() error {
	if s == nil || s.bc == nil {
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
// Close is idempotent: later calls wait until the first one is done and
// return nil. Guards opened afterwards are nil; open guards stay usable,
// but nothing they bump is published.
func (s *Stats) Close() error {
	if s == nil || s.bc == nil {
		return nil
	}
	if !s.closed.CompareAndSwap(false, true) {
		<-s.final
		return nil
	}
	defer close(s.final)
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.pass()
	s.finished = true
	return errors.Join(err, closeBroadcast(s.bc, s.path))
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
			if err == nil {
				continue
			}
			if ok, suppressed := s.passLog.allow(); ok {
				s.log.Warn("moqstats: pass failed; frames retried next pass", "path", s.path, "err", err, "suppressed", suppressed)
			}
		}
	}
}

// The Origin is the caller's code, and a pass must survive it: a panic in
// Publish, WriteFrame or Close is recovered and returned as an error.

func publish(o Origin, path string, tracks []string) (bc Broadcast, err error) {
	defer recoverInto(&err, "Origin.Publish of "+path)
	return o.Publish(path, tracks)
}

func writeFrame(bc Broadcast, track string, frame []byte) (err error) {
	defer recoverInto(&err, "Broadcast.WriteFrame")
	return bc.WriteFrame(track, frame)
}

func appendFrame(a Appender, track string, frame []byte) (err error) {
	defer recoverInto(&err, "Broadcast.AppendFrame")
	return a.AppendFrame(track, frame)
}

func closeBroadcast(bc Broadcast, path string) (err error) {
	defer recoverInto(&err, "Broadcast.Close")
	if err := bc.Close(); err != nil {
		return fmt.Errorf("moqstats: closing %s: %w", path, err)
	}
	return nil
}

// ErrOriginPanicked is wrapped by the error returned when the Origin or its
// Broadcast panics.
var ErrOriginPanicked = errors.New("moqstats: Origin panicked")

func recoverInto(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w in %s: %v", ErrOriginPanicked, what, r)
	}
}
