package moqstats_test

import (
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/memorigin"
)

// Ports of the reference module's tests, in its order and under its names.

// announceTrack opens a publisher guard, a track guard from it, and closes
// the publisher guard: what the reference's bs.publisher().track(name)
// does, its temporary publisher guard dropped at the end of the statement.
func announceTrack(bs moqstats.BroadcastStats, name string) *moqstats.TrackGuard {
	p := bs.Publisher()
	defer p.Close()
	return p.Track(name)
}

// announceTrackSub is announceTrack for the subscriber role.
func announceTrackSub(bs moqstats.BroadcastStats, name string) *moqstats.TrackGuard {
	g := bs.Subscriber()
	defer g.Close()
	return g.Track(name)
}

func TestAdvertisedPathWithAndWithoutNode(t *testing.T) {
	for _, tc := range []struct{ prefix, node, want string }{
		{".stats", "sjc", ".stats/node/sjc"},
		{".stats", "sjc/1", ".stats/node/sjc/1"},
		{".stats", "", ".stats/node"},
		{"metrics", "lon", "metrics/node/lon"},
	} {
		s, o := setupConfig(t, moqstats.Config{Prefix: tc.prefix, Node: tc.node, Interval: time.Hour})
		if got := s.Path(); got != tc.want {
			t.Errorf("prefix %q node %q: Path() = %q, want %q", tc.prefix, tc.node, got, tc.want)
		}
		if _, ok := o.Lookup(tc.want); !ok {
			t.Errorf("prefix %q node %q: nothing announced at %q; announced %q", tc.prefix, tc.node, tc.want, o.Paths())
		}
	}
}

// The advertised path normalizes a messy node suffix and drops an
// all-empty one, observed through what the origin announced.
func TestNewNormalizesAndDropsEmptyNode(t *testing.T) {
	for node, want := range map[string]string{"/sjc//1/": ".stats/node/sjc/1", "///": ".stats/node"} {
		_, o := setupConfig(t, moqstats.Config{Node: node, Interval: time.Hour})
		if got := o.Paths(); len(got) != 1 || got[0] != want {
			t.Errorf("node %q: announced %q, want exactly [%q]", node, got, want)
		}
	}
}

// Bumps on one broadcast must not leak into another.
func TestPerBroadcastCountersIsolated(t *testing.T) {
	s, _ := setup(t)
	g1 := announceTrack(s.Tier(moqstats.External).Broadcast("demo/bbb"), "video")
	g1.Bytes(100)
	g2 := announceTrack(s.Tier(moqstats.External).Broadcast("demo/ccc"), "video")
	g2.Bytes(7)
	r1, ok1 := moqstats.Raw(s, moqstats.External, moqstats.RolePublisher, "demo/bbb")
	r2, ok2 := moqstats.Raw(s, moqstats.External, moqstats.RolePublisher, "demo/ccc")
	if !ok1 || !ok2 || r1.Bytes != 100 || r2.Bytes != 7 {
		t.Fatalf("bytes = %d (entry %v), %d (entry %v); want 100 and 7", r1.Bytes, ok1, r2.Bytes, ok2)
	}
}

func TestExternalAndInternalTiersAreIndependent(t *testing.T) {
	s, _ := setup(t)
	ext := announceTrack(s.Tier(moqstats.External).Broadcast("demo/bbb"), "video")
	ext.Bytes(100)
	in := announceTrackSub(s.Tier(moqstats.Internal).Broadcast("demo/bbb"), "audio")
	in.Bytes(7)
	for _, tc := range []struct {
		tier moqstats.Tier
		role bool
		want uint64
	}{
		{moqstats.External, true, 100},
		{moqstats.External, false, 0},
		{moqstats.Internal, true, 0},
		{moqstats.Internal, false, 7},
	} {
		r := moqstats.RoleSubscriber
		if tc.role {
			r = moqstats.RolePublisher
		}
		got, _ := moqstats.Raw(s, tc.tier, r, "demo/bbb")
		if got.Bytes != tc.want {
			t.Errorf("%v publisher=%v: bytes = %d, want %d", tc.tier, tc.role, got.Bytes, tc.want)
		}
	}
}

// Our own stats broadcasts (and any sibling category under the same
// prefix) must not feed back into the aggregator.
func TestPathsUnderPrefixAreNoOp(t *testing.T) {
	s, _ := setup(t)
	for _, path := range []string{".stats/node/sjc", ".stats", "/.stats//cluster/x/"} {
		bs := s.Tier(moqstats.External).Broadcast(path)
		if !bs.IsEmpty() {
			t.Errorf("Broadcast(%q) is not empty", path)
		}
		p := bs.Publisher()
		tr := p.Track("video")
		tr.Bytes(100)
		tr.Close()
		p.Close()
		if sub := s.Tier(moqstats.External).PublisherBroadcasts().Subscribe(path); sub != nil {
			t.Errorf("Subscribe(%q) = %v, want a nil guard", path, sub)
		}
	}
	if n := moqstats.Entries(s); n != 0 {
		t.Fatalf("%d entries after bumping paths under the prefix, want 0", n)
	}
	// Whole segments only: .statsfoo is an ordinary broadcast.
	if s.Tier(moqstats.External).Broadcast(".statsfoo").IsEmpty() {
		t.Fatalf(".statsfoo was treated as under the .stats prefix")
	}
}

