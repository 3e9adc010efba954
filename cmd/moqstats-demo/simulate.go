package main

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/moqstats/moqstats"
)

// The traffic model. Time advances in steps of 20 ms, one audio frame; a
// step's traffic depends only on the seed and the step number, so a seed
// gives the same traffic at any speed.
const (
	step           = 20 * time.Millisecond
	stepsPerSecond = int(time.Second / step)

	// Video: 30 frames/s, a keyframe (new group) every 2 s, keyframes
	// keyframeWeight times the size of a delta frame on average.
	videoFPS         = 30
	videoGroupFrames = 2 * videoFPS
	keyframeWeight   = 6

	// Audio: Opus at 128 kbit/s in 20 ms frames, one group per second.
	audioFrameBytes  = 128_000 / 8 / 50
	audioGroupFrames = stepsPerSecond

	// Audience: sessions stay for an exponentially distributed time
	// (viewers meanWatch, lobby sessions that never subscribe meanLobby),
	// at least minStay. Arrivals keep about arrivalLoad of -viewers
	// connected; a burst (a link shared, a raid) about every burstEvery
	// brings a crowd to one broadcast within burstSpread. A viewer
	// switches to another broadcast of the same customer about every
	// meanSwitch.
	meanWatch   = 45 * time.Second
	meanLobby   = 12 * time.Second
	minStay     = 3 * time.Second
	lobbyShare  = 0.15
	arrivalLoad = 0.6
	burstEvery  = 30 * time.Second
	burstSpread = 2 * time.Second
	meanSwitch  = 90 * time.Second

	// maxCatchUp bounds the steps run at once after the process stalled:
	// beyond it the simulation skips time rather than burst.
	maxCatchUp = 2 * stepsPerSecond
)

// catalog names the first broadcasts and their video bitrates, in bits
// per second; broadcasts beyond it are <customer>/live/<n> at 2.5 Mbit/s.
// The customer (the auth root viewers connect under) is a path's first
// segment.
var catalog = []broadcastSpec{
	{"acme/live/main", 4_500_000},
	{"globex/news/24x7", 3_000_000},
	{"initech/town-hall", 2_500_000},
	{"acme/live/backstage", 1_500_000},
	{"globex/sports/match-1", 6_000_000},
	{"initech/training", 1_200_000},
}

var customers = []string{"acme", "globex", "initech"}

// broadcastSpec is a simulated broadcast: its path and video bitrate.
type broadcastSpec struct {
	path    string
	bitrate float64 // video, bits per second
}

// specs returns n broadcasts: the catalog's, then generated ones.
func specs(n int) []broadcastSpec {
	out := make([]broadcastSpec, n)
	for i := range out {
		if i < len(catalog) {
			out[i] = catalog[i]
			continue
		}
		out[i] = broadcastSpec{fmt.Sprintf("%s/live/%d", customers[i%len(customers)], i), 2_500_000}
	}
	return out
}

// rootOf is the auth root a broadcast's viewers connect under: its first
// path segment.
func rootOf(path string) string {
	root, _, _ := strings.Cut(path, "/")
	return root
}

// broadcast is one simulated broadcast: ingested from a cluster peer
// (internal tier, subscriber role) and served to its viewers.
type broadcast struct {
	spec   broadcastSpec
	weight float64 // popularity: the share of arrivals it draws

	// Ingest from the peer: the announce, the peer session's
	// subscription, and the two tracks.
	announce     *moqstats.BroadcastGuard
	sub          *moqstats.SubscriptionGuard
	video, audio *moqstats.TrackGuard

	videoFrame int     // frames sent so far, offset per broadcast so keyframes do not align
	deltaBytes float64 // mean delta frame size
	audioFrame int

	// The current groups so far: a viewer that joins is sent them from
	// their start, as a relay serves the latest group.
	videoGroupFrames, audioGroupFrames int
	videoGroupBytes, audioGroupBytes   uint64

	viewers []*session // those watching, each knowing its index here

	ingressBytes, egressBytes uint64 // bumped so far, for the ledger
	joined                    uint64 // viewer subscriptions opened
}

