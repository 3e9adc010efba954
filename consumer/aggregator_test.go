package consumer

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func newAgg(t testing.TB, cfg Config) *Aggregator {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// bytesFrame is a publisher frame of keys with the given bytes and a live
// track subscription each, or idle if bytes is negative (then -bytes).
func bytesFrame(kv ...any) []byte {
	var parts []string
	for i := 0; i < len(kv); i += 2 {
		k, v := kv[i].(string), kv[i+1].(int)
		subsClosed := 0
		if v < 0 {
			v, subsClosed = -v, 1
		}
		parts = append(parts, fmt.Sprintf(`%q:{"subscriptions":1,"subscriptions_closed":%d,"bytes":%d}`, k, subsClosed, v))
	}
	return []byte("{" + strings.Join(parts, ",") + "}")
}

func observe(t testing.TB, a *Aggregator, node, track string, sec float64, frame []byte) {
	t.Helper()
	if err := a.Observe(node, track, at(sec), frame); err != nil {
		t.Fatal(err)
	}
}

func row(t testing.TB, v *View, node, broadcast string) BroadcastRow {
	t.Helper()
	for _, r := range v.Broadcasts {
		if r.Node == node && r.Broadcast == broadcast && r.Track == (Track{Kind: Publisher}) {
			return r
		}
	}
	t.Fatalf("no row for node %q broadcast %q in %+v", node, broadcast, v.Broadcasts)
	return BroadcastRow{}
}

func TestTotalsSumTheLastValueOfEverySegment(t *testing.T) {
	a := newAgg(t, Config{})
	for i, b := range []int{10, 30, 5, 8, 2, 2, 40} { // resets after 30 and after 8
		observe(t, a, "n", "publisher.json", float64(i), bytesFrame("k", b))
	}
	r := row(t, a.View(at(6)), "n", "k")
	if got, want := r.Total.Bytes, uint64(30+8+40); got != want {
		t.Fatalf("total bytes %d, want %d (30 + 8 + 40)", got, want)
	}
	if r.Segments != 3 || r.Current.Bytes != 40 {
		t.Fatalf("segments %d current %d, want 3 and 40", r.Segments, r.Current.Bytes)
	}
	// Any one counter going down starts a segment, even if others grow.
	a = newAgg(t, Config{})
	observe(t, a, "n", "publisher.json", 0, []byte(`{"k":{"subscriptions":3,"subscriptions_closed":3,"bytes":10}}`))
	observe(t, a, "n", "publisher.json", 1, []byte(`{"k":{"subscriptions":4,"subscriptions_closed":0,"bytes":50}}`))
	r = row(t, a.View(at(1)), "n", "k")
	if r.Total.Bytes != 60 || r.Total.Subscriptions != 7 || r.Total.SubscriptionsClosed != 3 || r.Segments != 2 {
		t.Fatalf("got %+v in %d segments, want bytes 60, subscriptions 7/3 in 2", r.Total, r.Segments)
	}
}

func TestKeysThatLeaveTheFrameStillCount(t *testing.T) {
	a := newAgg(t, Config{})
	observe(t, a, "n", "publisher.json", 0, bytesFrame("a", 5, "b", 7))
	observe(t, a, "n", "publisher.json", 1, bytesFrame("a", -9)) // b left; a closes
	observe(t, a, "n", "publisher.json", 2, []byte(`{}`))
	v := a.View(at(2))
	if got := v.Total("", Publisher).Bytes; got != 16 {
		t.Fatalf("total bytes %d, want 16 (a's 9 and b's 7)", got)
	}
	if r := row(t, v, "n", "b"); r.Total.Bytes != 7 || r.LastSeen != at(0) {
		t.Fatalf("b: %+v, want total 7 last seen at 0s", r)
	}
}

func TestTotalsSumOverNodesAndStaySeparatePerTrack(t *testing.T) {
	a := newAgg(t, Config{})
	observe(t, a, "sjc/1", "publisher.json", 0, bytesFrame("k", 100))
	observe(t, a, "lhr", "publisher.json", 0, bytesFrame("k", 40))
	observe(t, a, "lhr", "internal/publisher.json", 0, bytesFrame("k", 1000))
	observe(t, a, "lhr", "subscriber.json", 0, bytesFrame("k", 3))
	v := a.View(at(0))
	checks := []struct {
		got, want uint64
		what      string
	}{
		{v.BroadcastTotal("", Publisher, "k").Bytes, 140, "external egress over nodes"},
		{v.Total("internal", Publisher).Bytes, 1000, "internal egress"},
		{v.Total("", Subscriber).Bytes, 3, "external ingress"},
		{v.BroadcastTotal("", Publisher, "other").Bytes, 0, "unknown broadcast"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.what, c.got, c.want)
		}
	}
	if len(v.Tracks) != 4 || v.Tracks[0].Node != "lhr" || v.Tracks[3].Node != "sjc/1" {
		t.Errorf("tracks %+v, want 4 sorted by node", v.Tracks)
	}
}

