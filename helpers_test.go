package moqstats_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/bytedance/sonic"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/internal/wiretest"
	"github.com/moqstats/moqstats/memorigin"
)

// The frame values as tests decode them: see package wiretest.
type (
	Snapshot        = wiretest.Snapshot
	SessionSnapshot = wiretest.SessionSnapshot
)

// setup builds an enabled Stats on a fresh memorigin with node "sjc" and an
// interval long enough that only Flush runs passes, and closes it at the
// end of the test.
func setup(t *testing.T) (*moqstats.Stats, *memorigin.Origin) {
	t.Helper()
	return setupConfig(t, moqstats.Config{Node: "sjc", Interval: time.Hour})
}

func setupConfig(t *testing.T, cfg moqstats.Config) (*moqstats.Stats, *memorigin.Origin) {
	t.Helper()
	o := memorigin.New()
	cfg.Origin = o
	s, err := moqstats.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, o
}

func flush(t *testing.T, s *moqstats.Stats) {
	t.Helper()
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// latest returns the latest frame on track of s's broadcast.
func latest(t *testing.T, o *memorigin.Origin, s *moqstats.Stats, track string) []byte {
	t.Helper()
	b, ok := o.Latest(s.Path(), track)
	if !ok {
		t.Fatalf("no frame on %s at %s", track, s.Path())
	}
	return b
}

// decode parses a frame with encoding/json and with sonic, and fails the
// test unless both agree.
func decode[V any](t *testing.T, frame []byte) map[string]V {
	t.Helper()
	var a, b map[string]V
	if err := json.Unmarshal(frame, &a); err != nil {
		t.Fatalf("encoding/json: %v in %s", err, frame)
	}
	if err := sonic.ConfigStd.Unmarshal(frame, &b); err != nil {
		t.Fatalf("sonic: %v in %s", err, frame)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("encoding/json and sonic disagree on %s:\n%+v\n%+v", frame, a, b)
	}
	return a
}

// readFrame returns the latest per-broadcast frame on track, decoded.
func readFrame(t *testing.T, o *memorigin.Origin, s *moqstats.Stats, track string) map[string]Snapshot {
	t.Helper()
	return decode[Snapshot](t, latest(t, o, s, track))
}

// readSessionFrame returns the latest session frame on track, decoded.
func readSessionFrame(t *testing.T, o *memorigin.Origin, s *moqstats.Stats, track string) map[string]SessionSnapshot {
	t.Helper()
	return decode[SessionSnapshot](t, latest(t, o, s, track))
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	t.Helper()
	return context.WithTimeout(t.Context(), d)
}
