package consumer

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/moqstats/moqstats"
)

// Aggregator defaults, applied when the corresponding Config field is zero.
const (
	// DefaultStaleAfter is how long a track may go without a frame before
	// its rates read as zero: three of moqstats' default one-second
	// intervals.
	DefaultStaleAfter = 3 * time.Second
	// DefaultRetention is the producers' retention window the Aggregator
	// assumes when Config.Retention is zero: moqstats' own default.
	DefaultRetention = moqstats.DefaultRetention
	// DefaultRetentionSlack is added to the retention window before an
	// absence proves a returning key re-created; see the package doc.
	DefaultRetentionSlack = 5 * time.Second
	// DefaultMaxKeys caps the keys an Aggregator holds, summed over nodes
	// and tracks.
	DefaultMaxKeys = 1 << 20
	// DefaultMaxKeysPerNode caps the keys an Aggregator holds for one
	// node, over its tracks: a quarter of DefaultMaxKeys, which is what a
	// moqstats node at its default MaxEntries (65,536 paths) on all four
	// per-broadcast tracks shows.
	DefaultMaxKeysPerNode = DefaultMaxKeys / 4
)

// NoRetention, as Config.Retention, says that the producers keep nothing
// of a collected entry (moqstats.NoRetention, or a producer without
// retention): a key absent for longer than RetentionSlack comes back
// from zero.
const NoRetention time.Duration = -1

// ErrKeyLimit is returned by Observe when a frame would take the
// Aggregator past Config.MaxKeys, or its node past Config.MaxKeysPerNode;
// the frame is dropped whole.
var ErrKeyLimit = errors.New("consumer: key limit reached")

// Config configures an Aggregator. The zero Config is ready to use for
// moqstats producers with their default retention.
type Config struct {
	// Decoder decodes the frames passed to Observe.
	Decoder Decoder
	// StaleAfter: a track whose last frame is older than this at query
	// time reports zero rates, since producers write a track whenever
	// anything on it changes. Set it to about three times the producers'
	// Interval. Default DefaultStaleAfter.
	StaleAfter time.Duration
	// Retention is the producers' retention window (moqstats'
	// Config.Retention): a path that comes back within it continues from
	// its old counts, one that comes back later starts from zero. 0 means
	// DefaultRetention, moqstats' default; NoRetention (any negative
	// value) means producers keep nothing. It must be at least the
	// longest window any followed producer uses: a key whose absence,
	// seen on every track of its node, lasted longer than Retention +
	// RetentionSlack starts a new segment when it comes back, even if no
	// counter went down (see "Segments" and "The ambiguity band" in the
	// package doc). A window longer than the producers' only narrows what
	// the Aggregator can tell without a decrease.
	Retention time.Duration
	// RetentionSlack must cover two producer intervals, the longest
	// delivery delay of a frame (a write that fails and is retried
	// delays it too) and the longest stall of a producer's pass; default
	// DefaultRetentionSlack.
	RetentionSlack time.Duration
	// ExpireAfter, if positive, bounds how long a key is kept once it is
	// idle: a key absent from its node's frames and not live for longer
	// than ExpireAfter is dropped from the View, its lifetime total folded
	// into its track's expired total (TrackRow.Expired), so sums over keys
	// stay exact. It must exceed the retention window plus
	// RetentionSlack, so that a dropped key can only come back as a new
	// segment; New rejects a shorter one. 0 keeps every key. See
	// "Expiry" in the package doc.
	ExpireAfter time.Duration
	// MaxKeys caps the keys held, over all nodes and tracks; default
	// DefaultMaxKeys. With ExpireAfter set, a frame that would exceed it
	// first expires every key that may already be dropped safely (idle
	// for longer than the retention window plus RetentionSlack), at most
	// once a second of frame time.
	MaxKeys int
	// MaxKeysPerNode caps the keys held for one node, over its tracks,
	// so that a node sending ever new keys (buggy, or compromised) runs
	// into its own quota and not into everyone's: the other nodes keep
	// MaxKeys - MaxKeysPerNode for themselves. Default
	// DefaultMaxKeysPerNode, or MaxKeys if that is lower. A frame that
	// would exceed it is treated as one that would exceed MaxKeys.
	MaxKeysPerNode int
}

