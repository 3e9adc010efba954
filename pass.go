package moqstats

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/internal/prefetch"
	"github.com/moqstats/moqstats/snapshot"
)

// Test hooks. testHookDuringPass runs inside every pass after it merged
// new entries into its view and before it collects and reads them;
// testHookDropped runs for every collected entry the pass forgets.
var (
	testHookDuringPass atomic.Pointer[func()]
	testHookDropped    atomic.Pointer[func(key string, final *broadcastEntry)]
)

// pass is one snapshot pass. s.mu must be held.
//
// Each row is collected (if no guard pins it, after which its counters
// are final) right before it is read, so a collected entry's final counts
// are always in the frames built from this pass. Collected rows are
// forgotten only once every track committed their final values, so an
// entry that opens and closes between two passes is always emitted; a
// successor merged while they are not continues from them (package
// registry). Collection, reading and offering share one loop so each
// entry's memory is visited once per pass.
func (s *Stats) pass() error {
	if s.young != nil {
		s.young.drainAll(s) // young.go, invariant 2
	}
	now := s.clock()
	rows := s.broadcasts.Merge()
	var sessionRows [2][]*sEntry
	for t, m := range s.sessions {
		sessionRows[t] = m.Merge()
	}
	if hook := testHookDuringPass.Load(); hook != nil {
		(*hook)()
	}

	for i := range s.tracks {
		s.tracks[i].Reset()
	}
	collected := s.readBroadcasts(rows)
	var errs []error
	for i := range s.tracks {
		errs = appendErr(errs, flushTrack(s, i, &s.tracks[i]))
	}
	if collected {
		s.broadcasts.Retain(now, func(e *bEntry) bool {
			for i := range e.Value.slots {
				if sl := e.Value.slots[i].Load(); sl != nil && !s.tracks[i].Settled(s.read(sl), &sl.emitted) {
					return false
				}
			}
			for i := range e.Value.slots {
				if sl := e.Value.slots[i].Load(); sl != nil {
					s.tracks[i].Gone(e.Key(), e.Quoted(), &sl.emitted)
				}
			}
			if hook := testHookDropped.Load(); hook != nil {
				(*hook)(e.Key(), &e.Value)
			}
			return true
		})
	}
	s.broadcasts.Expire(now)

	for t, rows := range sessionRows {
		m, tr := s.sessions[t], &s.sessionTracks[t]
		tr.Reset()
		collected := false
		for _, e := range rows {
			if !e.Value.gauge.Pinned() && m.Collect(e, sessionPinned) {
				collected = true
			}
			tr.Offer(e.Key(), e.Quoted(), e.Value.gauge.Read(), &e.Value.emitted)
		}
		errs = appendErr(errs, flushTrack(s, len(s.tracks)+t, tr))
		if collected {
			m.Retain(now, func(e *sEntry) bool {
				if !tr.Settled(e.Value.gauge.Read(), &e.Value.emitted) {
					return false
				}
				tr.Gone(e.Key(), e.Quoted(), &e.Value.emitted)
				return true
			})
		}
		m.Expire(now)
	}
	return errors.Join(errs...)
}

// read reads a slot's counters for the frames: the nine, or all twelve
// with NewerCounters.
func (s *Stats) read(sl *slot) counters.Snapshot {
	if s.newer {
		return sl.ReadAll()
	}
	return sl.Read()
}

// Prefetch distance and encoding interval of readBroadcasts, in rows.
const (
	prefetchAhead = 8
	encodeEvery   = 64
)

