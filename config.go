package moqstats

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/moqstats/moqstats/internal/moqpath"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultPrefix     = ".stats"
	DefaultInterval   = time.Second
	DefaultRetention  = 5 * time.Minute
	DefaultMaxEntries = 65536
	DefaultMaxPathLen = 1024
	// DefaultCloseTimeout is how long Close retries its final pass.
	DefaultCloseTimeout = 5 * time.Second
)

// NoRetention, as Config.Retention, turns retention off: a collected
// broadcast or root that comes back starts from zero, as in moq-net.
const NoRetention time.Duration = -1

// OverflowKey is the key that traffic past Config.MaxEntries or
// Config.MaxPathLen is folded into, on every track. No normalized path or
// root can equal it (normalized paths never start with '/'), so it never
// mixes with a real key.
const OverflowKey = "/overflow"

// Track names, in the order Origin.Publish receives them.
const (
	TrackPublisher          = "publisher.json"
	TrackSubscriber         = "subscriber.json"
	TrackInternalPublisher  = "internal/publisher.json"
	TrackInternalSubscriber = "internal/subscriber.json"
	TrackSessions           = "sessions.json"
	TrackInternalSessions   = "internal/sessions.json"
)

// CompressedSuffix names a track's compressed sibling: publisher.json.z
// carries what publisher.json does, as groups of DEFLATE-compressed
// snapshots and merge patches (Config.Compressed).
const CompressedSuffix = ".z"

// tracks lists the six tracks in publish order. The first four are the
// per-broadcast tracks indexed by slot (tier*2 + role); the last two the
// session tracks indexed by tier.
var tracks = [...]string{
	TrackPublisher, TrackSubscriber, TrackInternalPublisher, TrackInternalSubscriber,
	TrackSessions, TrackInternalSessions,
}

// Tracks returns the six plain track names in the order Origin.Publish
// receives them. With Config.Compressed each is followed by its
// compressed sibling: see Stats.Tracks.
func Tracks() []string { return append([]string(nil), tracks[:]...) }

// compressedTracks are the compressed siblings of tracks, in its order.
var compressedTracks = func() (z [len(tracks)]string) {
	for i, t := range tracks {
		z[i] = t + CompressedSuffix
	}
	return z
}()

// trackList is the list Publish receives: the six, each followed by its
// compressed sibling when compressed.
func trackList(compressed bool) []string {
	if !compressed {
		return Tracks()
	}
	out := make([]string, 0, 2*len(tracks))
	for i, t := range tracks {
		out = append(out, t, compressedTracks[i])
	}
	return out
}

// Config configures New. The zero Config builds a disabled Stats.
type Config struct {
	// Origin receives the stats broadcast. nil disables stats: every call
	// is a cheap no-op and no goroutine runs.
	Origin Origin
	// Prefix is the top-level path stats are published under; "" means
	// ".stats". Broadcast paths under it are not counted (see Cycles in
	// the package doc). A Prefix that normalizes to "" is an error: it
	// would swallow every path.
	Prefix string
	// Node disambiguates relays that share a cluster origin; it may have
	// several segments ("sjc/1"). "" (or only slashes) means none.
	Node string
	// Interval is the time between passes; 0 means one second. Negative
	// is an error.
	Interval time.Duration
	// Logger receives write failures from the background passes, guards
	// reclaimed without Close and keys folded into OverflowKey, each at
	// most once a second (with a count of what was left out); nil means
	// slog.Default() at the time New runs.
	Logger *slog.Logger

	// Retention is how long the final counts of a collected broadcast
	// slot, or session root, are kept: a path or root that comes back
	// within it continues from them, so a counter a frame shows for a key
	// never goes back while it is retained. 0 means DefaultRetention;
	// NoRetention (any negative value) keeps nothing. Retained keys are
	// not in frames; each costs about 145 bytes plus its key, and its
	// final counts in uvarints (15 to 30 bytes) per (tier, role) it was
	// used on: about 165 bytes for a 22-byte path used on one (no shards,
	// no padding; BenchmarkRetainedMemory). They count against MaxEntries.
	Retention time.Duration
	// MaxEntries caps the distinct broadcast paths held, live or
	// retained, and the session roots held per tier; 0 means
	// DefaultMaxEntries, negative is an error. A new key at the cap first
	// evicts the oldest retained one; with none, its traffic is folded
	// into OverflowKey, so totals stay exact while frames stay bounded.
	MaxEntries int
	// MaxPathLen caps the length in bytes of a path or root, after
	// normalization; 0 means DefaultMaxPathLen, negative is an error.
	// Longer ones are folded into OverflowKey.
	MaxPathLen int
	// Compressed adds a compressed sibling to every track, named with
	// CompressedSuffix and published right after it, as moq-net publishes
	// today: each group a DEFLATE stream whose frame 0 is a snapshot (the
	// plain frame) and whose later frames are RFC 7396 merge patches (see
	// package zframe). The Origin's Broadcast must implement Appender. The
	// plain tracks do not change.
	Compressed bool
	// DeltaRatio ends a compressed group once the deltas written in it
	// pass DeltaRatio times its snapshot, compressed sizes; 0 means 8,
	// negative is an error. A group also ends at 256 frames.
	DeltaRatio int
	// NewerCounters writes the twelve fields moq-net writes today instead
	// of the nine of its stats module's first form: announced_bytes (the
	// broadcast name's length, at announce and at unannounce), fetches
	// (BroadcastGuard.Fetch) and datagrams (TrackGuard.Datagram), in
	// moq-net's order. Off, frames are byte for byte the nine-field ones.
	NewerCounters bool

	// CloseTimeout is how long Close keeps retrying its final pass while
	// writes fail (see Stats.Shutdown); 0 means DefaultCloseTimeout, and a
	// negative value makes one attempt.
	CloseTimeout time.Duration

	// DisableLeakCheck turns off reclaiming guards that are dropped
	// without Close. By default a guard that becomes unreachable while
	// open is closed by the garbage collector (runtime.AddCleanup), counted
	// in Stats.Leaked and logged. It never costs on a bump, and little on
	// guard open and close: a guard gets its cleanup only if it is still
	// open at the next pass or collection (see the package doc). Relays
	// that close every guard may turn it off.
	DisableLeakCheck bool
}