// Aggregator turns the frames of one or more nodes into lifetime totals,
// rates and live gauges, following the rules in the package doc. Feed it
// with Observe (or ObserveTraffic, ObservePresence), EndTrack and Gap;
// query it with View. It is safe for concurrent use: followers feed it
// from their own goroutines.
type Aggregator struct {
	cfg    Config
	window time.Duration // the retention window plus slack: absences longer than this prove a re-creation

	mu        sync.Mutex
	nodes     map[string]*nodeState // guarded by mu
	keys      int                   // keys held, over all tracks; guarded by mu
	nextSweep time.Time             // the next frame at or after this sweeps for expired keys; guarded by mu
	// nextCapSweep: the next frame at or after this that finds MaxKeys
	// reached sweeps for keys that may be dropped; guarded by mu.
	nextCapSweep time.Time
}

// capSweepEvery is the least frame time between two sweeps made because
// a frame found MaxKeys reached.
const capSweepEvery = time.Second

type nodeState struct {
	tracks map[string]*trackState // by track name
	keys   int                    // keys held, over the node's tracks
}

// trackState is one node's track: its keys and the times of its last two
// frames, which delimit the interval every rate on it is measured over.
type trackState struct {
	track  Track
	seq    uint64    // frames applied; a key seen in frame seq is in the latest
	last   time.Time // time of frame seq; zero before the first
	prev   time.Time // time of frame seq-1; zero if none (or the track restarted)
	frames uint64    // frames applied since the track started or restarted
	ended  bool      // EndTrack was called and no frame came since
	endAt  time.Time
	// gapAt is the latest time frames of the track may have been lost or
	// delivered late (Gap): what happened before it is unknown, so no
	// absence is measured across it.
	gapAt time.Time
	gaps  uint64 // Gaps reported, ever
	keys  map[string]*keyState
	// live holds the keys whose latest appearance showed them live; a
	// frame without one of them shows it went idle.
	live map[string]*keyState
	// expired sums the lifetime totals of the keys dropped by expiry.
	expired     [NumTrafficFields]uint64
	expiredKeys int
}

// keyState is one key of one node's track. Counters are arrays indexed
// by TrafficField or PresenceField.
type keyState struct {
	// key is the key, in memory of its own: the map entries that name
	// the key use this string, never one taken from a frame, which
	// would hold the whole frame.
	key      string
	base     [NumTrafficFields]uint64 // the last values of every ended segment, summed
	cur      [NumTrafficFields]uint64 // the current segment's last values
	delta    [NumTrafficFields]uint64 // increase over the interval ending at seenSeq
	hasDelta bool                     // false on the key's first frame in a segment we did not see start
	seenSeq  uint64                   // the track frame that last carried the key
	seenAt   time.Time
	// idle: the key is not live as of the track's latest frame (its last
	// appearance showed it idle, or a later frame left it out), or its
	// segment ended. quietFrom is the time of the first frame that showed
	// it so.
	idle      bool
	quietFrom time.Time
	ended     bool // its segment ended with its track; the next frame starts one
	segments  int
}

