package moqstats

import (
	"context"
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
	if s.leakCheck {
		s.makeReclaimers()
		s.young = newYoungLists()
		s.armDrainAfterGC()
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

// Close is Shutdown with a context that ends after Config.CloseTimeout
// (DefaultCloseTimeout unless set): it stops the background passes, runs
// the final pass, retrying it while writes fail, so nothing bumped before
// Close is lost, and closes the stats broadcast. With a negative
// CloseTimeout it makes one attempt. It returns the final pass's last
// write errors and the broadcast's Close error, joined. Close is
// idempotent: later calls wait until the first one is done and return nil.
// Guards opened afterwards are nil; open guards stay usable, but nothing
// they bump is published.
func (s *Stats) Close() error {
	if s == nil || s.bc == nil {
		return nil
	}
	if s.closeTimeout < 0 {
		return s.shutdown(nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.closeTimeout)
	defer cancel()
	return s.shutdown(ctx)
}

// Shutdown closes the Stats the way http.Server.Shutdown closes a server:
// it stops new guards and the background passes at once, then runs the
// final pass, and while any track's write fails it retries the pass, after
// a backoff that starts at 10ms and doubles up to a second, until every
// track's final frame (and its compressed sibling's) is written or ctx is
// done. Then it closes the stats broadcast; nothing is written after
// Shutdown returns. Its first attempt runs even when ctx is done already.
//
// It returns nil when the final frames were written, and otherwise, once
// ctx is done, an error wrapping both the last attempt's write errors and
// ctx's cause (context.Canceled, say); the broadcast's Close error is
// joined to either. A transient origin failure at shutdown thus delays the
// final counts and loses nothing, given the time. Like Close, Shutdown is
// idempotent: a later call waits until the first one is done, or until its
// own ctx is, and returns nil, or ctx's error.
func (s *Stats) Shutdown(ctx context.Context) error {
	if s == nil || s.bc == nil {
		return nil
	}
	return s.shutdown(ctx)
}

// Backoff between attempts of the final pass (Shutdown).
const (
	finalRetryFirst = 10 * time.Millisecond
	finalRetryMax   = time.Second
)

// shutdown closes s, retrying the final pass until ctx is done; a nil ctx
// means one attempt.
func (s *Stats) shutdown(ctx context.Context) error {
	if !s.closed.CompareAndSwap(false, true) {
		if ctx == nil {
			<-s.final
			return nil
		}
		select {
		case <-s.final:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer close(s.final)
	close(s.stop)
	<-s.done
	err := s.finalPass(ctx)
	if s.young != nil {
		s.young.stopped.Store(true) // the final pass drained the young rings
	}
	return errors.Join(err, closeBroadcast(s.bc, s.path))
}

// finalPass runs passes until one writes every track, or ctx is done (nil:
// once), and marks s finished: under s.mu, so that no Flush writes after.
func (s *Stats) finalPass(ctx context.Context) error {
	wait := finalRetryFirst
	for {
		s.mu.Lock()
		err := s.pass()
		if err == nil || ctx == nil || ctx.Err() != nil {
			s.finished = true
			s.mu.Unlock()
			return s.gaveUp(ctx, err)
		}
		s.mu.Unlock()
		if ok, suppressed := s.passLog.allow(); ok {
			s.log.Warn("moqstats: final pass failed; retrying", "path", s.path, "err", err, "retry_in", wait, "suppressed", suppressed)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			s.mu.Lock()
			s.finished = true
			s.mu.Unlock()
			return s.gaveUp(ctx, err)
		}
		wait = min(2*wait, finalRetryMax)
	}
}

// gaveUp returns the error of a final pass that ended with err.
func (s *Stats) gaveUp(ctx context.Context, err error) error {
	if err == nil || ctx == nil {
		return err
	}
	return fmt.Errorf("moqstats: final frames of %s not all written before shutdown ended (%w): %w", s.path, context.Cause(ctx), err)
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
