package main

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/memorigin"
)

// stepped runs a simulation for d of simulated time, without waiting, on
// a Stats publishing to an in-memory origin, flushed at the end.
func stepped(t *testing.T, bs []broadcastSpec, maxSessions int, seed uint64, d time.Duration) (*sim, *memorigin.Origin, *moqstats.Stats) {
	t.Helper()
	origin := memorigin.New()
	stats, err := moqstats.New(moqstats.Config{Origin: origin, Node: "sim", Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stats.Close() })
	s := newSim(stats, bs, maxSessions, seed)
	t.Cleanup(s.close)
	for range int(d / step) {
		s.tick()
	}
	if err := stats.Flush(); err != nil {
		t.Fatal(err)
	}
	return s, origin, stats
}

func latest(t *testing.T, origin *memorigin.Origin, stats *moqstats.Stats, track string) counts {
	t.Helper()
	frame, ok := origin.Latest(stats.Path(), track)
	if !ok {
		t.Fatalf("no frame on %s", track)
	}
	return decodeFrame(t, frame)
}

// TestIngestIsVideoAtItsBitrateAndAudioAt128k checks the media model over
// a simulated minute: 30 video frames a second with a keyframe (group)
// every 2 s, at the broadcast's bitrate; 50 audio frames a second in one
// group a second, at 128 kbit/s; as the ingest track counted them.
func TestIngestIsVideoAtItsBitrateAndAudioAt128k(t *testing.T) {
	const seconds = 60
	bs := specs(3)
	s, origin, stats := stepped(t, bs, 1, 1, seconds*time.Second)
	in := latest(t, origin, stats, moqstats.TrackInternalSubscriber)
	for _, b := range s.broadcasts {
		e := in[b.spec.path]
		if got, want := e["frames"], uint64(seconds*(videoFPS+stepsPerSecond)); got != want {
			t.Errorf("%s: %d frames in %d s; want %d (30 video and 50 audio a second)", b.spec.path, got, seconds, want)
		}
		// Groups start with the first frame of each: 30 or 31 video
		// groups (one every 2 s) and 60 or 61 audio groups.
		if got := e["groups"]; got < seconds/2+seconds || got > seconds/2+seconds+2 {
			t.Errorf("%s: %d groups in %d s; want %d to %d", b.spec.path, got, seconds, seconds/2+seconds, seconds/2+seconds+2)
		}
		want := (b.spec.bitrate + 128_000) * seconds / 8
		if got := float64(e["bytes"]); math.Abs(got-want) > 0.03*want {
			t.Errorf("%s: %.0f bytes in %d s; want %.0f (video %.1f Mbit/s and audio 128 kbit/s) within 3%%", b.spec.path, got, seconds, want, b.spec.bitrate/1e6)
		}
		if got := b.ingressBytes; got != e["bytes"] {
			t.Errorf("%s: ledger %d ingress bytes; frame %d", b.spec.path, got, e["bytes"])
		}
	}
}