// session is one downstream session: a viewer watching a broadcast, or a
// lobby session that connected and watches nothing.
type session struct {
	root    string
	leaveAt int // step
	guard   *moqstats.SessionGuard
	subs    *moqstats.SessionBroadcasts

	// Set while watching.
	b            *broadcast
	index        int // in b.viewers
	announce     *moqstats.BroadcastGuard
	sub          *moqstats.SubscriptionGuard
	video, audio *moqstats.TrackGuard
}

// pendingJoin is a burst arrival due at a step.
type pendingJoin struct {
	at int
	b  *broadcast
}

// sim is the simulated relay. It is driven by one goroutine.
type sim struct {
	rng           *rand.Rand
	ext, internal moqstats.Handle
	maxSessions   int

	broadcasts  []*broadcast
	weightSum   float64
	sessions    []*session
	pending     []pendingJoin
	peer        *moqstats.SessionGuard
	peerSubs    *moqstats.SessionBroadcasts
	step        int
	sessionsBy  map[string]uint64 // external sessions opened per root
	arrivalProb float64           // per step
}

// newSim starts the relay: a peer session from the cluster, every
// broadcast ingested over it, and an opening crowd of half of maxSessions
// arriving over the first burstSpread, so numbers show from the start.
func newSim(stats *moqstats.Stats, bs []broadcastSpec, maxSessions int, seed uint64) *sim {
	s := &sim{
		rng:         rand.New(rand.NewPCG(seed, 42)),
		ext:         stats.Tier(moqstats.External),
		internal:    stats.Tier(moqstats.Internal),
		maxSessions: maxSessions,
		sessionsBy:  map[string]uint64{},
		arrivalProb: arrivalLoad * float64(maxSessions) / meanWatch.Seconds() / float64(stepsPerSecond),
	}
	s.peer = s.internal.Session("cluster")
	s.peerSubs = s.internal.SubscriberBroadcasts()
	for i, spec := range bs {
		bc := s.internal.Broadcast(spec.path)
		announce := bc.Subscriber()
		b := &broadcast{
			spec:       spec,
			weight:     1 / float64(i+1),
			announce:   announce,
			sub:        s.peerSubs.Subscribe(spec.path),
			video:      announce.Track("video"),
			audio:      announce.Track("audio"),
			videoFrame: s.rng.IntN(videoGroupFrames),
			audioFrame: s.rng.IntN(audioGroupFrames),
			// A group is keyframeWeight + (videoGroupFrames-1) deltas'
			// worth of bytes, and lasts videoGroupFrames/videoFPS seconds.
			deltaBytes: spec.bitrate / 8 * videoGroupFrames / videoFPS / (keyframeWeight + videoGroupFrames - 1),
		}
		s.broadcasts = append(s.broadcasts, b)
		s.weightSum += b.weight
	}
	for range maxSessions / 2 {
		s.pending = append(s.pending, pendingJoin{at: s.rng.IntN(int(burstSpread / step)), b: s.pick()})
	}
	return s
}

// pick draws a broadcast by popularity.
func (s *sim) pick() *broadcast {
	r := s.rng.Float64() * s.weightSum
	for _, b := range s.broadcasts {
		if r < b.weight {
			return b
		}
		r -= b.weight
	}
	return s.broadcasts[len(s.broadcasts)-1]
}

// stay draws how many steps a session stays, with the given mean.
func (s *sim) stay(mean time.Duration) int {
	d := time.Duration(s.rng.ExpFloat64() * float64(mean))
	return int(max(d, minStay) / step)
}

