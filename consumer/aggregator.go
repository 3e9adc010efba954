package consumer

import (
	"errors"
	"fmt"

	"sync"
	"time"
)

// Aggregator defaults, applied when the corresponding Config field is zero.
const (
	// DefaultStaleAfter is how long a track may go without a frame before
	// its rates read as zero: three of moqstats' default one-second
	// intervals.
	DefaultStaleAfter = 3 * time.Second
	// DefaultRetentionSlack is added to Config.Retention before a returning
	// key counts as re-created; see the package doc.
	DefaultRetentionSlack = 5 * time.Second
	// DefaultMaxKeys caps the keys an Aggregator holds, summed over nodes
	// and tracks.
	DefaultMaxKeys = 1 << 20
)

// ErrKeyLimit is returned by Observe when a frame would take the
// Aggregator past Config.MaxKeys; the frame is dropped whole.
var ErrKeyLimit = errors.New("consumer: key limit reached")

// Config configures an Aggregator. The zero Config is ready to use.
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
	// its old counts. With Retention > 0, a key whose last frame showed it
	// idle and that comes back more than Retention+RetentionSlack later
	// starts a new segment even if no counter went down. 0 (the default)
	// relies on decreases alone. See the package doc for the band in
	// between.
	Retention time.Duration
	// RetentionSlack covers the producer's pass interval and delivery
	// delays; default DefaultRetentionSlack. Used only with Retention.
	RetentionSlack time.Duration
	// MaxKeys caps the keys held, over all nodes and tracks; default
	// DefaultMaxKeys.
	MaxKeys int
}

// Aggregator turns the frames of one or more nodes into lifetime totals,
// rates and live gauges, following the rules in the package doc. Feed it
// with Observe (or ObserveTraffic, ObservePresence) and EndTrack; query it
// with View. It is safe for concurrent use: followers feed it from their
// own goroutines.
type Aggregator struct {
	cfg Config

	mu    sync.Mutex
	nodes map[string]*nodeState // guarded by mu
	keys  int                   // keys held, over all tracks; guarded by mu
}

type nodeState struct {
	tracks map[string]*trackState // by track name
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
	keys   map[string]*keyState
}

// keyState is one key of one node's track. Counters are arrays indexed
// by TrafficField or PresenceField.
type keyState struct {
	base     [NumTrafficFields]uint64 // the last values of every ended segment, summed
	cur      [NumTrafficFields]uint64 // the current segment's last values
	delta    [NumTrafficFields]uint64 // increase over the interval ending at seenSeq
	hasDelta bool                     // false on the key's first frame in a segment we did not see start
	seenSeq  uint64                   // the track frame that last carried the key
	seenAt   time.Time
	idle     bool // the last frame carrying the key showed it not live
	ended    bool // its segment ended with its track; the next frame starts one
	segments int
}