// TestViewersComeAndGoWithinTheCap runs ten simulated minutes and checks
// the audience: never more than the cap connected, viewers that left and
// viewers that joined later, viewers on several broadcasts, sessions under
// every customer, and the stats agreeing with the ledger on bytes,
// viewers and sessions.
func TestViewersComeAndGoWithinTheCap(t *testing.T) {
	const maxSessions = 25
	origin := memorigin.New()
	stats, err := moqstats.New(moqstats.Config{Origin: origin, Node: "sim", Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	s := newSim(stats, specs(5), maxSessions, 3)
	defer s.close()
	peak := 0
	for range int(10 * time.Minute / step) {
		s.tick()
		peak = max(peak, len(s.sessions))
		if len(s.sessions) > maxSessions {
			t.Fatalf("step %d: %d sessions connected; cap %d", s.step, len(s.sessions), maxSessions)
		}
	}
	if err := stats.Flush(); err != nil {
		t.Fatal(err)
	}
	if peak < maxSessions/2 {
		t.Errorf("peak %d sessions; want the audience to reach at least half the cap %d", peak, maxSessions)
	}
	out := latest(t, origin, stats, moqstats.TrackPublisher)
	l := s.ledger()
	watched, left := 0, false
	for _, b := range s.broadcasts {
		e := out[b.spec.path]
		if e["broadcasts"] > 0 {
			watched++
		}
		left = left || e["broadcasts_closed"] > 0
		if e["broadcasts"] != l.Joined[b.spec.path] || e["bytes"] != l.Egress[b.spec.path] {
			t.Errorf("%s: frame says %d viewers joined and %d bytes sent; ledger %d and %d", b.spec.path, e["broadcasts"], e["bytes"], l.Joined[b.spec.path], l.Egress[b.spec.path])
		}
		if got, want := viewersIn(out, b.spec.path), uint64(len(b.viewers)); got != want {
			t.Errorf("%s: frame says %d viewers now; %d are watching", b.spec.path, got, want)
		}
	}
	if watched < 3 || !left {
		t.Errorf("%d broadcasts ever watched, viewers left: %v; want at least 3, and departures", watched, left)
	}
	var joined uint64
	for _, n := range l.Joined {
		joined += n
	}
	if joined < 3*maxSessions {
		t.Errorf("%d viewers joined in 10 minutes; want turnover (at least %d)", joined, 3*maxSessions)
	}
	sess := latest(t, origin, stats, moqstats.TrackSessions)
	for _, root := range customers {
		if sess[root]["sessions"] == 0 || sess[root]["sessions"] != l.Sessions[root] {
			t.Errorf("root %s: frame says %d sessions opened; ledger %d", root, sess[root]["sessions"], l.Sessions[root])
		}
	}
}

// TestViewerJoiningMidGroupGetsTheGroupFromItsStart checks that a viewer
// is sent the current groups from their first frame, as a relay serves
// the latest group, so its egress starts with a keyframe.
func TestViewerJoiningMidGroupGetsTheGroupFromItsStart(t *testing.T) {
	s, origin, stats := stepped(t, specs(1), 1, 5, 0)
	s.pending = nil // no opening crowd
	s.arrivalProb = 0
	b := s.broadcasts[0]
	for b.videoGroupFrames < 7 || b.videoGroupFrames > 50 {
		s.tick()
	}
	groupFrames := uint64(b.videoGroupFrames + b.audioGroupFrames)
	groupBytes := b.videoGroupBytes + b.audioGroupBytes
	s.join(b)
	if err := stats.Flush(); err != nil {
		t.Fatal(err)
	}
	e := latest(t, origin, stats, moqstats.TrackPublisher)[b.spec.path]
	if e["frames"] != groupFrames || e["bytes"] != groupBytes || e["groups"] != 2 {
		t.Errorf("viewer joining mid-group was sent %d frames, %d bytes, %d groups; want the current groups so far: %d frames, %d bytes, 2 groups", e["frames"], e["bytes"], e["groups"], groupFrames, groupBytes)
	}
}

// TestSameSeedSameTraffic: the traffic depends only on the seed and the
// step.
func TestSameSeedSameTraffic(t *testing.T) {
	a, _, _ := stepped(t, specs(4), 20, 9, 30*time.Second)
	b, _, _ := stepped(t, specs(4), 20, 9, 30*time.Second)
	c, _, _ := stepped(t, specs(4), 20, 10, 30*time.Second)
	if !reflect.DeepEqual(a.ledger(), b.ledger()) {
		t.Errorf("seed 9 twice: %+v and %+v", a.ledger(), b.ledger())
	}
	if reflect.DeepEqual(a.ledger(), c.ledger()) {
		t.Errorf("seeds 9 and 10 gave the same traffic: %+v", a.ledger())
	}
}

func TestSpecsExtendTheCatalog(t *testing.T) {
	bs := specs(len(catalog) + 2)
	if bs[0] != catalog[0] || bs[len(catalog)].path != "acme/live/6" || bs[len(catalog)+1].path != "globex/live/7" {
		t.Errorf("specs: %v", bs)
	}
	for _, b := range bs {
		if rootOf(b.path) == "" || b.bitrate <= 0 {
			t.Errorf("spec %+v has no customer or bitrate", b)
		}
	}
}