func bytesRate(t *testing.T, r BroadcastRow) (float64, bool) {
	t.Helper()
	return r.Rate(Bytes)
}

func TestRates(t *testing.T) {
	a := newAgg(t, Config{StaleAfter: 10 * time.Second})
	observe(t, a, "n", "publisher.json", 0, bytesFrame("k", 100))
	if x, ok := bytesRate(t, row(t, a.View(at(0)), "n", "k")); ok {
		t.Fatalf("first frame: rate %v known, want unknown", x)
	}
	observe(t, a, "n", "publisher.json", 2, bytesFrame("k", 300))
	if x, ok := bytesRate(t, row(t, a.View(at(2)), "n", "k")); !ok || x != 100 {
		t.Fatalf("rate over 2s of +200: %v %v, want 100", x, ok)
	}
	// A reset: the new segment grew from zero, 50 bytes in 1s.
	observe(t, a, "n", "publisher.json", 3, bytesFrame("k", 50, "new", 10))
	v := a.View(at(3))
	if x, ok := bytesRate(t, row(t, v, "n", "k")); !ok || x != 50 {
		t.Fatalf("rate after reset: %v %v, want 50", x, ok)
	}
	if _, ok := bytesRate(t, row(t, v, "n", "new")); ok {
		t.Fatal("a new key's first frame has a known rate")
	}
	// Absent from the latest frame: unchanged, rate 0.
	observe(t, a, "n", "publisher.json", 4, bytesFrame("new", 30))
	v = a.View(at(4))
	if x, ok := bytesRate(t, row(t, v, "n", "k")); !ok || x != 0 {
		t.Fatalf("absent key: rate %v %v, want known 0", x, ok)
	}
	if x, ok := bytesRate(t, row(t, v, "n", "new")); !ok || x != 20 {
		t.Fatalf("second frame of a key: %v %v, want 20", x, ok)
	}
	// Quiet for longer than StaleAfter: 0.
	if x, ok := bytesRate(t, row(t, a.View(at(4+10.5)), "n", "new")); !ok || x != 0 {
		t.Fatalf("stale track: rate %v %v, want known 0", x, ok)
	}
	if x, ok := bytesRate(t, row(t, a.View(at(4+9.5)), "n", "new")); !ok || x != 20 {
		t.Fatalf("track not yet stale: rate %v %v, want 20", x, ok)
	}
	// Sum over nodes, skipping unknown rates.
	observe(t, a, "m", "publisher.json", 4, bytesFrame("new", 1))
	if got := a.View(at(4)).Rate("", Publisher, "new", Bytes); got != 20 {
		t.Fatalf("summed rate %v, want 20 (m's rate is unknown)", got)
	}
}