// readBroadcasts collects, reads and offers every row, and reports whether
// any row is dead. At a hundred thousand broadcasts the entries no longer
// fit in cache and a pass is bound by memory latency, not by work: each
// row is an entry somewhere in the heap (rows are in key order, entries in
// creation order). So while it works on one row the pass prefetches the
// lines of the row prefetchAhead rows on, and the CPU loads them while it
// works; and it encodes the keys offered every encodeEvery rows, while
// their bytes are still in cache.
func (s *Stats) readBroadcasts(rows []*bEntry) (collected bool) {
	for i := range min(prefetchAhead, len(rows)) {
		prefetchEntry(rows[i])
	}
	for j, e := range rows {
		if ahead := j + prefetchAhead; ahead < len(rows) {
			prefetchEntry(rows[ahead])
		}
		var slots [4]*slot
		for i := range e.Value.slots {
			slots[i] = e.Value.slots[i].Load()
		}
		// Collect before reading. Most rows are pinned, and a pinned row
		// needs no look at its state or the registry.
		if !pinnedIn(&slots) && s.broadcasts.Collect(e, (*broadcastEntry).pinned) {
			collected = true
		}
		for i, sl := range slots {
			if sl != nil {
				s.tracks[i].Offer(e.Key(), e.Quoted(), s.read(sl), &sl.emitted)
			}
		}
		if j%encodeEvery == encodeEvery-1 {
			for i := range s.tracks {
				s.tracks[i].Encode()
			}
		}
	}
	return collected
}

// prefetchEntry prefetches every line of e, all of which a pass reads: the
// counters and emitted state of its own slot (most entries use only that
// one), its slot pointers, key headers and state, and its inline key.
func prefetchEntry(e *bEntry) {
	base := uintptr(unsafe.Pointer(e))
	for off := uintptr(0); off < unsafe.Sizeof(*e); off += lineSize {
		prefetch.Line(base + off)
	}
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

// flushTrack writes the frame of t, track i, and then its compressed
// sibling's. The tick's values count as on the wire (Commit) only when
// every flavor carries them: a key whose compressed write failed stays in
// the next frame, so the resync snapshot has it, and is not forgotten
// before.
func flushTrack[V snapshot.Value](s *Stats, i int, t *snapshot.Track[V]) error {
	frame, wrote, err := flush(s.bc, t)
	if s.z[i] != nil {
		err = errors.Join(err, flushCompressed(s, i, t, frame))
	}
	switch {
	case err == nil:
		t.Commit(frame)
	case wrote:
		t.Wrote(frame) // on the plain track: later frames compare with it
	}
	return err
}

// flush writes t's frame unless its bytes equal the last frame written,
// and returns this tick's frame, and whether the plain track carries it
// now (written, or equal to the last frame written).
func flush[V snapshot.Value](bc Broadcast, t *snapshot.Track[V]) (frame []byte, wrote bool, err error) {
	if !t.Changed() {
		return t.Last(), true, nil // provably the last frame's bytes: nothing to encode
	}
	frame = t.Frame()
	if !t.Unchanged(frame) {
		if err := writeFrame(bc, t.Name, frame); err != nil {
			return frame, false, fmt.Errorf("moqstats: writing %s: %w", t.Name, err)
		}
	}
	return frame, true, nil
}

// flushCompressed writes the compressed sibling of t, track i, whose
// frame this tick is frame: nothing if its value did not change since the
// last frame built (unless a resync is due), else a snapshot starting a
// group (frame, compressed) or a delta appended to the group (t's merge
// patch, compressed). Its writer starts a new group after a failed write,
// and a patch that adds "__proto__", which JavaScript readers would lose,
// is sent as a snapshot.
func flushCompressed[V snapshot.Value](s *Stats, i int, t *snapshot.Track[V], frame []byte) error {
	z, name := s.z[i], compressedTracks[i]
	patch, changed := t.Patch()
	var err error
	switch {
	case z.Snapshotting() || t.AddsProto():
		if !changed && !z.Resyncing() {
			return nil
		}
		err = writeFrame(s.bc, name, z.Snapshot(frame))
	case changed:
		err = appendFrame(s.app, name, z.Delta(patch))
	default:
		return nil
	}
	z.Commit(err == nil)
	if err != nil {
		return fmt.Errorf("moqstats: writing %s: %w", name, err)
	}
	return nil
}