// New returns an Aggregator. It returns an error wrapping
// ErrInvalidConfig for negative durations or limits, and for an
// ExpireAfter that does not exceed the retention window plus slack.
func New(cfg Config) (*Aggregator, error) {
	if cfg.StaleAfter < 0 || cfg.RetentionSlack < 0 || cfg.ExpireAfter < 0 || cfg.MaxKeys < 0 || cfg.MaxKeysPerNode < 0 ||
		cfg.Decoder.MaxFrameSize < 0 || cfg.Decoder.MaxEntries < 0 || cfg.Decoder.MaxDepth < 0 ||
		cfg.Decoder.MaxKeyLen < 0 || cfg.Decoder.MaxGroupFrames < 0 {
		return nil, fmt.Errorf("%w: negative duration or limit in %+v", ErrInvalidConfig, cfg)
	}
	if cfg.StaleAfter == 0 {
		cfg.StaleAfter = DefaultStaleAfter
	}
	switch {
	case cfg.Retention == 0:
		cfg.Retention = DefaultRetention
	case cfg.Retention < 0:
		cfg.Retention = NoRetention
	}
	if cfg.RetentionSlack == 0 {
		cfg.RetentionSlack = DefaultRetentionSlack
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.MaxKeysPerNode == 0 {
		cfg.MaxKeysPerNode = DefaultMaxKeysPerNode
	}
	cfg.MaxKeysPerNode = min(cfg.MaxKeysPerNode, cfg.MaxKeys)
	window := max(cfg.Retention, 0) + cfg.RetentionSlack
	if cfg.ExpireAfter > 0 && cfg.ExpireAfter <= window {
		return nil, fmt.Errorf("%w: ExpireAfter %v does not exceed the retention window plus slack (%v): an expired key could come back continuing counts already counted",
			ErrInvalidConfig, cfg.ExpireAfter, window)
	}
	return &Aggregator{cfg: cfg, window: window, nodes: map[string]*nodeState{}}, nil
}

// ErrInvalidConfig is wrapped by the errors New returns.
var ErrInvalidConfig = errors.New("consumer: invalid config")

// Observe decodes frame, read from track of node's stats broadcast at time
// at, and applies it. A frame that does not decode (a *FrameError) or
// would exceed MaxKeys is dropped and changes nothing: counters are
// cumulative, so the next good frame carries everything it would have.
// Times should not go backwards per track; an earlier one is taken as the
// track's latest. A frame of a compressed track (".json.z") cannot be
// decoded alone: Observe returns ErrCompressed for one (see
// CompressedTrack).
func (a *Aggregator) Observe(node, track string, at time.Time, frame []byte) error {
	t, err := ParseTrack(track)
	if err != nil {
		return err
	}
	if t.Compressed {
		return fmt.Errorf("%w: node %q track %q: a frame of one decodes only after the frames of its group before it; rebuild the values with a CompressedTrack and pass them to ObserveTraffic or ObservePresence", ErrCompressed, node, track)
	}
	if t.Kind == SessionsKind {
		f, err := a.cfg.Decoder.Presence(frame)
		if err != nil {
			return located(err, node, track)
		}
		return a.ObservePresence(node, t, at, f)
	}
	f, err := a.cfg.Decoder.Traffic(frame)
	if err != nil {
		return located(err, node, track)
	}
	return a.ObserveTraffic(node, t, at, f)
}

// located records where a frame error came from.
func located(err error, node, track string) error {
	if fe, ok := err.(*FrameError); ok {
		fe.Node, fe.Track = node, track
	}
	return err
}

// ObserveTraffic applies a decoded per-broadcast frame; track must be a
// Publisher or Subscriber track. A compressed track's value (from a
// CompressedTrack) applies to its plain track: follow one flavor of each
// track, not both. f is read during the call and not kept.
func (a *Aggregator) ObserveTraffic(node string, track Track, at time.Time, f TrafficFrame) error {
	if track.Kind == SessionsKind {
		return fmt.Errorf("consumer: node %q: traffic frame for sessions track %q", node, track.Name())
	}
	return apply(a, node, track.plain(), at, f, func(v *Traffic) *[NumTrafficFields]uint64 { return v.counters() })
}

// ObservePresence applies a decoded session frame; track must be a
// sessions track, plain or compressed, as for ObserveTraffic.
func (a *Aggregator) ObservePresence(node string, track Track, at time.Time, f PresenceFrame) error {
	if track.Kind != SessionsKind {
		return fmt.Errorf("consumer: node %q: session frame for track %q", node, track.Name())
	}
	return apply(a, node, track.plain(), at, f, func(v *Presence) *[NumTrafficFields]uint64 {
		return &[NumTrafficFields]uint64{v.Sessions, v.SessionsClosed}
	})
}

func apply[V Traffic | Presence](a *Aggregator, node string, track Track, at time.Time, f map[string]V, vec func(*V) *[NumTrafficFields]uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, ts := a.track(node, track)
	fresh := func() int {
		k := 0
		for key := range f {
			if _, ok := ts.keys[key]; !ok {
				k++
			}
		}
		return k
	}
	add := fresh()
	over := func() bool { return a.keys+add > a.cfg.MaxKeys || n.keys+add > a.cfg.MaxKeysPerNode }
	if over() && a.cfg.ExpireAfter > 0 && !at.Before(a.nextCapSweep) {
		// Keys that may be dropped safely go before the frame does. At
		// most once a second: a sweep costs every key held, and a
		// producer at the cap may send a frame after frame.
		a.expire(at, a.window)
		a.nextCapSweep = at.Add(capSweepEvery)
		add = fresh()
	}
	if n.keys+add > a.cfg.MaxKeysPerNode {
		return fmt.Errorf("%w: node %q track %q: %d keys held for the node, frame adds %d, limit per node %d",
			ErrKeyLimit, node, track.Name(), n.keys, add, a.cfg.MaxKeysPerNode)
	}
	if a.keys+add > a.cfg.MaxKeys {
		return fmt.Errorf("%w: node %q track %q: %d keys held, frame adds %d, limit %d",
			ErrKeyLimit, node, track.Name(), a.keys, add, a.cfg.MaxKeys)
	}
	a.keys += add
	n.keys += add

	if at.Before(ts.last) {
		at = ts.last
	}
	ts.prev, ts.last = ts.last, at
	if ts.frames == 0 {
		ts.prev = time.Time{} // no interval before a track's first frame
	}
	ts.seq++
	ts.frames++
	ts.ended = false
	for k, v := range f {
		cur := vec(&v)
		ks := ts.keys[k]
		if ks == nil {
			// A decoded key shares the memory of its whole frame: a copy
			// keeps one frame's worth per new key from being held.
			ks = &keyState{key: strings.Clone(k), cur: *cur, segments: 1}
			ts.keys[ks.key] = ks
		} else {
			a.advance(n, ts, k, ks, cur, at)
		}
		ks.seenSeq, ks.seenAt = ts.seq, at
		if liveVec(track.Kind, cur) {
			ks.idle = false
			ts.live[ks.key] = ks // the key's own copy: f is not kept
		} else {
			ks.idle, ks.quietFrom = true, at
			delete(ts.live, k)
		}
	}
	// Every frame a producer writes carries every key live at its pass:
	// a live key left out went idle since its last appearance.
	for k, ks := range ts.live {
		if ks.seenSeq != ts.seq {
			ks.idle, ks.quietFrom = true, at
			delete(ts.live, k)
		}
	}
	if a.cfg.ExpireAfter > 0 && !at.Before(a.nextSweep) {
		a.expire(at, a.cfg.ExpireAfter)
		a.nextSweep = at.Add(a.cfg.ExpireAfter / 8)
	}
	return nil
}

// advance moves a known key to its values cur in a frame at time at:
// within its segment, or into a new one (see the package doc's rules).
// n and ts are the key's node and track.
func (a *Aggregator) advance(n *nodeState, ts *trackState, key string, ks *keyState, cur *[NumTrafficFields]uint64, at time.Time) {
	newSegment := ks.ended
	if !newSegment && ks.idle {
		// Back after an absence: re-created if the absence outlasted any
		// retention. The key is off this track's frames, so it cannot be
		// live here; quietSince looks at its other tracks.
		if since, live := a.quietSince(n, ts, key); !live && at.Sub(since) > a.window {
			newSegment = true
		}
	}
	if !newSegment {
		for i := range cur {
			if cur[i] < ks.cur[i] {
				newSegment = true
				break
			}
		}
	}
	if newSegment {
		for i := range cur {
			ks.base[i] = addSat(ks.base[i], ks.cur[i])
		}
		ks.delta = *cur // the new segment grew from zero since the last frame
		ks.hasDelta = !ks.ended
		ks.segments++
		ks.ended = false
	} else {
		for i := range cur {
			ks.delta[i] = cur[i] - ks.cur[i]
		}
		ks.hasDelta = true
	}
	ks.cur = *cur
}

// quietSince returns the time since which key is known idle on node n
// wherever a producer's entry for it could be pinned, or live if it is
// live on one of those tracks now. A moqstats broadcast entry holds a
// path's counters on all four per-broadcast tracks (both tiers, both
// roles), so a path live on any of them keeps its entry, and with it
// its counts on every other, however long it is absent there; a session
// root's entry belongs to its own track. Keys in an ended segment are
// skipped (their producer is gone) and gaps count as activity: frames
// before a gap may have been lost. a.mu must be held.
func (a *Aggregator) quietSince(n *nodeState, ts *trackState, key string) (since time.Time, live bool) {
	look := func(t *trackState) bool {
		if t.gapAt.After(since) {
			since = t.gapAt
		}
		ks := t.keys[key]
		switch {
		case ks == nil || ks.ended:
			return false
		case !ks.idle:
			return true
		}
		if ks.quietFrom.After(since) {
			since = ks.quietFrom
		}
		return false
	}
	if ts.track.Kind == SessionsKind {
		return since, look(ts)
	}
	for _, t := range n.tracks {
		if t.track.Kind != SessionsKind && look(t) {
			return since, true
		}
	}
	return since, false
}

func liveVec(k Kind, v *[NumTrafficFields]uint64) bool {
	if k == SessionsKind {
		return v[Sessions] != v[SessionsClosed]
	}
	return v[Announced] != v[AnnouncedClosed] || v[Broadcasts] != v[BroadcastsClosed] || v[Subscriptions] != v[SubscriptionsClosed]
}

// track returns node's state and its state for track, creating them.
// a.mu must be held.
func (a *Aggregator) track(node string, track Track) (*nodeState, *trackState) {
	n := a.nodes[node]
	if n == nil {
		n = &nodeState{tracks: map[string]*trackState{}}
		a.nodes[node] = n
	}
	name := track.Name()
	ts := n.tracks[name]
	if ts == nil {
		ts = &trackState{track: track, keys: map[string]*keyState{}, live: map[string]*keyState{}}
		n.tracks[name] = ts
	}
	return n, ts
}

// Gap records that frames of node's track may have been lost, or
// delivered late, before time at: a follower reconnected, or saw frames
// skipped. The Aggregator then measures no absence across at, since a key
// may have been live and gone idle again unseen: only decreases can tell
// such a key re-created, and it is expired no earlier than ExpireAfter
// after at. FollowHTTP calls it on every connection it makes and on every
// skip it sees; a follower of another transport that can lose frames
// must too. Call it for a track not seen yet and it still applies. A
// compressed track's name applies to its plain track.
func (a *Aggregator) Gap(node, track string, at time.Time) error {
	t, err := ParseTrack(track)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ts := a.track(node, t.plain())
	ts.gaps++
	if at.After(ts.gapAt) {
		ts.gapAt = at
	}
	return nil
}

// Expire drops the keys that have been idle for longer than
// Config.ExpireAfter as of now, folding their lifetime totals into their
// tracks' expired totals, and returns how many it dropped. Observe does
// this by itself every ExpireAfter/8 of frame time; call Expire for nodes
// that went silent. It does nothing without ExpireAfter.
func (a *Aggregator) Expire(now time.Time) int {
	if a.cfg.ExpireAfter <= 0 {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.expire(now, a.cfg.ExpireAfter)
}

// expire drops every key idle for longer than after as of now; after is
// never below a.window, so a dropped key can only come back as a new
// segment, which is what a new key is. a.mu must be held.
func (a *Aggregator) expire(now time.Time, after time.Duration) int {
	dropped := 0
	for _, n := range a.nodes {
		before := dropped
		for _, ts := range n.tracks {
			for key, ks := range ts.keys {
				if !ks.idle {
					continue
				}
				since := ks.quietFrom
				if !ks.ended {
					var live bool
					if since, live = a.quietSince(n, ts, key); live {
						continue
					}
				}
				if now.Sub(since) <= after {
					continue
				}
				for i := range ts.expired {
					ts.expired[i] = addSat(ts.expired[i], addSat(ks.base[i], ks.cur[i]))
				}
				ts.expiredKeys++
				delete(ts.keys, key)
				delete(ts.live, key)
				dropped++
			}
		}
		n.keys -= dropped - before
	}
	a.keys -= dropped
	return dropped
}

// EndTrack records that track of node ended at time at: its broadcast
// closed, so every segment on it ended. Totals keep them; live gauges and
// rates on the track drop to zero; a later frame on the track (the node
// publishing again, say after a restart) starts new segments. Ending an
// unknown or ended track does nothing. A compressed track's name ends its
// plain track.
func (a *Aggregator) EndTrack(node, track string, at time.Time) {
	track = plainName(track)
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := a.nodes[node]; n != nil {
		if ts := n.tracks[track]; ts != nil {
			endTrack(ts, at)
		}
	}
}

// EndNode is EndTrack for every track of node: its stats broadcast closed.
func (a *Aggregator) EndNode(node string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := a.nodes[node]; n != nil {
		for _, ts := range n.tracks {
			endTrack(ts, at)
		}
	}
}

func endTrack(ts *trackState, at time.Time) {
	if ts.ended {
		return
	}
	ts.ended, ts.endAt = true, at
	ts.frames = 0
	ts.last, ts.prev = time.Time{}, time.Time{}
	for _, ks := range ts.keys {
		for i := range ks.cur {
			ks.base[i] = addSat(ks.base[i], ks.cur[i])
		}
		ks.cur, ks.delta = [NumTrafficFields]uint64{}, [NumTrafficFields]uint64{}
		ks.hasDelta, ks.idle, ks.ended = false, true, true
		if !ks.quietFrom.After(at) {
			ks.quietFrom = at
		}
	}
	clear(ts.live)
}

// Keys returns the number of keys held, over all nodes and tracks.
func (a *Aggregator) Keys() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.keys
}
