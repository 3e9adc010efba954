package moqstats

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/cpu"

	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/encode"
	"github.com/moqstats/moqstats/internal/prefetch"
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
// (tier*2 + role), each set up when a guard first uses it. Most broadcasts
// use one or two of the four slots; the first slot used lives in the entry
// itself, so the pass reads a typical broadcast, key and counters, from one
// object.
//
// Layout: first at offset 0, and the registry entry around it exactly 512
// bytes (registry.InlineKey is sized for it, and a test checks). Go's
// allocator places objects of a power-of-two size class up to 512 bytes at
// multiples of their size, with no header before them (larger objects
// with pointers get an 8-byte one), so every entry starts a cache line and
// first shares no line with another object.
type broadcastEntry struct {
	first slot
	slots [4]atomic.Pointer[slot]
}

// slotOf returns slot i of e, setting it up.
func slotOf(e *registry.Entry[broadcastEntry], i int) *slot {
	b := &e.Value
	if sl := b.slots[i].Load(); sl != nil {
		return sl
	}
	sl := &b.first
	if !sl.claimed.CompareAndSwap(false, true) {
		sl = new(slot)
	}
	sl.state = &e.State // before the slot is published below
	if b.slots[i].CompareAndSwap(nil, sl) {
		return sl
	}
	// Another guard set up slot i first.
	if sl == &b.first {
		sl.claimed.Store(false)
	}
	return b.slots[i].Load()
}

// pin counts a pin in sl and completes it; see pinOn.
func (sl *slot) pin() bool { return pinOn(&sl.Counters, counters.Pins, sl.state) }

// pinOn counts a pin at index i of c and completes it against st, the
// state of the entry c belongs to (package registry: count, then check).
// If the entry was collected meanwhile it withdraws the pin and reports
// false. Guard opens call it, never bumps.
func pinOn(c interface{ Add(i int, n uint64) }, i int, st *registry.State) bool {
	c.Add(i, 1)
	if st.Admit() {
		return true
	}
	c.Add(i, counters.Unpin)
	return false
}

// pinned reports whether a guard pins the entry: whether any slot's pin
// counters sum to nonzero. See registry's invariant 1 for why reading them
// slot by slot, cell by cell, is enough.
func (b *broadcastEntry) pinned() bool {
	var slots [4]*slot
	for i := range b.slots {
		slots[i] = b.slots[i].Load()
	}
	return pinnedIn(&slots)
}

// pinnedIn is pinned over slot pointers already loaded: the pass's first,
// careless look (Collect looks again, with care, before collecting).
func pinnedIn(slots *[4]*slot) bool {
	for _, sl := range slots {
		if sl != nil && sl.Pinned() {
			return true
		}
	}
	return false
}

// slotFields is one (broadcast, tier, role)'s counters, and, owned by the
// pass, what it last put in a frame for them.
type slotFields struct {
	counters.Counters
	emitted snapshot.Emitted[counters.Snapshot]
	// state is the lifetime state of the entry the slot belongs to, which
	// a guard checks after counting its pin (registry.State.Admit); set
	// before the slot is published.
	state *registry.State
	// claimed is set once an entry's own slot (broadcastEntry.first) is
	// installed, or being installed, as one of its four.
	claimed atomic.Bool
}

// slot pads slotFields to a power of two, a multiple of two cache lines.
// Go's allocator places objects of such sizes at multiples of their size,
// so the counters at offset 0 always start a line and share none with
// another slot's.
type slot struct {
	slotFields
	_ [slotSize - unsafe.Sizeof(slotFields{})]byte
}

const (
	lineSize  = unsafe.Sizeof(cpu.CacheLinePad{})
	slotAlign = 2 * lineSize
	slotSize  = (unsafe.Sizeof(slotFields{}) + slotAlign - 1) / slotAlign * slotAlign
)

func sessionPinned(e *sessionEntry) bool { return e.gauge.Pinned() }

// pinSession counts a pin on e's gauge and completes it; see pinOn.
func pinSession(e *registry.Entry[sessionEntry]) bool {
	return pinOn(&e.Value.gauge, counters.SessionPins, &e.State)
}