func TestSessionRatesAndLiveSessions(t *testing.T) {
	a := newAgg(t, Config{})
	observe(t, a, "n", "sessions.json", 0, []byte(`{"acme":{"sessions":2,"sessions_closed":0}}`))
	observe(t, a, "n", "sessions.json", 1, []byte(`{"acme":{"sessions":5,"sessions_closed":1}}`))
	observe(t, a, "m", "internal/sessions.json", 1, []byte(`{"acme":{"sessions":1,"sessions_closed":0}}`))
	v := a.View(at(1))
	if got := v.LiveSessions("", "acme"); got != 4 {
		t.Fatalf("live sessions %d, want 4", got)
	}
	if got := v.LiveSessions("internal", "acme"); got != 1 {
		t.Fatalf("live internal sessions %d, want 1", got)
	}
	if got := v.SessionTotal("", "acme"); got != (Presence{5, 1}) {
		t.Fatalf("session totals %+v, want 5/1", got)
	}
	if x, ok := v.Sessions[1].Rate(Sessions); !ok || x != 3 || v.Sessions[1].Node != "n" {
		t.Fatalf("session rate %v %v on %q, want 3 on n", x, ok, v.Sessions[1].Node)
	}
}

func TestViewersAreLiveSubscribedSessions(t *testing.T) {
	a := newAgg(t, Config{})
	observe(t, a, "n", "publisher.json", 0, []byte(`{"a":{"broadcasts":5,"broadcasts_closed":2},"b":{"broadcasts":1,"broadcasts_closed":0}}`))
	observe(t, a, "m", "publisher.json", 0, []byte(`{"a":{"broadcasts":1,"broadcasts_closed":0}}`))
	observe(t, a, "n", "subscriber.json", 0, []byte(`{"a":{"broadcasts":9,"broadcasts_closed":0}}`))
	v := a.View(at(0))
	if got := v.Viewers("", "a"); got != 4 {
		t.Fatalf("viewers of a %d, want 3 + 1 (ingress does not count)", got)
	}
	if got := v.TotalViewers(""); got != 5 {
		t.Fatalf("total viewers %d, want 5", got)
	}
	// b leaves after closing: 0 viewers, total kept.
	observe(t, a, "n", "publisher.json", 1, []byte(`{"a":{"broadcasts":5,"broadcasts_closed":2},"b":{"broadcasts":1,"broadcasts_closed":1}}`))
	observe(t, a, "n", "publisher.json", 2, []byte(`{"a":{"broadcasts":5,"broadcasts_closed":2}}`))
	if got := a.View(at(2)).Viewers("", "b"); got != 0 {
		t.Fatalf("viewers of a closed broadcast %d, want 0", got)
	}
}

func TestEndedTrackKeepsTotalsAndStartsNewSegments(t *testing.T) {
	a := newAgg(t, Config{})
	observe(t, a, "n", "publisher.json", 0, []byte(`{"k":{"broadcasts":2,"bytes":100}}`))
	observe(t, a, "n", "publisher.json", 1, []byte(`{"k":{"broadcasts":2,"bytes":200}}`))
	a.EndNode("n", at(2))
	v := a.View(at(2))
	r := row(t, v, "n", "k")
	if r.Total.Bytes != 200 || r.Viewers() != 0 || !v.Tracks[0].Ended {
		t.Fatalf("after end: total %d viewers %d ended %v, want 200, 0, true", r.Total.Bytes, r.Viewers(), v.Tracks[0].Ended)
	}
	if x, ok := bytesRate(t, r); !ok || x != 0 {
		t.Fatalf("after end: rate %v %v, want known 0", x, ok)
	}
	// The node comes back, counting from zero; no counter went down, yet
	// it is a new segment.
	observe(t, a, "n", "publisher.json", 10, []byte(`{"k":{"broadcasts":3,"bytes":500}}`))
	r = row(t, a.View(at(10)), "n", "k")
	if r.Total.Bytes != 700 || r.Segments != 2 || r.Viewers() != 3 {
		t.Fatalf("after restart: total %d segments %d viewers %d, want 700, 2, 3", r.Total.Bytes, r.Segments, r.Viewers())
	}
	if _, ok := bytesRate(t, r); ok {
		t.Fatal("first frame after a restart has a known rate")
	}
	a.EndTrack("n", "publisher.json", at(11))
	a.EndTrack("n", "publisher.json", at(12)) // no-op
	a.EndTrack("gone", "publisher.json", at(12))
	if got := a.View(at(12)).Total("", Publisher).Bytes; got != 700 {
		t.Fatalf("ending twice changed the total to %d", got)
	}
}

