package moqstats

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/snapshot"
	"github.com/moqstats/moqstats/zframe"
)

// Stats is the aggregator: one per relay. Sessions get tier-scoped Handles
// from Tier. A *Stats is safe for concurrent use; a nil *Stats is a
// disabled one.
type Stats struct {
	settings
	bc  Broadcast // nil when disabled
	app Appender  // bc, when Compressed

	broadcasts *broadcastMap
	sessions   [2]*sessionMap // by Tier

	// closed is set by Close or Shutdown; guards are no longer handed out
	// after it.
	closed atomic.Bool
	stop   chan struct{} // closed by Close (or Shutdown) to stop run
	done   chan struct{} // closed by run when it returns
	final  chan struct{} // closed once the final pass and broadcast Close are done

	// start and clock give the pass its monotonic time, for retention.
	start time.Time
	clock func() time.Duration

	leaks atomic.Uint64
	// young holds guards not yet registered with the leak check; nil
	// without it (young.go).
	young *youngLists
	// reclaim holds the cleanup functions of guards, bound to s.
	reclaim reclaimers
	// Logs of failed background passes, reclaimed guards and folded keys,
	// each at most once a second.
	passLog, leakLog, overflowLog rateLimit

	// mu serializes passes and guards everything below.
	mu            sync.Mutex
	finished      bool // the final pass is over: nothing is written after
	tracks        [4]snapshot.Track[counters.Snapshot]
	sessionTracks [2]snapshot.Track[counters.SessionSnapshot]
	// z are the compressed siblings' writers, indexed like the six track
	// names; nil unless Compressed.
	z [6]*zframe.Writer
}

// Tracks returns the names of the tracks the stats broadcast carries, in
// the order Origin.Publish received them: the six of the package-level
// Tracks, each followed by its compressed sibling with Config.Compressed.
// It is nil for a disabled Stats.
func (s *Stats) Tracks() []string {
	if s == nil || s.bc == nil {
		return nil
	}
	return trackList(s.compressed)
}

// Enabled reports whether s publishes stats: it has an Origin and is not
// closed.
func (s *Stats) Enabled() bool { return s != nil && s.bc != nil && !s.closed.Load() }

// Prefix returns the normalized top-level prefix (".stats" by default),
// also for a disabled Stats. It is "" for a nil *Stats.
func (s *Stats) Prefix() string {
	if s == nil {
		return ""
	}
	return s.prefix
}

// Path returns the advertised path of the stats broadcast, "" when stats
// are disabled. It stays set after Close.
func (s *Stats) Path() string {
	if s == nil || s.bc == nil {
		return ""
	}
	return s.path
}

// Tier returns a handle whose bumps land in tier t's counters. An unknown
// tier (neither External nor Internal) yields a no-op handle, as does a
// disabled or closed Stats.
func (s *Stats) Tier(t Tier) Handle {
	if !s.Enabled() || t > Internal {
		return Handle{tier: t}
	}
	return Handle{s: s, tier: t}
}

// Leaked returns how many guards were dropped without Close and closed by
// the garbage collector instead (see Config.DisableLeakCheck). Their
// counts are exact; a guard is reclaimed some time after it becomes
// unreachable, when a garbage collection finds it.
func (s *Stats) Leaked() uint64 {
	if s == nil {
		return 0
	}
	return s.leaks.Load()
}

// Overflowed returns how many lookups of a path or root were folded into
// OverflowKey, because MaxEntries was reached or the key was longer than
// MaxPathLen.
func (s *Stats) Overflowed() uint64 {
	if s == nil || s.bc == nil {
		return 0
	}
	n := s.broadcasts.Folded()
	for _, m := range s.sessions {
		n += m.Folded()
	}
	return n
}

// rateLimit lets one event through per second.
type rateLimit struct {
	next       atomic.Int64 // unix nanoseconds
	suppressed atomic.Uint64
}

// allow reports whether an event may be logged now, and how many were
// suppressed since the last one that was.
func (r *rateLimit) allow() (ok bool, suppressed uint64) {
	now := time.Now().UnixNano()
	next := r.next.Load()
	if now < next || !r.next.CompareAndSwap(next, now+int64(time.Second)) {
		r.suppressed.Add(1)
		return false, 0
	}
	return true, r.suppressed.Swap(0)
}

// logKey shortens a key for a log line: keys come from clients and may be
// long.
func logKey(key string) string {
	const max = 96
	if len(key) <= max {
		return key
	}
	return key[:max] + "..."
}
