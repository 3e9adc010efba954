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
	DefaultPrefix   = ".stats"
	DefaultInterval = time.Second
)

// Track names, in the order Origin.Publish receives them.
const (
	TrackPublisher          = "publisher.json"
	TrackSubscriber         = "subscriber.json"
	TrackInternalPublisher  = "internal/publisher.json"
	TrackInternalSubscriber = "internal/subscriber.json"
	TrackSessions           = "sessions.json"
	TrackInternalSessions   = "internal/sessions.json"
)

// tracks lists the six tracks in publish order. The first four are the
// per-broadcast tracks indexed by slot (tier*2 + role); the last two the
// session tracks indexed by tier.
var tracks = [...]string{
	TrackPublisher, TrackSubscriber, TrackInternalPublisher, TrackInternalSubscriber,
	TrackSessions, TrackInternalSessions,
}

// Tracks returns the six track names in the order Origin.Publish receives
// them.
func Tracks() []string { return append([]string(nil), tracks[:]...) }

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
	// Logger receives write failures from the background passes; nil
	// means slog.Default() at the time New runs.
	Logger *slog.Logger
}

// ErrInvalidConfig is wrapped by every configuration error New returns.
var ErrInvalidConfig = errors.New("moqstats: invalid config")

// ErrClosed is returned by Flush after Close.
var ErrClosed = errors.New("moqstats: stats closed")

// settings are a Config after defaults and normalization.
type settings struct {
	prefix   string
	path     string // advertised path
	interval time.Duration
	log      *slog.Logger
}

func (c *Config) settings() (settings, error) {
	s := settings{prefix: DefaultPrefix, interval: DefaultInterval, log: c.Logger}
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