// A disabled aggregator (no origin) allocates no state and never
// announces; every handle is empty and bumps are dropped.
func TestDisabledStatsAreNoop(t *testing.T) {
	s, err := moqstats.New(moqstats.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Enabled() || s.Path() != "" || s.Prefix() != ".stats" {
		t.Fatalf("disabled Stats: Enabled %v, Path %q, Prefix %q; want false, \"\", .stats", s.Enabled(), s.Path(), s.Prefix())
	}
	bs := s.Tier(moqstats.External).Broadcast("demo/bbb")
	if !bs.IsEmpty() {
		t.Fatalf("disabled Broadcast is not empty")
	}
	p := bs.Publisher()
	tr := p.Track("video")
	tr.Bytes(100)
	tr.Frame()
	tr.Group()
	tr.Close()
	p.Close()
	if p != nil || tr != nil {
		t.Fatalf("disabled guards are not nil: %v %v", p, tr)
	}
	if sb := s.Tier(moqstats.Internal).SubscriberBroadcasts(); sb != nil {
		t.Fatalf("disabled SubscriberBroadcasts = %v, want nil", sb)
	}
	if g := s.Tier(moqstats.External).Session("acme"); g != nil {
		t.Fatalf("disabled Session = %v, want nil", g)
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("disabled Flush = %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("disabled Close = %v, want nil", err)
	}
}

// No matter how many broadcasts get bumped, exactly one stats broadcast
// is announced (the per-node aggregate).
func TestSingleBroadcastPathAnnounced(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Node: "sjc/1", Interval: time.Hour})
	t1 := announceTrack(s.Tier(moqstats.External).Broadcast("foo/bar"), "video")
	t2 := announceTrack(s.Tier(moqstats.External).Broadcast("baz/qux"), "video")
	defer t1.Close()
	defer t2.Close()
	flush(t, s)
	if got := o.Paths(); len(got) != 1 || got[0] != ".stats/node/sjc/1" {
		t.Fatalf("announced %q, want [.stats/node/sjc/1]", got)
	}
}

func TestTaskAnnouncesWithoutNodeSuffix(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour})
	tr := announceTrack(s.Tier(moqstats.External).Broadcast("foo/bar"), "video")
	defer tr.Close()
	flush(t, s)
	if got := o.Paths(); len(got) != 1 || got[0] != ".stats/node" {
		t.Fatalf("announced %q, want [.stats/node]", got)
	}
}

// A broadcast with a live announce guard but no traffic must stay
// indefinitely: announced != announced_closed means a subscription could
// still begin at any moment.
func TestLiveEntryKeptWhileIdle(t *testing.T) {
	s, _ := setup(t)
	bs := s.Tier(moqstats.External).Broadcast("foo/bar")
	guard := bs.Publisher()
	for range 5 {
		flush(t, s)
	}
	if !moqstats.HasEntry(s, "foo/bar") {
		t.Fatalf("announced-but-idle broadcast must stay while the guard is held")
	}
	guard.Close()
	flush(t, s)
	if moqstats.HasEntry(s, "foo/bar") {
		t.Fatalf("entry must be collected on the pass after the announce guard closes")
	}
}

// Once every open counter equals its closed counterpart and no guard pins
// the entry, it is removed on the very next pass.
func TestEntryDroppedOnceFullyClosed(t *testing.T) {
	s, _ := setup(t)
	track := announceTrack(s.Tier(moqstats.External).Broadcast("foo/bar"), "video")
	flush(t, s)
	if !moqstats.HasEntry(s, "foo/bar") {
		t.Fatalf("live entry must be present while the track guard is held")
	}
	track.Close()
	flush(t, s)
	if moqstats.HasEntry(s, "foo/bar") || moqstats.Rows(s) != 0 {
		t.Fatalf("fully-closed entry must be dropped on the next pass (entry %v, rows %d)", moqstats.HasEntry(s, "foo/bar"), moqstats.Rows(s))
	}
}

