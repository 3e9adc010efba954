package httpstats

import "time"

// SetClock replaces the clock Publish numbers groups from. Call it before
// the first Publish.
func SetClock(o *Origin, now func() time.Time) { o.now = now }

// Pending counts the streams of the announced broadcast that have events
// due that their handler has not taken yet (queued, or a resync pending,
// as a new stream has until its handler first looks).
func Pending(o *Origin) int {
	o.mu.Lock()
	b := o.current
	o.mu.Unlock()
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, t := range b.tracks {
		for s := range t.streams {
			if s.resync || len(s.queue) > 0 {
				n++
			}
		}
	}
	return n
}
