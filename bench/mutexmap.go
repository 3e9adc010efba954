package bench

import "sync"

// MutexMap is the obvious registry: a mutex around a map of refcounted
// entries holding the reference's counters. Opening a guard locks, looks
// up or creates, and pins; closing locks and unpins.
type MutexMap struct {
	mu sync.Mutex
	m  map[string]*MutexEntry
}

// MutexEntry is one path's counters and pin count.
type MutexEntry struct {
	refs int // guarded by MutexMap.mu
	SeedEntry
}

// NewMutexMap returns an empty map.
func NewMutexMap() *MutexMap { return &MutexMap{m: map[string]*MutexEntry{}} }

// Open pins path's entry, creating it, and opens a publisher track on it.
func (m *MutexMap) Open(path string) (*MutexEntry, *SeedTrack) {
	m.mu.Lock()
	e := m.m[path]
	if e == nil {
		e = &MutexEntry{}
		m.m[path] = e
	}
	e.refs++
	m.mu.Unlock()
	return e, NewSeedTrack(&e.SeedEntry, 0)
}

// Close closes the track and unpins the entry (the map keeps it, as a
// collector would until its next pass).
func (m *MutexMap) Close(e *MutexEntry, t *SeedTrack) {
	t.Close()
	m.mu.Lock()
	e.refs--
	m.mu.Unlock()
}