// New returns an Aggregator. It returns an error wrapping
// ErrInvalidConfig for negative durations or limits.
func New(cfg Config) (*Aggregator, error) {
	if cfg.StaleAfter < 0 || cfg.Retention < 0 || cfg.RetentionSlack < 0 || cfg.MaxKeys < 0 ||
		cfg.Decoder.MaxFrameSize < 0 || cfg.Decoder.MaxEntries < 0 || cfg.Decoder.MaxDepth < 0 {
		return nil, fmt.Errorf("%w: negative duration or limit in %+v", ErrInvalidConfig, cfg)
	}
	if cfg.StaleAfter == 0 {
		cfg.StaleAfter = DefaultStaleAfter
	}
	if cfg.RetentionSlack == 0 {
		cfg.RetentionSlack = DefaultRetentionSlack
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	return &Aggregator{cfg: cfg, nodes: map[string]*nodeState{}}, nil
}

// ErrInvalidConfig is wrapped by the errors New returns.
var ErrInvalidConfig = errors.New("consumer: invalid config")

// Observe decodes frame, read from track of node's stats broadcast at time
// at, and applies it. A frame that does not decode (a *FrameError) or
// would exceed MaxKeys is dropped and changes nothing: counters are
// cumulative, so the next good frame carries everything it would have.
// Times should not go backwards per track; an earlier one is taken as the
// track's latest.
func (a *Aggregator) Observe(node, track string, at time.Time, frame []byte) error {
	t, err := ParseTrack(track)
	if err != nil {
		return err
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
// Publisher or Subscriber track.
func (a *Aggregator) ObserveTraffic(node string, track Track, at time.Time, f TrafficFrame) error {
	if track.Kind == SessionsKind {
		return fmt.Errorf("consumer: node %q: traffic frame for sessions track %q", node, track.Name())
	}
	return apply(a, node, track, at, f, func(v *Traffic) *[NumTrafficFields]uint64 { return v.counters() })
}

// ObservePresence applies a decoded session frame; track must be a
// sessions track.
func (a *Aggregator) ObservePresence(node string, track Track, at time.Time, f PresenceFrame) error {
	if track.Kind != SessionsKind {
		return fmt.Errorf("consumer: node %q: session frame for track %q", node, track.Name())
	}
	return apply(a, node, track, at, f, func(v *Presence) *[NumTrafficFields]uint64 {
		return &[NumTrafficFields]uint64{v.Sessions, v.SessionsClosed}
	})
}

func apply[V Traffic | Presence](a *Aggregator, node string, track Track, at time.Time, f map[string]V, vec func(*V) *[NumTrafficFields]uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ts := a.track(node, track)
	fresh := 0
	for k := range f {
		if _, ok := ts.keys[k]; !ok {
			fresh++
		}
	}
	if a.keys+fresh > a.cfg.MaxKeys {
		return fmt.Errorf("%w: node %q track %q: %d keys held, frame adds %d, limit %d",
			ErrKeyLimit, node, track.Name(), a.keys, fresh, a.cfg.MaxKeys)
	}
	a.keys += fresh

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
			ks = &keyState{cur: *cur, segments: 1}
			ts.keys[k] = ks
		} else {
			a.advance(ks, cur, at)
		}
		ks.seenSeq, ks.seenAt = ts.seq, at
		ks.idle = !liveVec(track.Kind, cur)
	}
	return nil
}

// advance moves a known key to its values cur in a frame at time at:
// within its segment, or into a new one (see the package doc's rules).
func (a *Aggregator) advance(ks *keyState, cur *[NumTrafficFields]uint64, at time.Time) {
	newSegment := ks.ended ||
		a.cfg.Retention > 0 && ks.idle && at.Sub(ks.seenAt) > a.cfg.Retention+a.cfg.RetentionSlack
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

func liveVec(k Kind, v *[NumTrafficFields]uint64) bool {
	if k == SessionsKind {
		return v[Sessions] != v[SessionsClosed]
	}
	return v[Announced] != v[AnnouncedClosed] || v[Broadcasts] != v[BroadcastsClosed] || v[Subscriptions] != v[SubscriptionsClosed]
}

// track returns node's state for track, creating it. a.mu must be held.
func (a *Aggregator) track(node string, track Track) *trackState {
	n := a.nodes[node]
	if n == nil {
		n = &nodeState{tracks: map[string]*trackState{}}
		a.nodes[node] = n
	}
	name := track.Name()
	ts := n.tracks[name]
	if ts == nil {
		ts = &trackState{track: track, keys: map[string]*keyState{}}
		n.tracks[name] = ts
	}
	return ts
}

// EndTrack records that track of node ended at time at: its broadcast
// closed, so every segment on it ended. Totals keep them; live gauges and
// rates on the track drop to zero; a later frame on the track (the node
// publishing again, say after a restart) starts new segments. Ending an
// unknown or ended track does nothing.
func (a *Aggregator) EndTrack(node, track string, at time.Time) {
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
	}
}

// Keys returns the number of keys held, over all nodes and tracks.
func (a *Aggregator) Keys() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.keys
}