// ErrInvalidConfig is wrapped by every configuration error New returns.
var ErrInvalidConfig = errors.New("moqstats: invalid config")

// ErrClosed is returned by Flush after Close (or Shutdown).
var ErrClosed = errors.New("moqstats: stats closed")

// settings are a Config after defaults and normalization.
type settings struct {
	prefix     string
	path       string // advertised path
	interval   time.Duration
	log        *slog.Logger
	retention  time.Duration // <= 0: none
	maxEntries int
	maxPathLen int
	leakCheck  bool
	compressed bool
	deltaRatio int
	newer      bool
	// closeTimeout bounds Close's retries; negative: one attempt.
	closeTimeout time.Duration
}

func (c *Config) settings() (settings, error) {
	s := settings{
		prefix:     DefaultPrefix,
		interval:   DefaultInterval,
		log:        c.Logger,
		retention:  DefaultRetention,
		maxEntries: DefaultMaxEntries,
		maxPathLen: DefaultMaxPathLen,
		leakCheck:  !c.DisableLeakCheck,
		compressed: c.Compressed,
		deltaRatio: c.DeltaRatio,
		newer:      c.NewerCounters,

		closeTimeout: DefaultCloseTimeout,
	}
	if c.CloseTimeout != 0 {
		s.closeTimeout = c.CloseTimeout
	}
	if c.DeltaRatio < 0 {
		return s, fmt.Errorf("%w: negative DeltaRatio %d", ErrInvalidConfig, c.DeltaRatio)
	}
	if c.Prefix != "" {
		s.prefix = moqpath.Normalize(c.Prefix)
		if s.prefix == "" {
			return s, fmt.Errorf("%w: Prefix %q normalizes to the empty path, which would cover every broadcast", ErrInvalidConfig, c.Prefix)
		}
	}
	switch {
	case c.Interval < 0:
		return s, fmt.Errorf("%w: negative Interval %v", ErrInvalidConfig, c.Interval)
	case c.Interval > 0:
		s.interval = c.Interval
	}
	if c.Retention != 0 {
		s.retention = c.Retention
	}
	switch {
	case c.MaxEntries < 0:
		return s, fmt.Errorf("%w: negative MaxEntries %d", ErrInvalidConfig, c.MaxEntries)
	case c.MaxEntries > 0:
		s.maxEntries = c.MaxEntries
	}
	switch {
	case c.MaxPathLen < 0:
		return s, fmt.Errorf("%w: negative MaxPathLen %d", ErrInvalidConfig, c.MaxPathLen)
	case c.MaxPathLen > 0:
		s.maxPathLen = c.MaxPathLen
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if c.Origin != nil {
		// A nil pointer in a non-nil interface would panic inside
		// Publish; report it as the misconfiguration it is.
		if v := reflect.ValueOf(c.Origin); v.Kind() == reflect.Pointer && v.IsNil() {
			return s, fmt.Errorf("%w: Origin is a nil %T", ErrInvalidConfig, c.Origin)
		}
	}
	s.path = advertisedPath(s.prefix, moqpath.Normalize(c.Node))
	return s, nil
}

// advertisedPath is <prefix>/node[/<node>]. The fixed "node" segment leaves
// room for sibling categories (say <prefix>/cluster) under one prefix.
func advertisedPath(prefix, node string) string {
	return moqpath.Join(moqpath.Join(prefix, "node"), node)
}