func TestRetentionTurnsALongAbsenceIntoANewSegment(t *testing.T) {
	for _, c := range []struct {
		name     string
		back     float64 // when the key returns, in seconds
		lastIdle bool    // its last appearance showed it idle
		absent   bool    // a frame without it came at 1s
		want     uint64
	}{
		{"idle, back after the window", 400, true, true, 10 + 15},
		{"idle, back within the window", 200, true, true, 15},
		{"idle, back within the slack", 304, true, true, 15},
		{"idle in its last frame, no frame since, back after the window", 400, true, false, 10 + 15},
		{"live, then left out of a frame: idle from that frame on", 400, false, true, 10 + 15},
		{"live, then left out of a frame, back within the window", 301, false, true, 15},
		{"live in the latest frame, back late", 400, false, false, 15},
	} {
		a := newAgg(t, Config{Retention: 5 * time.Minute, RetentionSlack: 5 * time.Second})
		last := 10
		if c.lastIdle {
			last = -10
		}
		observe(t, a, "n", "publisher.json", 0, bytesFrame("k", last))
		if c.absent {
			observe(t, a, "n", "publisher.json", 1, []byte(`{}`))
		}
		// Back with counts a continuation could have: nothing went down.
		observe(t, a, "n", "publisher.json", c.back, []byte(`{"k":{"subscriptions":2,"subscriptions_closed":1,"bytes":15}}`))
		if got := row(t, a.View(at(c.back)), "n", "k").Total.Bytes; got != c.want {
			t.Errorf("%s: total %d, want %d", c.name, got, c.want)
		}
	}
}

// A moqstats entry holds a path on all four per-broadcast tracks: while
// the path is live on one, its counts on the others are kept however long
// they stay out of the frames, so an absence on one track proves nothing.
func TestRetentionAbsenceCountsOnlyWhileThePathIsIdleOnEveryTrack(t *testing.T) {
	for _, c := range []struct {
		name   string
		frames func(a *Aggregator)
		want   uint64
	}{
		{"live on the internal subscriber track all along", func(a *Aggregator) {
			observe(t, a, "n", "internal/subscriber.json", 0, []byte(`{"k":{"announced":1}}`))
		}, 10 + 5},
		{"idle on the subscriber track only since 200s", func(a *Aggregator) {
			observe(t, a, "n", "subscriber.json", 0, []byte(`{"k":{"announced":1}}`))
			observe(t, a, "n", "subscriber.json", 200, []byte(`{"k":{"announced":1,"announced_closed":1}}`))
		}, 10 + 5},
		{"idle everywhere since 50s", func(a *Aggregator) {
			observe(t, a, "n", "subscriber.json", 0, []byte(`{"k":{"announced":1}}`))
			observe(t, a, "n", "subscriber.json", 50, []byte(`{"k":{"announced":1,"announced_closed":1}}`))
		}, 10 + 10 + 5},
		{"live on another node", func(a *Aggregator) {
			observe(t, a, "m", "subscriber.json", 0, []byte(`{"k":{"announced":1}}`))
		}, 10 + 10 + 5},
		{"a session root of the same name, live", func(a *Aggregator) {
			observe(t, a, "n", "sessions.json", 0, []byte(`{"k":{"sessions":1}}`))
		}, 10 + 10 + 5},
		{"a gap on the subscriber track at 200s", func(a *Aggregator) {
			if err := a.Gap("n", "subscriber.json", at(200)); err != nil {
				t.Fatal(err)
			}
		}, 10 + 5},
	} {
		a := newAgg(t, Config{Retention: 5 * time.Minute, RetentionSlack: 5 * time.Second})
		observe(t, a, "n", "publisher.json", 0, bytesFrame("k", -10))
		c.frames(a)
		observe(t, a, "n", "publisher.json", 400, []byte(`{"k":{"subscriptions":2,"subscriptions_closed":1,"bytes":15}}`))
		if got := row(t, a.View(at(400)), "n", "k").Total.Bytes; got != c.want {
			t.Errorf("%s: total %d, want %d", c.name, got, c.want)
		}
	}
}