// sessionEntry is one auth root's session gauge on one tier, and what the
// pass last put in a frame for it.
type sessionEntry struct {
	gauge   counters.Gauge
	emitted snapshot.Emitted[counters.SessionSnapshot]
}

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
	s.broadcasts = registry.New[broadcastEntry](encode.AppendString)
	for t := range s.sessions {
		s.sessions[t] = registry.New[sessionEntry](encode.AppendString)
	}
	for i := range s.tracks {
		s.tracks[i] = snapshot.Track[counters.Snapshot]{Name: tracks[i], AppendMembers: encode.AppendBroadcastMembers}
	}
	for i := range s.sessionTracks {
		s.sessionTracks[i] = snapshot.Track[counters.SessionSnapshot]{Name: tracks[len(s.tracks)+i], AppendMembers: encode.AppendSessionMembers}
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
// dropped only once every track committed their final values, so an entry
// that opens and closes between two passes is always emitted. Collection,
// reading and offering share one loop so each entry's memory is visited
// once per pass.
func (s *Stats) pass() error {
	rows := s.broadcasts.Merge()
	var sessionRows [2][]registry.Row[sessionEntry]
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
		errs = appendErr(errs, flush(s.bc, &s.tracks[i]))
	}
	if collected {
		s.broadcasts.Retain(func(e *registry.Entry[broadcastEntry]) bool {
			for i := range e.Value.slots {
				if sl := e.Value.slots[i].Load(); sl != nil && !s.tracks[i].Settled(sl.Read(), &sl.emitted) {
					return false
				}
			}
			if hook := testHookDropped.Load(); hook != nil {
				(*hook)(e.Key(), &e.Value)
			}
			return true
		})
	}

	for t, rows := range sessionRows {
		m, tr := s.sessions[t], &s.sessionTracks[t]
		tr.Reset()
		collected := false
		for _, r := range rows {
			if !r.Value.gauge.Pinned() && m.Collect(r.Entry, sessionPinned) {
				collected = true
			}
			tr.Offer(r.Quoted(), r.Value.gauge.Read(), &r.Value.emitted, r.SameKey)
		}
		errs = appendErr(errs, flush(s.bc, tr))
		if collected {
			m.Retain(func(e *registry.Entry[sessionEntry]) bool {
				return tr.Settled(e.Value.gauge.Read(), &e.Value.emitted)
			})
		}
	}
	return errors.Join(errs...)
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
func (s *Stats) readBroadcasts(rows []registry.Row[broadcastEntry]) (collected bool) {
	for i := range min(prefetchAhead, len(rows)) {
		prefetchEntry(rows[i].Entry)
	}
	for j, r := range rows {
		if ahead := j + prefetchAhead; ahead < len(rows) {
			prefetchEntry(rows[ahead].Entry)
		}
		var slots [4]*slot
		for i := range r.Value.slots {
			slots[i] = r.Value.slots[i].Load()
		}
		// Collect before reading. Most rows are pinned, and a pinned row
		// needs no look at its state or the registry.
		if !pinnedIn(&slots) && s.broadcasts.Collect(r.Entry, (*broadcastEntry).pinned) {
			collected = true
		}
		for i, sl := range slots {
			if sl != nil {
				s.tracks[i].Offer(r.Quoted(), sl.Read(), &sl.emitted, r.SameKey)
			} else {
				s.tracks[i].Absent(r.SameKey)
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
func prefetchEntry(e *registry.Entry[broadcastEntry]) {
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

// flush writes t's frame unless its bytes equal the last frame written.
// Only a frame that reached the wire is committed.
func flush[V snapshot.Value](bc Broadcast, t *snapshot.Track[V]) error {
	if !t.Changed() {
		t.Commit(nil) // provably the last frame's bytes: nothing to encode
		return nil
	}
	frame := t.Frame()
	if !t.Unchanged(frame) {
		if err := bc.WriteFrame(t.Name, frame); err != nil {
			return fmt.Errorf("moqstats: writing %s: %w", t.Name, err)
		}
	}
	t.Commit(frame)
	return nil
}
