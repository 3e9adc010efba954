package moqstats_test

import (
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/internal/wiretest"
)

func TestWireFormatExactFrame(t *testing.T) {
	s, o := setup(t)
	h := s.Tier(moqstats.External)
	tr := announceTrack(h.Broadcast("foo/bar"), "video")
	defer tr.Close()
	tr.Bytes(42)
	tr.Frame()
	sub := h.PublisherBroadcasts().Subscribe("foo/bar")
	defer sub.Close()
	sess := h.Session("acme")
	defer sess.Close()
	flush(t, s)
	want := `{"foo/bar":{"announced":1,"announced_closed":1,"broadcasts":1,"broadcasts_closed":0,"subscriptions":1,"subscriptions_closed":0,"bytes":42,"frames":1,"groups":0}}`
	if got := string(latest(t, o, s, moqstats.TrackPublisher)); got != want {
		t.Fatalf("publisher.json\ngot  %s\nwant %s", got, want)
	}
	if got, want := string(latest(t, o, s, moqstats.TrackSessions)), `{"acme":{"sessions":1,"sessions_closed":0}}`; got != want {
		t.Fatalf("sessions.json\ngot  %s\nwant %s", got, want)
	}
}

// Keys are in byte order (a Rust BTreeMap<String, _>), whatever order the
// broadcasts were created in, and escaped as serde_json escapes them.
func TestFrameKeysInByteOrderAndEscaped(t *testing.T) {
	s, o := setup(t)
	h := s.Tier(moqstats.External)
	for _, p := range []string{"b", "\u00e9t\u00e9", "B", "a\"q\\", "", "a/b", "a\nb", "a\u2028", "</x>&", "a\x7f"} {
		g := h.Broadcast(p).Publisher()
		defer g.Close()
	}
	flush(t, s)
	const v = `{"announced":1,"announced_closed":0,"broadcasts":0,"broadcasts_closed":0,"subscriptions":0,"subscriptions_closed":0,"bytes":0,"frames":0,"groups":0}`
	want := `{"":` + v + `,"</x>&":` + v + `,"B":` + v + `,"a\nb":` + v + `,"a\"q\\":` + v + `,"a/b":` + v + ",\"a\x7f\":" + v + ",\"a\u2028\":" + v + `,"b":` + v + ",\"\u00e9t\u00e9\":" + v + `}`
	if got := string(latest(t, o, s, moqstats.TrackPublisher)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestPathsNormalizedBeforeKeying(t *testing.T) {
	s, o := setup(t)
	h := s.Tier(moqstats.External)
	var guards []*moqstats.BroadcastGuard
	for _, p := range []string{"foo/bar", "/foo//bar/", "foo/bar/", "bad\xff/x", "bad\xfe/x", "///"} {
		guards = append(guards, h.Broadcast(p).Publisher())
	}
	r1 := h.PublisherBroadcasts().Subscribe("//foo/bar")
	r2 := h.PublisherBroadcasts().Subscribe("foo/bar")
	flush(t, s)
	f := readFrame(t, o, s, moqstats.TrackPublisher)
	if len(f) != 3 {
		t.Fatalf("frame has keys %v, want foo/bar, bad\uFFFD/x and \"\"", keysOf(f))
	}
	if got := f["foo/bar"]; got.Announced != 3 || got.Broadcasts != 2 {
		t.Fatalf("foo/bar = %+v, want 3 announces and 2 sessions from every spelling", got)
	}
	if got := f["bad\uFFFD/x"]; got.Announced != 2 {
		t.Fatalf("bad\\uFFFD/x = %+v, want both invalid spellings on one valid key", got)
	}
	if got := f[""]; got.Announced != 1 {
		t.Fatalf(`"" = %+v, want the all-slash path keyed as ""`, got)
	}
	r1.Close()
	r2.Close()
	for _, g := range guards {
		g.Close()
	}
	// Roots too.
	a, b := h.Session("/acme/"), h.Session("acme")
	defer a.Close()
	defer b.Close()
	flush(t, s)
	if got := readSessionFrame(t, o, s, moqstats.TrackSessions)["acme"]; got.Sessions != 2 {
		t.Fatalf("acme = %+v, want both spellings of the root counted together", got)
	}
}

func keysOf[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// With NewerCounters, an entry carries the twelve fields moq-net writes
// today, in its order: announced_bytes is the name's length at announce
// and again at unannounce, a fetch counts in fetches (not subscriptions)
// with its payload in bytes, and a datagram is a group, a frame and its
// bytes as well.
func TestNewerCountersWriteTwelveFieldsInMoqNetOrder(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, NewerCounters: true})
	h := s.Tier(moqstats.External)
	g := h.Broadcast("foo/bar").Publisher() // 7 bytes
	tr := g.Track("video")
	tr.Bytes(42)
	tr.Frame()
	tr.Datagram(100)
	f := g.Fetch("video")
	f.Bytes(500)
	f.Frame()
	f.Close()
	flush(t, s)
	want := `{"foo/bar":{"announced":1,"announced_closed":0,"announced_bytes":7,"broadcasts":0,"broadcasts_closed":0,"subscriptions":1,"subscriptions_closed":0,"fetches":1,"bytes":642,"frames":3,"groups":1,"datagrams":1}}`
	if got := string(latest(t, o, s, moqstats.TrackPublisher)); got != want {
		t.Fatalf("publisher.json\ngot  %s\nwant %s", got, want)
	}
	tr.Close()
	g.Close()
	flush(t, s)
	got := decode[wiretest.SnapshotAll](t, latest(t, o, s, moqstats.TrackPublisher))["foo/bar"]
	if got.AnnouncedBytes != 14 || got.AnnouncedClosed != 1 || got.SubscriptionsClosed != 1 || got.Fetches != 1 {
		t.Fatalf("after the unannounce: %+v, want announced_bytes 2x7, the close counted, fetches unchanged", got)
	}
}

// Without NewerCounters the frame is the nine-field one, whatever the
// newer counters counted.
func TestNineFieldsByDefaultWhateverTheNewerCountersCount(t *testing.T) {
	s, o := setup(t)
	g := s.Tier(moqstats.External).Broadcast("foo/bar").Publisher()
	defer g.Close()
	g.Fetch("v").Close()
	tr := g.Track("v")
	defer tr.Close()
	tr.Datagram(10)
	flush(t, s)
	want := `{"foo/bar":{"announced":1,"announced_closed":0,"broadcasts":0,"broadcasts_closed":0,"subscriptions":1,"subscriptions_closed":0,"bytes":10,"frames":1,"groups":1}}`
	if got := string(latest(t, o, s, moqstats.TrackPublisher)); got != want {
		t.Fatalf("publisher.json\ngot  %s\nwant %s", got, want)
	}
}
