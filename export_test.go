package moqstats

import (
	"time"
	"unsafe"

	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/internal/moqpath"
	"github.com/moqstats/moqstats/internal/registry"
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
	if sl := e.Value.slots[slotIndex(t, r)].Load(); sl != nil {
		return sl.Read(), true
	}
	return snap, true
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

// Held and Kept return how many broadcast entries are held against
// MaxEntries and how many of them are retained; SessionsHeld is Held for
// tier t's session roots.
func Held(s *Stats) int                 { return s.broadcasts.Held() }
func Kept(s *Stats) int                 { return s.broadcasts.Kept() }
func SessionsHeld(s *Stats, t Tier) int { return s.sessions[t].Held() }

// SetClock replaces the clock passes read retention time from. Call it
// before any pass can run concurrently.
func SetClock(s *Stats, now func() time.Duration) { s.clock = now }

// SetHookPublish installs f to run in a goroutine creating an entry,
// between the map store that makes it visible and its publication.
func SetHookPublish(f func(key string)) (restore func()) {
	registry.SetTestHookPublish(f)
	return func() { registry.SetTestHookPublish(nil) }
}

// SetHookForget installs f to run in a pass as it starts forgetting a
// settled entry (broadcast or session root), before the registry lets go
// of it.
func SetHookForget(f func(key string)) (restore func()) {
	registry.SetTestHookForget(f)
	return func() { registry.SetTestHookForget(nil) }
}

// SetHookEvicted installs f to see every retained broadcast key (sessions
// false) or session root of tier External (sessions true) evicted or
// expired. Call it before any key can be retained.
func SetHookEvicted(s *Stats, sessions bool, f func(key string)) {
	if sessions {
		s.sessions[External].SetTestHookDropped(f)
		return
	}
	s.broadcasts.SetTestHookDropped(f)
}

// SessionRaw reads root's live session gauge on tier t.
func SessionRaw(s *Stats, t Tier, root string) (snap counters.SessionSnapshot, ok bool) {
	e, ok := s.sessions[t].Get(moqpath.Normalize(root))
	if !ok {
		return snap, false
	}
	return e.Value.gauge.Read(), true
}

// SetHookDuringPass installs f to run in every pass after it merged new
// entries and before it collects and reads its rows, and returns a
// function that removes it.
func SetHookDuringPass(f func()) (restore func()) {
	testHookDuringPass.Store(&f)
	return func() { testHookDuringPass.Store(nil) }
}

// SetHookDropped installs f to run for every collected broadcast entry a
// pass forgets, with the final counters it wrote for each slot (zero for
// slots never used).
func SetHookDropped(f func(key string, final *[4]counters.Snapshot)) (restore func()) {
	hook := func(key string, e *broadcastEntry) {
		var final [4]counters.Snapshot
		for i := range e.slots {
			if sl := e.slots[i].Load(); sl != nil {
				final[i] = sl.emitted.Value()
			}
		}
		f(key, &final)
	}
	testHookDropped.Store(&hook)
	return func() { testHookDropped.Store(nil) }
}

// SlotSize is the padded size of a slot's allocation, EntrySize that of a
// broadcast's registry entry, and LineSize the cache line size they are
// padded against. FirstSlotOffset is where the entry's own slot sits.
const (
	SlotSize        = unsafe.Sizeof(slot{})
	EntrySize       = unsafe.Sizeof(registry.Entry[broadcastEntry]{})
	LineSize        = lineSize
	FirstSlotOffset = unsafe.Offsetof(broadcastEntry{}.first)
)

// EntryAddr returns the address of path's live entry, 0 if none.
func EntryAddr(s *Stats, path string) uintptr {
	e, ok := s.broadcasts.Get(moqpath.Normalize(path))
	if !ok {
		return 0
	}
	return uintptr(unsafe.Pointer(e))
}

// TrackKey and SessionKey return the key a guard counts under: its path
// or root, or OverflowKey when it was folded.
func TrackKey(t *TrackGuard) string     { return t.slot().entry.Key() }
func SessionKey(g *SessionGuard) string { return g.e.Key() }

// TrackShards returns how many cells the counters a track guard bumps
// have allocated beyond their base cell: 0 while no two lanes ever held
// them at once.
func TrackShards(t *TrackGuard) int { return t.slot().Shards() }

// SetHookRegistering installs f to run in the registrar between adding a
// guard's cleanup and publishing it, and returns a func that removes it.
func SetHookRegistering(f func()) (restore func()) {
	testHookRegistering.Store(&f)
	return func() { testHookRegistering.Store(nil) }
}

// SetHookStopping installs f to run just before a guard's cleanup is
// stopped by its Close or by a registrar that found it closed, and returns
// a func that removes it.
func SetHookStopping(f func()) (restore func()) {
	testHookStopping.Store(&f)
	return func() { testHookStopping.Store(nil) }
}

// YoungSlots is how many guards of one kind a young ring holds.
const YoungSlots = youngSlots

// YoungRingSize is a young ring's size in bytes.
const YoungRingSize = unsafe.Sizeof(youngRing{})

// YoungLists returns how many young lists s has.
func YoungLists(s *Stats) int { return len(s.young.lists) }

// IsYoung reports whether a track guard opened with the leak check on is
// open and not registered yet.
func IsYoung(t *TrackGuard) bool { return t.young() }

// Guard sizes.
var GuardSizes = map[string]uintptr{
	"TrackGuard":        unsafe.Sizeof(TrackGuard{}),
	"BroadcastGuard":    unsafe.Sizeof(BroadcastGuard{}),
	"SubscriptionGuard": unsafe.Sizeof(SubscriptionGuard{}),
	"SessionGuard":      unsafe.Sizeof(SessionGuard{}),
}

// KeptRoundTrip encodes v as a retained key keeps it and decodes it back.
func KeptRoundTrip(v counters.Snapshot) counters.Snapshot {
	got, rest := nextKept(appendKept(nil, v))
	if len(rest) != 0 {
		panic("KeptRoundTrip: bytes left over")
	}
	return got
}
