package moqstats

import (
	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/internal/moqpath"
)

// Internals exposed to the black-box tests in package moqstats_test.

// Role names for tests.
const (
	RolePublisher  = publisher
	RoleSubscriber = subscriber
)

// Raw reads the counters of path's live entry on (tier, role), without
// creating the entry. ok is false when there is none.
func Raw(s *Stats, t Tier, r role, path string) (snap counters.Snapshot, ok bool) {
	e, ok := s.broadcasts.Get(moqpath.Normalize(path))
	if !ok {
		return snap, false
	}
	return e.Value.slots[slot(t, r)].Read(), true
}

// HasEntry reports whether path has a live (uncollected) entry.
func HasEntry(s *Stats, path string) bool {
	_, ok := s.broadcasts.Get(moqpath.Normalize(path))
	return ok
}

// Entries returns the number of live broadcast entries.
func Entries(s *Stats) int { return s.broadcasts.Len() }

// Rows returns the number of broadcast rows the pass still holds,
// collected ones awaiting their final frame included.
func Rows(s *Stats) int { return len(s.broadcasts.Rows()) }

// SessionRaw reads root's live session gauge on tier t.
func SessionRaw(s *Stats, t Tier, root string) (snap counters.SessionSnapshot, ok bool) {
	e, ok := s.sessions[t].Get(moqpath.Normalize(root))
	if !ok {
		return snap, false
	}
	return e.Value.gauge.Read(), true
}

// Shards returns the per-P cells allocated for path's (tier, role) slot.
func Shards(s *Stats, t Tier, r role, path string) int {
	e, ok := s.broadcasts.Get(moqpath.Normalize(path))
	if !ok {
		return -1
	}
	return e.Value.slots[slot(t, r)].Shards()
}

// SetHookAfterCollect installs f to run in every pass between collection
// and reading, and returns a function that removes it.
func SetHookAfterCollect(f func()) (restore func()) {
	testHookAfterCollect.Store(&f)
	return func() { testHookAfterCollect.Store(nil) }
}

// SetHookDropped installs f to run for every collected broadcast entry a
// pass forgets, with the final counters it wrote for each slot.
func SetHookDropped(f func(key string, final *[4]counters.Snapshot)) (restore func()) {
	testHookDropped.Store(&f)
	return func() { testHookDropped.Store(nil) }
}