func TestRejectedFramesChangeNothing(t *testing.T) {
	a := newAgg(t, Config{MaxKeys: 2})
	observe(t, a, "n", "publisher.json", 0, bytesFrame("a", 1))
	for _, frame := range []string{`{"a":{"bytes":-1}}`, `{"a":{"bytes":1},"a":{"bytes":2}}`, `[]`} {
		if err := a.Observe("n", "publisher.json", at(1), []byte(frame)); !errors.Is(err, ErrInvalidFrame) {
			t.Errorf("%s: %v, want ErrInvalidFrame", frame, err)
		}
	}
	err := a.Observe("n", "publisher.json", at(1), bytesFrame("a", 5, "b", 1, "c", 1))
	if !errors.Is(err, ErrKeyLimit) {
		t.Fatalf("third key: %v, want ErrKeyLimit", err)
	}
	if err := a.Observe("n", "nope.json", at(1), []byte(`{}`)); !errors.Is(err, ErrNotStatsTrack) {
		t.Fatalf("unknown track: %v", err)
	}
	v := a.View(at(1))
	if len(v.Broadcasts) != 1 || v.Broadcasts[0].Total.Bytes != 1 || v.Tracks[0].Frames != 1 || a.Keys() != 1 {
		t.Fatalf("state changed by rejected frames: %+v", v)
	}
	observe(t, a, "n", "publisher.json", 2, bytesFrame("a", 5, "b", 1))
	if a.Keys() != 2 {
		t.Fatalf("keys %d, want 2", a.Keys())
	}
}

func TestTimeGoingBackwardsIsTakenAsTheLatest(t *testing.T) {
	a := newAgg(t, Config{})
	observe(t, a, "n", "publisher.json", 5, bytesFrame("k", 1))
	observe(t, a, "n", "publisher.json", 6, bytesFrame("k", 2))
	observe(t, a, "n", "publisher.json", 4, bytesFrame("k", 3))
	r := row(t, a.View(at(6)), "n", "k")
	if r.LastSeen != at(6) || r.Total.Bytes != 3 {
		t.Fatalf("got %+v", r)
	}
	if _, ok := bytesRate(t, r); ok {
		t.Fatalf("rate over a zero interval with a nonzero delta is known: %+v", r)
	}
}

func TestTotalsSaturateInsteadOfWrapping(t *testing.T) {
	a := newAgg(t, Config{})
	observe(t, a, "n", "publisher.json", 0, []byte(`{"k":{"bytes":18446744073709551615}}`))
	observe(t, a, "n", "publisher.json", 1, []byte(`{"k":{"bytes":0}}`))
	observe(t, a, "n", "publisher.json", 2, []byte(`{"k":{"bytes":7}}`))
	observe(t, a, "m", "publisher.json", 2, []byte(`{"k":{"bytes":7}}`))
	v := a.View(at(2))
	if got := row(t, v, "n", "k").Total.Bytes; got != math.MaxUint64 {
		t.Fatalf("total %d, want saturated", got)
	}
	if got := v.Total("", Publisher).Bytes; got != math.MaxUint64 {
		t.Fatalf("sum %d, want saturated", got)
	}
}