func TestFrameEmitsExpectedCounters(t *testing.T) {
	s, o := setup(t)
	track := announceTrack(s.Tier(moqstats.External).Broadcast("foo/bar"), "video")
	track.Bytes(42)
	track.Frame()
	sub := s.Tier(moqstats.External).PublisherBroadcasts().Subscribe("foo/bar")
	defer sub.Close()
	flush(t, s)
	snap, ok := readFrame(t, o, s, moqstats.TrackPublisher)["foo/bar"]
	if !ok {
		t.Fatalf("foo/bar missing from publisher.json")
	}
	want := Snapshot{Announced: 1, AnnouncedClosed: 1, Broadcasts: 1, Subscriptions: 1, Bytes: 42, Frames: 1}
	if snap != want {
		t.Fatalf("foo/bar = %+v, want %+v (publisher() bumps announced, one session subscribed)", snap, want)
	}
}

// publisher() (announce) with no subscription bumps announced but not
// broadcasts, which only counts sessions with a live subscription.
func TestAnnouncedDecouplesFromBroadcasts(t *testing.T) {
	s, o := setup(t)
	g := s.Tier(moqstats.External).Broadcast("foo/bar").Publisher()
	defer g.Close()
	flush(t, s)
	snap := readFrame(t, o, s, moqstats.TrackPublisher)["foo/bar"]
	if snap.Announced != 1 || snap.Broadcasts != 0 || snap.Subscriptions != 0 {
		t.Fatalf("foo/bar = %+v, want announced 1 and no broadcasts sentinel or subscriptions", snap)
	}
}

// A subscription that opens and closes within one tick still surfaces as
// a complete open/close cycle: the change-driven rule emits it although it
// is idle by snapshot time.
func TestShortLivedSubIsSurfaced(t *testing.T) {
	s, o := setup(t)
	bs := s.Tier(moqstats.External).Broadcast("foo/bar")
	sessions := s.Tier(moqstats.External).PublisherBroadcasts()
	func() {
		p := bs.Publisher()
		defer p.Close()
		track := p.Track("video")
		defer track.Close()
		track.Bytes(123)
		track.Frame()
		sub := sessions.Subscribe("foo/bar")
		defer sub.Close()
	}()
	flush(t, s)
	snap := readFrame(t, o, s, moqstats.TrackPublisher)["foo/bar"]
	want := Snapshot{Announced: 1, AnnouncedClosed: 1, Broadcasts: 1, BroadcastsClosed: 1, Subscriptions: 1, SubscriptionsClosed: 1, Bytes: 123, Frames: 1}
	if snap != want {
		t.Fatalf("foo/bar = %+v, want %+v", snap, want)
	}
}

// Two concurrent subscriptions from the same session count as one
// broadcast: broadcasts is distinct sessions, not subscriptions.
func TestMultipleSubsCountAsOneBroadcast(t *testing.T) {
	s, _ := setup(t)
	bs := s.Tier(moqstats.External).Broadcast("foo/bar")
	sessions := s.Tier(moqstats.External).PublisherBroadcasts()
	pub := bs.Publisher()
	t1, t2 := pub.Track("video"), pub.Track("audio")
	s1, s2 := sessions.Subscribe("foo/bar"), sessions.Subscribe("foo/bar")
	raw := func() counters.Snapshot {
		r, _ := moqstats.Raw(s, moqstats.External, moqstats.RolePublisher, "foo/bar")
		return r
	}
	if r := raw(); r.Subscriptions != 2 || r.SubscriptionsClosed != 0 || r.Broadcasts != 1 || r.BroadcastsClosed != 0 {
		t.Fatalf("two track subs, one session: %+v", r)
	}
	s1.Close()
	if r := raw(); r.BroadcastsClosed != 0 {
		t.Fatalf("session still has a sub open, but broadcasts_closed = %d", r.BroadcastsClosed)
	}
	s2.Close()
	t1.Close()
	t2.Close()
	if r := raw(); r.SubscriptionsClosed != 2 || r.Broadcasts != 1 || r.BroadcastsClosed != 1 {
		t.Fatalf("last sub closed => one broadcasts_closed: %+v", r)
	}
	pub.Close()
}

// The viewer-count invariant: two sessions subscribing to one broadcast
// bump broadcasts to 2.
func TestDistinctSessionsCountAsSeparateBroadcasts(t *testing.T) {
	s, _ := setup(t)
	v1 := s.Tier(moqstats.External).PublisherBroadcasts()
	v2 := s.Tier(moqstats.External).PublisherBroadcasts()
	raw := func() counters.Snapshot {
		r, _ := moqstats.Raw(s, moqstats.External, moqstats.RolePublisher, "foo/bar")
		return r
	}
	s1 := v1.Subscribe("foo/bar")
	if r := raw(); r.Broadcasts != 1 {
		t.Fatalf("one viewer: broadcasts = %d", r.Broadcasts)
	}
	s2 := v2.Subscribe("foo/bar")
	if r := raw(); r.Broadcasts != 2 || r.BroadcastsClosed != 0 {
		t.Fatalf("two distinct viewers: %+v", r)
	}
	s1.Close()
	if r := raw(); r.Broadcasts != 2 || r.BroadcastsClosed != 1 {
		t.Fatalf("one viewer left, broadcasts is cumulative: %+v", r)
	}
	s2.Close()
	if r := raw(); r.BroadcastsClosed != 2 {
		t.Fatalf("both viewers gone: broadcasts_closed = %d", r.BroadcastsClosed)
	}
}

