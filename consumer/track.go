package consumer

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/internal/moqpath"
)

// Kind is what a track carries.
type Kind uint8

const (
	// Publisher tracks (publisher.json) carry egress per broadcast: this
	// node publishing to its peers and viewers.
	Publisher Kind = iota
	// Subscriber tracks (subscriber.json) carry ingress per broadcast.
	Subscriber
	// SessionsKind tracks (sessions.json) carry sessions per auth root.
	SessionsKind
)

// String returns "publisher", "subscriber" or "sessions", the label values
// dashboards use.
func (k Kind) String() string {
	switch k {
	case Publisher:
		return "publisher"
	case Subscriber:
		return "subscriber"
	case SessionsKind:
		return "sessions"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Track is a parsed stats track name:
// [<tier>/]{publisher,subscriber,sessions}.json, or its compressed
// sibling with the ".z" suffix.
type Track struct {
	// Tier is the track's tier label: "" for the default tier (moqstats'
	// External), "internal" for moqstats' Internal, or any label a newer
	// producer uses ("region/sjc").
	Tier string
	Kind Kind
	// Compressed is set for a compressed sibling (".json.z"): groups of
	// a DEFLATE-compressed snapshot and merge patches, which carry the
	// same values as the plain track. The Aggregator keeps one state per
	// plain track, so View rows always have it unset.
	Compressed bool
}

// Name returns the track name Track was parsed from.
func (t Track) Name() string {
	n := t.Kind.String() + ".json"
	if t.Tier != "" {
		n = t.Tier + "/" + n
	}
	if t.Compressed {
		n += moqstats.CompressedSuffix
	}
	return n
}

// plain returns the plain track of t: the identity the Aggregator keeps
// its state under, whichever flavor carried the values.
func (t Track) plain() Track {
	t.Compressed = false
	return t
}

// TierName returns the tier as dashboards show it: "external" for the
// default tier, and the label otherwise. A producer that names a tier
// "external" shares the default tier's name.
func (t Track) TierName() string {
	if t.Tier == "" {
		return moqstats.External.String()
	}
	return t.Tier
}

// ErrCompressed is returned by Aggregator.Observe for a frame of a
// compressed (.z) track: such a frame only decodes after the frames of
// its group before it. Decode them with a CompressedTrack and pass its
// value to ObserveTraffic or ObservePresence; the followers do.
var ErrCompressed = errors.New("consumer: compressed track")

// ErrNotStatsTrack is returned for a name that is not a stats track.
var ErrNotStatsTrack = errors.New("consumer: not a stats track")

// ParseTrack parses a stats track name: an optional tier label (non-empty,
// without a leading or trailing '/' or a "//"), then publisher.json,
// subscriber.json or sessions.json, then an optional ".z" for a
// compressed sibling (Track.Compressed). The six tracks moqstats writes,
// and their compressed siblings, all parse; so do the named tiers of
// newer producers.
func ParseTrack(name string) (Track, error) {
	base, compressed := strings.CutSuffix(name, moqstats.CompressedSuffix)
	tier := ""
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		tier, base = base[:i], base[i+1:]
		if tier == "" || tier[0] == '/' || tier[len(tier)-1] == '/' || strings.Contains(tier, "//") {
			return Track{}, fmt.Errorf("%w: %q has a malformed tier", ErrNotStatsTrack, name)
		}
	}
	var k Kind
	switch base {
	case "publisher.json":
		k = Publisher
	case "subscriber.json":
		k = Subscriber
	case "sessions.json":
		k = SessionsKind
	default:
		return Track{}, fmt.Errorf("%w: %q", ErrNotStatsTrack, name)
	}
	return Track{Tier: tier, Kind: k, Compressed: compressed}, nil
}

// plainName returns the name of the plain track of the stats track name,
// or name itself if it is not one.
func plainName(name string) string {
	if t, err := ParseTrack(name); err == nil && t.Compressed {
		return t.plain().Name()
	}
	return name
}

// NodeName returns the node a stats broadcast path names, reversing how a
// producer builds it: prefix/node/<node> gives <node> ("sjc/1"), and
// prefix/node gives "" (no node configured). prefix "" means
// moqstats.DefaultPrefix. Both are compared after normalization (leading,
// trailing and repeated '/' dropped). ok is false for a path outside
// prefix/node.
func NodeName(prefix, path string) (node string, ok bool) {
	if prefix == "" {
		prefix = moqstats.DefaultPrefix
	}
	root := moqpath.Normalize(prefix) + "/node"
	p := moqpath.Normalize(path)
	if p == root {
		return "", true
	}
	if rest, found := strings.CutPrefix(p, root+"/"); found {
		return rest, true
	}
	return "", false
}
