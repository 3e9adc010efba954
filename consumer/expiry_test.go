package consumer

import (
	"errors"
	"testing"
	"time"
)

func expiryAgg(t *testing.T, maxKeys int) *Aggregator {
	t.Helper()
	return newAgg(t, Config{Retention: 5 * time.Minute, RetentionSlack: 5 * time.Second, ExpireAfter: 10 * time.Minute, MaxKeys: maxKeys})
}

func trackRow(t *testing.T, v *View, node, track string) TrackRow {
	t.Helper()
	for _, r := range v.Tracks {
		if r.Node == node && r.Track.Name() == track {
			return r
		}
	}
	t.Fatalf("no track row %q %q", node, track)
	return TrackRow{}
}

func hasRow(v *View, node, broadcast string) bool {
	for _, r := range v.Broadcasts {
		if r.Node == node && r.Broadcast == broadcast {
			return true
		}
	}
	return false
}

// An idle key is dropped once ExpireAfter passed, its total folded into
// its track's, so the sums over keys do not change; a live key stays, and
// the dropped key coming back is a new key.
func TestExpiryFoldsIdleKeysIntoTheirTrackTotal(t *testing.T) {
	a := expiryAgg(t, 0)
	observe(t, a, "n", "publisher.json", 0, bytesFrame("gone", -7, "on", 1))
	// Observe sweeps every ExpireAfter/8 of frame time: by 600s + 75s
	// plus the spacing of frames the key is gone.
	for sec := 60.0; sec <= 720; sec += 60 {
		observe(t, a, "n", "publisher.json", sec, bytesFrame("on", int(sec)))
	}
	v := a.View(at(720))
	if hasRow(v, "n", "gone") || !hasRow(v, "n", "on") {
		t.Fatalf("after 660s: rows %+v, want only the live key", v.Broadcasts)
	}
	tr := trackRow(t, v, "n", "publisher.json")
	if tr.ExpiredKeys != 1 || tr.Expired.Bytes != 7 || tr.Expired.Subscriptions != 1 || tr.Keys != 1 || a.Keys() != 1 {
		t.Fatalf("track row %+v, Keys() %d; want one key expired with 7 bytes, one held", tr, a.Keys())
	}
	if got := v.Total("", Publisher).Bytes; got != 7+720 {
		t.Fatalf("total %d, want %d: expiry must not change sums", got, 7+720)
	}
	observe(t, a, "n", "publisher.json", 780, bytesFrame("gone", 3, "on", 780))
	v = a.View(at(780))
	if got := v.Total("", Publisher).Bytes; got != 7+780+3 {
		t.Fatalf("total after the key came back %d, want %d", got, 7+780+3)
	}
	if r := row(t, v, "n", "gone"); r.Total.Bytes != 3 || r.Segments != 1 {
		t.Fatalf("returned key %+v, want a new key with 3 bytes", r)
	}
}

// Nothing that could come back continuing its counts is dropped: not a
// path live on another of its node's tracks, not a key whose idleness
// is measured across a gap, not a key idle for less than ExpireAfter.
func TestExpiryKeepsKeysThatMayContinue(t *testing.T) {
	a := expiryAgg(t, 0)
	observe(t, a, "n", "publisher.json", 0, bytesFrame("pinned", -1, "gapped", -2, "recent", 3))
	observe(t, a, "n", "subscriber.json", 0, []byte(`{"pinned":{"announced":1}}`))
	if err := a.Gap("n", "internal/publisher.json", at(100)); err != nil {
		t.Fatal(err)
	}
	observe(t, a, "n", "publisher.json", 300, bytesFrame("recent", -4))
	if got := a.Expire(at(650)); got != 0 {
		t.Fatalf("Expire at 650s dropped %d keys, want 0 (the gap at 100s resets idleness)", got)
	}
	if got := a.Expire(at(701)); got != 1 {
		t.Fatalf("Expire at 701s dropped %d keys, want 1 (gapped)", got)
	}
	v := a.View(at(701))
	if !hasRow(v, "n", "pinned") || !hasRow(v, "n", "recent") || hasRow(v, "n", "gapped") {
		t.Fatalf("rows %+v, want pinned and recent kept", v.Broadcasts)
	}
	if got := a.Expire(at(901)); got != 1 {
		t.Fatalf("Expire at 901s dropped %d keys, want 1 (recent)", got)
	}
}

// An ended track's keys expire ExpireAfter after the end; Expire works
// for nodes that send nothing more, and session roots fold into
// SessionsTotal.
func TestExpiryOfEndedTracksAndSessions(t *testing.T) {
	a := expiryAgg(t, 0)
	observe(t, a, "n", "sessions.json", 0, []byte(`{"r":{"sessions":3,"sessions_closed":1}}`))
	observe(t, a, "n", "publisher.json", 0, bytesFrame("k", 5))
	a.EndNode("n", at(10))
	if got := a.Expire(at(600)); got != 0 {
		t.Fatalf("dropped %d keys 590s after the end, want 0", got)
	}
	if got := a.Expire(at(611)); got != 2 {
		t.Fatalf("dropped %d keys 601s after the end, want 2", got)
	}
	v := a.View(at(611))
	if len(v.Broadcasts) != 0 || len(v.Sessions) != 0 || a.Keys() != 0 {
		t.Fatalf("rows left: %+v %+v", v.Broadcasts, v.Sessions)
	}
	if got := v.SessionsTotal(""); got != (Presence{Sessions: 3, SessionsClosed: 1}) {
		t.Fatalf("SessionsTotal %+v, want {3 1}", got)
	}
	if tr := trackRow(t, v, "n", "sessions.json"); tr.ExpiredKeys != 1 || tr.ExpiredSessions.Sessions != 3 || tr.Expired != (Traffic{}) {
		t.Fatalf("sessions track row %+v", tr)
	}
	if got := v.Total("", Publisher).Bytes; got != 5 {
		t.Fatalf("publisher total %d, want 5", got)
	}
}

// At MaxKeys, keys idle for longer than the retention window plus slack
// make room before a frame is refused; younger ones do not.
func TestMaxKeysExpiresWhatIsSafeFirst(t *testing.T) {
	a := expiryAgg(t, 2)
	observe(t, a, "n", "publisher.json", 0, bytesFrame("a", -1, "b", -2))
	if err := a.Observe("n", "publisher.json", at(300), bytesFrame("c", 3)); !errors.Is(err, ErrKeyLimit) {
		t.Fatalf("third key 300s after the others went idle: %v, want ErrKeyLimit", err)
	}
	observe(t, a, "n", "publisher.json", 306, bytesFrame("c", 3))
	v := a.View(at(306))
	if len(v.Broadcasts) != 1 || a.Keys() != 1 || v.Total("", Publisher).Bytes != 6 {
		t.Fatalf("after the cap made room: rows %+v, keys %d, total %d; want c alone, total 6", v.Broadcasts, a.Keys(), v.Total("", Publisher).Bytes)
	}
	// Without ExpireAfter nothing is ever dropped.
	b := newAgg(t, Config{MaxKeys: 2})
	observe(t, b, "n", "publisher.json", 0, bytesFrame("a", -1, "b", -2))
	if err := b.Observe("n", "publisher.json", at(1e6), bytesFrame("c", 3)); !errors.Is(err, ErrKeyLimit) {
		t.Fatalf("without ExpireAfter: %v, want ErrKeyLimit", err)
	}
}