// Session counts per auth root, independent of any broadcast.
func TestSessionCountsByRoot(t *testing.T) {
	s, _ := setup(t)
	ext := s.Tier(moqstats.External)
	snap := func(root string) SessionSnapshot {
		r, _ := moqstats.SessionRaw(s, moqstats.External, root)
		return SessionSnapshot(r)
	}
	a1, a2, b1 := ext.Session("acme"), ext.Session("acme"), ext.Session("globex")
	if got := snap("acme"); got != (SessionSnapshot{Sessions: 2, SessionsClosed: 0}) {
		t.Fatalf("two sessions under one root: %+v", got)
	}
	if got := snap("globex"); got != (SessionSnapshot{Sessions: 1, SessionsClosed: 0}) {
		t.Fatalf("a distinct root is counted separately: %+v", got)
	}
	a1.Close()
	if got := snap("acme"); got != (SessionSnapshot{Sessions: 2, SessionsClosed: 1}) {
		t.Fatalf("after one disconnect: %+v, want {2 1}", got)
	}
	a2.Close()
	b1.Close()
	if got := snap("acme"); got != (SessionSnapshot{Sessions: 2, SessionsClosed: 2}) {
		t.Fatalf("acme after both disconnect: %+v", got)
	}
	if got := snap("globex"); got != (SessionSnapshot{Sessions: 1, SessionsClosed: 1}) {
		t.Fatalf("globex after disconnect: %+v", got)
	}
}

func TestSessionTrackSurfacesByRoot(t *testing.T) {
	s, o := setup(t)
	a := s.Tier(moqstats.External).Session("acme")
	b := s.Tier(moqstats.External).Session("acme")
	c := s.Tier(moqstats.Internal).Session("peer")
	defer a.Close()
	defer b.Close()
	defer c.Close()
	flush(t, s)
	ext := readSessionFrame(t, o, s, moqstats.TrackSessions)
	if got := ext["acme"]; got != (SessionSnapshot{Sessions: 2, SessionsClosed: 0}) {
		t.Fatalf("sessions.json acme = %+v, want {2 0}", got)
	}
	if _, ok := ext["peer"]; ok {
		t.Fatalf("internal session must not appear on the external track")
	}
	if got := readSessionFrame(t, o, s, moqstats.TrackInternalSessions)["peer"]; got != (SessionSnapshot{Sessions: 1, SessionsClosed: 0}) {
		t.Fatalf("internal/sessions.json peer = %+v, want {1 0}", got)
	}
}

// Once the last session under a root disconnects, the root leaves on the
// next pass, its final snapshot emitted.
func TestSessionRootDroppedWhenEmpty(t *testing.T) {
	s, o := setup(t)
	session := s.Tier(moqstats.External).Session("acme")
	flush(t, s)
	if _, ok := moqstats.SessionRaw(s, moqstats.External, "acme"); !ok {
		t.Fatalf("root must be present while a session is connected")
	}
	session.Close()
	flush(t, s)
	if _, ok := moqstats.SessionRaw(s, moqstats.External, "acme"); ok {
		t.Fatalf("root must be collected after the last session leaves")
	}
	if got := readSessionFrame(t, o, s, moqstats.TrackSessions)["acme"]; got != (SessionSnapshot{Sessions: 1, SessionsClosed: 1}) {
		t.Fatalf("final session frame acme = %+v, want {1 1}", got)
	}
}

// A broadcast with only External publisher traffic must not appear on the
// other three tracks with zero counters: the first-tick None-as-default
// rule.
func TestUnusedSlotsDontSurface(t *testing.T) {
	s, o := setup(t)
	track := announceTrack(s.Tier(moqstats.External).Broadcast("foo/bar"), "video")
	defer track.Close()
	track.Frame()
	flush(t, s)
	flush(t, s)
	if _, ok := readFrame(t, o, s, moqstats.TrackPublisher)["foo/bar"]; !ok {
		t.Fatalf("publisher.json must include the active foo/bar entry")
	}
	for _, name := range []string{moqstats.TrackSubscriber, moqstats.TrackInternalPublisher, moqstats.TrackInternalSubscriber} {
		if f := string(latest(t, o, s, name)); f != "{}" {
			t.Errorf("%s = %s, want {} for a slot with no activity", name, f)
		}
	}
}

var _ moqstats.Origin = memorigin.New()