// join connects a session under b's customer and has it watch b, or, for
// b nil, connects a lobby session under a random customer. Nothing joins
// while maxSessions are connected.
func (s *sim) join(b *broadcast) {
	if len(s.sessions) >= s.maxSessions {
		return
	}
	var v *session
	if b == nil {
		root := rootOf(s.broadcasts[s.rng.IntN(len(s.broadcasts))].spec.path)
		v = &session{root: root, leaveAt: s.step + s.stay(meanLobby)}
	} else {
		v = &session{root: rootOf(b.spec.path), leaveAt: s.step + s.stay(meanWatch)}
	}
	v.guard = s.ext.Session(v.root)
	v.subs = s.ext.PublisherBroadcasts()
	s.sessionsBy[v.root]++
	s.sessions = append(s.sessions, v)
	if b != nil {
		s.watch(v, b)
	}
}

// watch has v watch b: the broadcast is announced to it, it subscribes to
// both tracks and is sent the current groups from their start.
func (s *sim) watch(v *session, b *broadcast) {
	v.b, v.index = b, len(b.viewers)
	b.viewers = append(b.viewers, v)
	b.joined++
	v.announce = s.ext.Broadcast(b.spec.path).Publisher()
	v.sub = v.subs.Subscribe(b.spec.path)
	v.video = v.announce.Track("video")
	v.audio = v.announce.Track("audio")
	if b.videoGroupFrames > 0 {
		v.video.Group()
		for range b.videoGroupFrames {
			v.video.Frame()
		}
		v.video.Bytes(b.videoGroupBytes)
	}
	if b.audioGroupFrames > 0 {
		v.audio.Group()
		for range b.audioGroupFrames {
			v.audio.Frame()
		}
		v.audio.Bytes(b.audioGroupBytes)
	}
	b.egressBytes += b.videoGroupBytes + b.audioGroupBytes
}

// unwatch ends v's subscriptions to its broadcast, if any.
func (s *sim) unwatch(v *session) {
	b := v.b
	if b == nil {
		return
	}
	last := b.viewers[len(b.viewers)-1]
	b.viewers[v.index], last.index = last, v.index
	b.viewers = b.viewers[:len(b.viewers)-1]
	v.video.Close()
	v.audio.Close()
	v.sub.Close()
	v.announce.Close()
	v.b, v.announce, v.sub, v.video, v.audio = nil, nil, nil, nil, nil
}

// leave disconnects the session at index i of s.sessions.
func (s *sim) leave(i int) {
	v := s.sessions[i]
	s.unwatch(v)
	v.guard.Close()
	s.sessions[i] = s.sessions[len(s.sessions)-1]
	s.sessions = s.sessions[:len(s.sessions)-1]
}

// tick runs one step: arrivals, bursts, departures and switches, then
// one audio frame and, on 3 steps of 5, one video frame per broadcast,
// ingested once and sent to every viewer.
func (s *sim) tick() {
	if s.rng.Float64() < s.arrivalProb {
		if s.rng.Float64() < lobbyShare {
			s.join(nil)
		} else {
			s.join(s.pick())
		}
	}
	if s.rng.Float64() < float64(step)/float64(burstEvery) {
		b, n := s.pick(), 3+s.rng.IntN(max(1, s.maxSessions/4))
		for range n {
			s.pending = append(s.pending, pendingJoin{at: s.step + s.rng.IntN(int(burstSpread/step)), b: b})
		}
	}
	kept := s.pending[:0]
	for _, p := range s.pending {
		if p.at <= s.step {
			s.join(p.b)
		} else {
			kept = append(kept, p)
		}
	}
	s.pending = kept
	for i := len(s.sessions) - 1; i >= 0; i-- {
		v := s.sessions[i]
		switch {
		case v.leaveAt <= s.step:
			s.leave(i)
		case v.b != nil && s.rng.Float64() < float64(step)/float64(meanSwitch):
			if next := s.sibling(v.b); next != nil {
				s.unwatch(v)
				s.watch(v, next)
			}
		}
	}

	for _, b := range s.broadcasts {
		s.sendAudio(b)
		// Video frame k is due at step ceil(k*stepsPerSecond/videoFPS).
		if (s.step*videoFPS+stepsPerSecond-1)/stepsPerSecond != ((s.step+1)*videoFPS+stepsPerSecond-1)/stepsPerSecond {
			s.sendVideo(b)
		}
	}
	s.step++
}