func TestNewRejectsNegativeSettings(t *testing.T) {
	for _, cfg := range []Config{
		{StaleAfter: -1}, {RetentionSlack: -1}, {ExpireAfter: -1}, {MaxKeys: -1}, {Decoder: Decoder{MaxDepth: -1}},
		{ExpireAfter: DefaultRetention + DefaultRetentionSlack},
		{ExpireAfter: time.Minute, Retention: time.Minute, RetentionSlack: time.Second},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func TestConcurrentFeedersAndViews(t *testing.T) {
	a := newAgg(t, Config{})
	var wg sync.WaitGroup
	const nodes, frames = 4, 200
	for n := range nodes {
		wg.Go(func() {
			for i := 1; i <= frames; i++ {
				if err := a.Observe(fmt.Sprint("node", n), "publisher.json", at(float64(i)), bytesFrame("k", i)); err != nil {
					t.Error(err)
					return
				}
			}
			a.EndNode(fmt.Sprint("node", n), at(frames+1))
		})
	}
	wg.Go(func() {
		for i := range 100 {
			a.View(at(float64(i)))
		}
	})
	wg.Wait()
	if got := a.View(at(frames+2)).BroadcastTotal("", Publisher, "k").Bytes; got != nodes*frames {
		t.Fatalf("total %d, want %d", got, nodes*frames)
	}
}

func TestParseTrack(t *testing.T) {
	for name, want := range map[string]Track{
		"publisher.json":             {Kind: Publisher},
		"subscriber.json":            {Kind: Subscriber},
		"sessions.json":              {Kind: SessionsKind},
		"internal/publisher.json":    {Tier: "internal", Kind: Publisher},
		"internal/sessions.json":     {Tier: "internal", Kind: SessionsKind},
		"region/sjc/subscriber.json": {Tier: "region/sjc", Kind: Subscriber},
		"publisher.json.z":           {Kind: Publisher, Compressed: true},
		"internal/sessions.json.z":   {Tier: "internal", Kind: SessionsKind, Compressed: true},
		"region/sjc/sessions.json.z": {Tier: "region/sjc", Kind: SessionsKind, Compressed: true},
	} {
		got, err := ParseTrack(name)
		if err != nil || got != want || got.Name() != name {
			t.Errorf("ParseTrack(%q) = %+v, %v; want %+v", name, got, err, want)
		}
	}
	if got := (Track{}).TierName(); got != "external" {
		t.Errorf("default tier name %q", got)
	}
	for _, name := range []string{"", "bogus.json", "xpublisher.json", "/publisher.json", "a//publisher.json", "a/", "a//b/publisher.json", "publisher.json/",
		"publisher.json.z.z", "publisher.z", ".z", "a//publisher.json.z", "publisher.json.Z", "publisher.json.z/"} {
		if _, err := ParseTrack(name); !errors.Is(err, ErrNotStatsTrack) {
			t.Errorf("ParseTrack(%q) = %v, want ErrNotStatsTrack", name, err)
		}
	}
}

func TestNodeName(t *testing.T) {
	for _, c := range []struct {
		prefix, path, node string
		ok                 bool
	}{
		{"", ".stats/node/sjc/1", "sjc/1", true},
		{"", ".stats/node", "", true},
		{"", "/.stats//node/sjc//1/", "sjc/1", true},
		{".stats", ".stats/node/a", "a", true},
		{"/custom/", "custom/node/x", "x", true},
		{"", ".stats/cluster/x", "", false},
		{"", ".statsx/node/a", "", false},
		{"", ".stats/nodes/a", "", false},
		{"", "other", "", false},
	} {
		node, ok := NodeName(c.prefix, c.path)
		if node != c.node || ok != c.ok {
			t.Errorf("NodeName(%q, %q) = %q, %v; want %q, %v", c.prefix, c.path, node, ok, c.node, c.ok)
		}
	}
}