// sibling returns a random other broadcast of b's customer, or nil.
func (s *sim) sibling(b *broadcast) *broadcast {
	var out *broadcast
	n := 0
	for _, o := range s.broadcasts {
		if o != b && rootOf(o.spec.path) == rootOf(b.spec.path) {
			n++
			if s.rng.IntN(n) == 0 {
				out = o
			}
		}
	}
	return out
}

func (s *sim) sendVideo(b *broadcast) {
	key := b.videoFrame%videoGroupFrames == 0
	b.videoFrame++
	size := uint64(math.Round(b.deltaBytes * (0.7 + 0.6*s.rng.Float64())))
	if key {
		size = uint64(math.Round(b.deltaBytes * keyframeWeight * (0.9 + 0.2*s.rng.Float64())))
		b.videoGroupFrames, b.videoGroupBytes = 0, 0
		b.video.Group()
	}
	b.videoGroupFrames++
	b.videoGroupBytes += size
	b.video.Frame()
	b.video.Bytes(size)
	b.ingressBytes += size
	for _, v := range b.viewers {
		if key {
			v.video.Group()
		}
		v.video.Frame()
		v.video.Bytes(size)
	}
	b.egressBytes += size * uint64(len(b.viewers))
}

func (s *sim) sendAudio(b *broadcast) {
	start := b.audioFrame%audioGroupFrames == 0
	b.audioFrame++
	size := uint64(audioFrameBytes - 8 + s.rng.IntN(17)) // VBR around the target
	if start {
		b.audioGroupFrames, b.audioGroupBytes = 0, 0
		b.audio.Group()
	}
	b.audioGroupFrames++
	b.audioGroupBytes += size
	b.audio.Frame()
	b.audio.Bytes(size)
	b.ingressBytes += size
	for _, v := range b.viewers {
		if start {
			v.audio.Group()
		}
		v.audio.Frame()
		v.audio.Bytes(size)
	}
	b.egressBytes += size * uint64(len(b.viewers))
}

// run steps the simulation at wall-clock speed until ctx is done.
func (s *sim) run(ctx context.Context) {
	t := time.NewTicker(step)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due := int(time.Since(start) / step)
		s.step = max(s.step, due-maxCatchUp)
		for s.step < due {
			s.tick()
		}
	}
}

// close disconnects every session and ends the ingest.
func (s *sim) close() {
	for i := len(s.sessions) - 1; i >= 0; i-- {
		s.leave(i)
	}
	for _, b := range s.broadcasts {
		b.video.Close()
		b.audio.Close()
		b.sub.Close()
		b.announce.Close()
	}
	s.peer.Close()
}

// ledger is what the simulation bumped, to check what the stats say.
type ledger struct {
	Egress   map[string]uint64 // external egress bytes per broadcast
	Ingress  map[string]uint64 // internal ingress bytes per broadcast
	Joined   map[string]uint64 // viewer subscriptions opened per broadcast
	Sessions map[string]uint64 // external sessions opened per root
}

func (s *sim) ledger() ledger {
	l := ledger{Egress: map[string]uint64{}, Ingress: map[string]uint64{}, Joined: map[string]uint64{}, Sessions: maps.Clone(s.sessionsBy)}
	for _, b := range s.broadcasts {
		l.Egress[b.spec.path] = b.egressBytes
		l.Ingress[b.spec.path] = b.ingressBytes
		l.Joined[b.spec.path] = b.joined
	}
	return l
}
