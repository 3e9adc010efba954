package moqstats_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/memorigin"
)

// Tests for what the Go version adds to, or does differently from, the
// reference: Close on guards, synchronous New, Flush, Close, config errors,
// write failures, and collection that never loses a count.

func TestNewAnnouncesSynchronouslyWithBaselineOnAllTracks(t *testing.T) {
	o := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, ok := o.Lookup(".stats/node")
	if !ok {
		t.Fatalf("nothing announced when New returned; announced %q", o.Paths())
	}
	if got, want := strings.Join(b.Tracks(), ","), strings.Join(moqstats.Tracks(), ","); got != want {
		t.Fatalf("tracks = %s, want %s", got, want)
	}
	want := []string{"publisher.json", "subscriber.json", "internal/publisher.json", "internal/subscriber.json", "sessions.json", "internal/sessions.json"}
	if got := b.Tracks(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("track order = %q, want %q", got, want)
	}
	for _, tr := range want {
		if f, ok := b.Latest(tr); !ok || string(f) != "{}" || b.Writes(tr) != 1 {
			t.Errorf("%s: latest %q (present %v), writes %d; want the baseline {} written once", tr, f, ok, b.Writes(tr))
		}
	}
}

func TestFramesWrittenOnlyWhenBytesChange(t *testing.T) {
	s, o := setup(t)
	b, _ := o.Lookup(s.Path())
	g := s.Tier(moqstats.External).Broadcast("a").Publisher()
	flush(t, s)
	flush(t, s) // live, unchanged: same bytes
	if n := b.Writes(moqstats.TrackPublisher); n != 2 {
		t.Fatalf("publisher.json writes = %d, want 2 (baseline, then one change)", n)
	}
	if n := b.Writes(moqstats.TrackSubscriber); n != 1 {
		t.Fatalf("subscriber.json writes = %d, want only the baseline", n)
	}
	g.Close()
	flush(t, s) // final close
	flush(t, s) // back to {}
	flush(t, s) // idle
	if n := b.Writes(moqstats.TrackPublisher); n != 4 {
		t.Fatalf("publisher.json writes = %d, want 4 (baseline, open, close, empty)", n)
	}
	if f := string(latest(t, o, s, moqstats.TrackPublisher)); f != "{}" {
		t.Fatalf("idle frame = %s, want {}", f)
	}
}

func TestTickerWritesWithoutFlush(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: 5 * time.Millisecond})
	sub, err := o.Subscribe(s.Path(), moqstats.TrackPublisher)
	if err != nil {
		t.Fatal(err)
	}
	tr := s.Tier(moqstats.External).Broadcast("live").PublisherTrack("v")
	defer tr.Close()
	tr.Bytes(9)
	ctx, cancel := contextWithTimeout(t, 10*time.Second)
	defer cancel()
	for {
		f, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("no frame with the bump from the ticker: %v", err)
		}
		if decode[Snapshot](t, f)["live"].Bytes == 9 {
			return
		}
	}
}

func TestCloseFlushesFinalStateAndClosesBroadcast(t *testing.T) {
	o := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := o.Lookup(s.Path())
	tr := s.Tier(moqstats.Internal).Broadcast("x").SubscriberTrack("v")
	tr.Bytes(5)
	tr.Frame()
	tr.Group()
	sess := s.Tier(moqstats.External).Session("acme")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !b.Closed() || len(o.Paths()) != 0 {
		t.Fatalf("broadcast not closed and unannounced after Close")
	}
	f, _ := b.Latest(moqstats.TrackInternalSubscriber)
	if got := decode[Snapshot](t, f)["x"]; got != (Snapshot{Subscriptions: 1, Bytes: 5, Frames: 1, Groups: 1}) {
		t.Fatalf("final internal/subscriber.json x = %+v, want the bumps made before Close", got)
	}
	f, _ = b.Latest(moqstats.TrackSessions)
	if got := decode[SessionSnapshot](t, f)["acme"]; got != (SessionSnapshot{Sessions: 1}) {
		t.Fatalf("final sessions.json acme = %+v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
	if err := s.Flush(); !errors.Is(err, moqstats.ErrClosed) {
		t.Fatalf("Flush after Close = %v, want ErrClosed", err)
	}
	// Guards that outlive their Stats stay harmless.
	tr.Bytes(1)
	tr.Close()
	sess.Close()
	if g := s.Tier(moqstats.External).Broadcast("y").Publisher(); g != nil {
		t.Fatalf("guard opened after Close = %v, want nil", g)
	}
	if g := s.Tier(moqstats.External).Session("acme"); g != nil {
		t.Fatalf("session opened after Close = %v, want nil", g)
	}
}

func TestGuardCloseIsIdempotent(t *testing.T) {
	s, _ := setup(t)
	h := s.Tier(moqstats.External)
	bs := h.Broadcast("p")
	g := bs.Publisher()
	tr := g.Track("v")
	sb := h.PublisherBroadcasts()
	sub := sb.Subscribe("p")
	sess := h.Session("root")
	for range 3 {
		tr.Close()
		sub.Close()
		g.Close()
		sess.Close()
	}
	got, _ := moqstats.Raw(s, moqstats.External, moqstats.RolePublisher, "p")
	if got.AnnouncedClosed != 1 || got.SubscriptionsClosed != 1 || got.BroadcastsClosed != 1 {
		t.Fatalf("after closing every guard 3 times: %+v, want each closed counter at 1", got)
	}
	if ss, _ := moqstats.SessionRaw(s, moqstats.External, "root"); ss.SessionsClosed != 1 {
		t.Fatalf("sessions_closed = %d after 3 Closes, want 1", ss.SessionsClosed)
	}
	flush(t, s)
	if moqstats.Entries(s) != 0 {
		t.Fatalf("entry not collected: an extra Close must not leave a pin or drop one twice")
	}
}

func TestBumpsAfterCloseAreDropped(t *testing.T) {
	s, _ := setup(t)
	g := s.Tier(moqstats.External).Broadcast("p").Publisher()
	defer g.Close()
	tr := g.Track("v")
	tr.Bytes(10)
	tr.Close()
	tr.Bytes(1000)
	tr.Frame()
	tr.Group()
	got, _ := moqstats.Raw(s, moqstats.External, moqstats.RolePublisher, "p")
	if got.Bytes != 10 || got.Frames != 0 || got.Groups != 0 {
		t.Fatalf("after Close: %+v, want only the 10 bytes bumped before", got)
	}
	g.Close()
	if tr2 := g.Track("late"); tr2 != nil {
		t.Fatalf("Track on a closed broadcast guard = %v, want nil", tr2)
	}
}

func TestNilAndZeroValuesAreNoops(t *testing.T) {
	var s *moqstats.Stats
	if s.Enabled() || s.Path() != "" || s.Prefix() != "" || s.Flush() != nil || s.Close() != nil {
		t.Fatalf("nil *Stats is not a quiet no-op")
	}
	var h moqstats.Handle
	for _, h := range []moqstats.Handle{h, s.Tier(moqstats.Internal)} {
		bs := h.Broadcast("x")
		if !bs.IsEmpty() || bs.Publisher() != nil || bs.Subscriber() != nil || bs.PublisherTrack("v") != nil || bs.SubscriberTrack("v") != nil {
			t.Fatalf("no-op handle produced a guard")
		}
		if h.PublisherBroadcasts() != nil || h.SubscriberBroadcasts() != nil || h.Session("r") != nil {
			t.Fatalf("no-op handle produced a tracker")
		}
	}
	var bs moqstats.BroadcastStats
	if !bs.IsEmpty() || bs.Publisher() != nil {
		t.Fatalf("zero BroadcastStats is not empty")
	}
	var g *moqstats.BroadcastGuard
	var tr *moqstats.TrackGuard
	var sb *moqstats.SessionBroadcasts
	var sub *moqstats.SubscriptionGuard
	var sess *moqstats.SessionGuard
	g.Close()
	if g.Track("v") != nil {
		t.Fatalf("nil BroadcastGuard.Track returned a guard")
	}
	tr.Bytes(1)
	tr.Frame()
	tr.Group()
	tr.Close()
	if sb.Subscribe("x") != nil {
		t.Fatalf("nil SessionBroadcasts.Subscribe returned a guard")
	}
	sub.Close()
	sess.Close()
	if got := s.Tier(moqstats.Internal).Tier(); got != moqstats.Internal {
		t.Fatalf("Tier() = %v, want internal", got)
	}
}

func TestUnknownTierIsNoop(t *testing.T) {
	s, _ := setup(t)
	h := s.Tier(moqstats.Tier(7))
	if h.Tier() != 7 || h.Tier().String() != "Tier(7)" {
		t.Fatalf("Tier() = %v", h.Tier())
	}
	if !h.Broadcast("x").IsEmpty() || h.Session("r") != nil || h.PublisherBroadcasts() != nil {
		t.Fatalf("unknown tier produced live guards")
	}
	if moqstats.External.String() != "external" || moqstats.Internal.String() != "internal" {
		t.Fatalf("Tier.String() = %q, %q", moqstats.External, moqstats.Internal)
	}
}

type failingOrigin struct{ err error }

func (f failingOrigin) Publish(string, []string) (moqstats.Broadcast, error) { return nil, f.err }

type nilBroadcastOrigin struct{}

func (nilBroadcastOrigin) Publish(string, []string) (moqstats.Broadcast, error) { return nil, nil }

func TestBadConfigIsAnErrorNotAPanic(t *testing.T) {
	errPublish := errors.New("origin says no")
	var nilOrigin *memorigin.Origin
	for _, tc := range []struct {
		name    string
		cfg     moqstats.Config
		is      error
		message string
	}{
		{"slash prefix", moqstats.Config{Origin: memorigin.New(), Prefix: "/"}, moqstats.ErrInvalidConfig, "normalizes to the empty path"},
		{"slashes prefix", moqstats.Config{Origin: memorigin.New(), Prefix: "///"}, moqstats.ErrInvalidConfig, "normalizes to the empty path"},
		{"slash prefix, disabled", moqstats.Config{Prefix: "/"}, moqstats.ErrInvalidConfig, "empty path"},
		{"negative interval", moqstats.Config{Origin: memorigin.New(), Interval: -time.Second}, moqstats.ErrInvalidConfig, "negative Interval"},
		{"typed nil origin", moqstats.Config{Origin: nilOrigin}, moqstats.ErrInvalidConfig, "nil *memorigin.Origin"},
		{"publish fails", moqstats.Config{Origin: failingOrigin{errPublish}}, errPublish, "publishing .stats/node"},
		{"nil broadcast", moqstats.Config{Origin: nilBroadcastOrigin{}}, nil, "nil Broadcast"},
	} {
		s, err := moqstats.New(tc.cfg)
		if err == nil || s != nil {
			t.Errorf("%s: New = %v, %v; want an error", tc.name, s, err)
			continue
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: error %v does not wrap %v", tc.name, err, tc.is)
		}
		if !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%s: error %q does not say %q", tc.name, err, tc.message)
		}
	}
}

// baselineFailOrigin publishes on a memorigin whose broadcasts fail every
// write.
type baselineFailOrigin struct {
	*memorigin.Origin
	err error
}

func (o baselineFailOrigin) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	b, err := o.Origin.Publish(path, tracks)
	if err == nil {
		b.(*memorigin.Broadcast).SetWriteHook(func(string, []byte) error { return o.err })
	}
	return b, err
}

func TestBaselineWriteFailureFailsNewAndUnannounces(t *testing.T) {
	errWrite := errors.New("disk on fire")
	o := baselineFailOrigin{memorigin.New(), errWrite}
	s, err := moqstats.New(moqstats.Config{Origin: o})
	if err == nil || s != nil || !errors.Is(err, errWrite) {
		t.Fatalf("New = %v, %v; want an error wrapping %v", s, err, errWrite)
	}
	if len(o.Paths()) != 0 {
		t.Fatalf("broadcast still announced after a failed New: %q", o.Paths())
	}
}

func TestDefaultsApplied(t *testing.T) {
	s, err := moqstats.New(moqstats.Config{Origin: memorigin.New()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Prefix() != moqstats.DefaultPrefix || s.Path() != ".stats/node" {
		t.Fatalf("Prefix %q, Path %q; want .stats and .stats/node", s.Prefix(), s.Path())
	}
	s2, _ := setupConfig(t, moqstats.Config{Prefix: "//metrics//x/"})
	if s2.Prefix() != "metrics/x" || s2.Path() != "metrics/x/node" {
		t.Fatalf("Prefix %q, Path %q; want metrics/x and metrics/x/node", s2.Prefix(), s2.Path())
	}
}

func TestWriteFailureReturnedFromFlushAndRetried(t *testing.T) {
	s, o := setup(t)
	b, _ := o.Lookup(s.Path())
	errWrite := errors.New("link down")
	var fail atomic.Bool
	b.SetWriteHook(func(track string, _ []byte) error {
		if fail.Load() && track == moqstats.TrackPublisher {
			return errWrite
		}
		return nil
	})
	// A broadcast that opens and closes within the failing tick.
	p := s.Tier(moqstats.External).Broadcast("short").Publisher()
	p.Close()
	fail.Store(true)
	err := s.Flush()
	if !errors.Is(err, errWrite) || !strings.Contains(err.Error(), moqstats.TrackPublisher) {
		t.Fatalf("Flush = %v, want an error naming %s and wrapping %v", err, moqstats.TrackPublisher, errWrite)
	}
	if moqstats.Rows(s) != 1 {
		t.Fatalf("collected entry dropped before its final frame was written (rows %d)", moqstats.Rows(s))
	}
	if err := s.Flush(); !errors.Is(err, errWrite) {
		t.Fatalf("second failing Flush = %v", err)
	}
	fail.Store(false)
	flush(t, s)
	if got := readFrame(t, o, s, moqstats.TrackPublisher)["short"]; got != (Snapshot{Announced: 1, AnnouncedClosed: 1}) {
		t.Fatalf("after the retry, short = %+v, want its final state", got)
	}
	if moqstats.Rows(s) != 0 {
		t.Fatalf("entry kept after its final frame was written")
	}
}

func TestTickerLogsWriteFailure(t *testing.T) {
	var logs safeBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	s, o := setupConfig(t, moqstats.Config{Interval: 2 * time.Millisecond, Logger: logger, CloseTimeout: -1}) // writes fail at Close too: one attempt
	b, _ := o.Lookup(s.Path())
	b.SetWriteHook(func(string, []byte) error { return errors.New("boom") })
	g := s.Tier(moqstats.External).Session("acme")
	defer g.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "boom") {
		if time.Now().After(deadline) {
			t.Fatalf("no log of the failed write; logs: %q", logs.String())
		}
		time.Sleep(time.Millisecond)
	}
	if !strings.Contains(logs.String(), "sessions.json") {
		t.Fatalf("log does not name the track: %q", logs.String())
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPassesNeverOverlap runs Flush from several goroutines against a fast
// ticker; a write hook detects two passes writing at once.
func TestPassesNeverOverlap(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Millisecond})
	b, _ := o.Lookup(s.Path())
	var inPass, overlaps atomic.Int32
	b.SetWriteHook(func(string, []byte) error {
		if inPass.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(10 * time.Microsecond)
		inPass.Add(-1)
		return nil
	})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				tr := s.Tier(moqstats.External).Broadcast("b").PublisherTrack("v")
				tr.Bytes(uint64(w + i))
				s.Flush()
				tr.Close()
			}
		})
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d writes ran while another pass was writing", n)
	}
}

// After Stats.Close, an open broadcast guard hands out no new track guard,
// and Enabled reports false; Path stays.
func TestNoNewGuardsAndNotEnabledAfterClose(t *testing.T) {
	o := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	g := s.Tier(moqstats.External).Broadcast("b").Publisher()
	defer g.Close()
	if !s.Enabled() {
		t.Fatal("Enabled() = false before Close")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if tr := g.Track("v"); tr != nil {
		t.Fatalf("BroadcastGuard.Track after Stats.Close = %v, want nil", tr)
	}
	if s.Enabled() {
		t.Fatal("Enabled() = true after Close")
	}
	if s.Path() != ".stats/node" {
		t.Fatalf("Path() after Close = %q, want it kept", s.Path())
	}
	if h := s.Tier(moqstats.External); !h.Broadcast("b").IsEmpty() {
		t.Fatal("a handle taken after Close is not a no-op")
	}
}

// A second Close called while the first is in its final pass returns only
// once the final frames are written.
func TestSecondCloseWaitsForTheFinalFrames(t *testing.T) {
	o := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pub := frames[Snapshot](t, o, s, moqstats.TrackPublisher)
	tr := s.Tier(moqstats.External).Broadcast("b").PublisherTrack("v")
	tr.Bytes(5)
	inFinal, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	defer moqstats.SetHookDuringPass(func() {
		once.Do(func() { close(inFinal); <-release })
	})()
	first := make(chan error)
	go func() { first <- s.Close() }()
	<-inFinal
	second := make(chan bool)
	go func() {
		s.Close()
		written := false
		for _, f := range pub() {
			written = written || f["b"].Bytes == 5
		}
		second <- written
	}()
	time.Sleep(20 * time.Millisecond) // give a second Close that does not wait the time to return
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if !<-second {
		t.Fatal("the second Close returned before the final frames were written")
	}
	tr.Close()
}

// An Origin whose WriteFrame panics does not take the pass down: the panic
// is the pass's error, and the frame goes out on the next pass.
func TestOriginPanickingInWriteFrameIsAnErrorAndRetried(t *testing.T) {
	s, o := setup(t)
	b, _ := o.Lookup(s.Path())
	var panicking atomic.Bool
	b.SetWriteHook(func(track string, _ []byte) error {
		if panicking.Load() && track == moqstats.TrackPublisher {
			panic("relay bug")
		}
		return nil
	})
	tr := s.Tier(moqstats.External).Broadcast("p").PublisherTrack("v")
	tr.Bytes(3)
	tr.Close()
	panicking.Store(true)
	err := s.Flush()
	if !errors.Is(err, moqstats.ErrOriginPanicked) || !strings.Contains(err.Error(), "relay bug") || !strings.Contains(err.Error(), moqstats.TrackPublisher) {
		t.Fatalf("Flush with a panicking WriteFrame = %v, want ErrOriginPanicked naming the track and the panic", err)
	}
	panicking.Store(false)
	flush(t, s)
	if got := readFrame(t, o, s, moqstats.TrackPublisher)["p"]; got != (Snapshot{Subscriptions: 1, SubscriptionsClosed: 1, Bytes: 3}) {
		t.Fatalf("p after the retry = %+v, want its final counts", got)
	}
}

type panickingOrigin struct{}

func (panickingOrigin) Publish(string, []string) (moqstats.Broadcast, error) { panic("no") }

func TestOriginPanickingInPublishIsAnError(t *testing.T) {
	s, err := moqstats.New(moqstats.Config{Origin: panickingOrigin{}})
	if s != nil || !errors.Is(err, moqstats.ErrOriginPanicked) {
		t.Fatalf("New = %v, %v; want ErrOriginPanicked", s, err)
	}
}

// Errors name each layer once: a duplicate Publish on memorigin.
func TestErrorsDoNotRepeatTheirPrefix(t *testing.T) {
	o := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = moqstats.New(moqstats.Config{Origin: o})
	if !errors.Is(err, memorigin.ErrDuplicate) {
		t.Fatalf("second New on one path = %v, want ErrDuplicate", err)
	}
	for _, prefix := range []string{"moqstats:", "memorigin:"} {
		if n := strings.Count(err.Error(), prefix); n != 1 {
			t.Errorf("%q appears %d times in %q, want once", prefix, n, err)
		}
	}
}

// A key re-created from zero whose final counts equal its predecessor's
// yields byte-identical frames: only Unchanged can tell, and the frame is
// not written again.
func TestIdenticalFrameFromARecreatedKeyIsNotRewritten(t *testing.T) {
	s, o := setupConfig(t, moqstats.Config{Interval: time.Hour, Retention: moqstats.NoRetention})
	b, _ := o.Lookup(s.Path())
	h := s.Tier(moqstats.External)
	h.Broadcast("a").Publisher().Close()
	flush(t, s) // a's final counts; a collected and forgotten
	h.Broadcast("a").Publisher().Close()
	flush(t, s) // a new entry with the same final counts
	if n := b.Writes(moqstats.TrackPublisher); n != 2 {
		t.Fatalf("publisher.json written %d times, want 2 (baseline, then a once)", n)
	}
}

// finalWorkload opens, bumps and closes guards on every tier and role and
// on sessions, and returns what the final frames must show.
func finalWorkload(s *moqstats.Stats) (want map[string]Snapshot, wantSessions map[string]SessionSnapshot) {
	for _, tier := range []moqstats.Tier{moqstats.External, moqstats.Internal} {
		h := s.Tier(tier)
		tr := h.Broadcast("acme/live").PublisherTrack("v")
		tr.Bytes(1000)
		tr.Frame()
		tr.Close()
		in := h.Broadcast("acme/live").SubscriberTrack("v")
		in.Bytes(7)
		in.Close()
		h.Session("acme").Close()
	}
	return map[string]Snapshot{"acme/live": {Subscriptions: 1, SubscriptionsClosed: 1, Bytes: 1000, Frames: 1}},
		map[string]SessionSnapshot{"acme": {Sessions: 1, SessionsClosed: 1}}
}

// lastValues returns the last value each key had in frames.
func lastValues[V any](frames []map[string]V) map[string]V {
	last := map[string]V{}
	for _, f := range frames {
		for k, v := range f {
			last[k] = v
		}
	}
	return last
}

// failFirst returns a write hook that fails the first n writes it sees
// (of any track, plain or compressed) and counts every write attempted.
func failFirst(n int64, attempts *atomic.Int64) func(string, []byte) error {
	return func(string, []byte) error {
		if attempts.Add(1) <= n {
			return errors.New("origin unavailable")
		}
		return nil
	}
}

// A transient origin failure at shutdown loses nothing: the origin fails
// the first 3 writes of Close's final pass, and Close retries it until
// every track, compressed siblings included, carries the final counts,
// and returns nil.
func TestCloseRetriesTheFinalPassUntilItsFramesAreWritten(t *testing.T) {
	for _, compressed := range []bool{false, true} {
		t.Run(fmt.Sprintf("compressed=%v", compressed), func(t *testing.T) {
			o := memorigin.New()
			s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour, Compressed: compressed, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := o.Lookup(s.Path())
			var zs []*zReader
			if compressed {
				for _, name := range moqstats.Tracks() {
					sub, err := o.Subscribe(s.Path(), name+moqstats.CompressedSuffix)
					if err != nil {
						t.Fatal(err)
					}
					zs = append(zs, &zReader{t: t, name: name + moqstats.CompressedSuffix, sub: sub, anyFailed: true})
				}
			}
			var plain [4]func() []map[string]Snapshot
			for i, track := range moqstats.Tracks()[:4] {
				plain[i] = frames[Snapshot](t, o, s, track)
			}
			var sessions [2]func() []map[string]SessionSnapshot
			for i, track := range moqstats.Tracks()[4:] {
				sessions[i] = frames[SessionSnapshot](t, o, s, track)
			}
			want, wantSessions := finalWorkload(s)
			var attempts atomic.Int64
			b.SetWriteHook(failFirst(3, &attempts))
			if err := s.Close(); err != nil {
				t.Fatalf("Close = %v, want nil: the final pass is retried until its writes succeed", err)
			}
			if attempts.Load() <= 3 {
				t.Fatalf("%d writes attempted, want more than the 3 that failed", attempts.Load())
			}
			if !b.Closed() {
				t.Fatal("broadcast not closed after Close")
			}
			// A closed key is in one frame with its final counts, then
			// drops out: the last value each track showed is what counts.
			for i, track := range moqstats.Tracks()[:4] {
				got := lastValues(plain[i]())
				w := want
				if track == moqstats.TrackSubscriber || track == moqstats.TrackInternalSubscriber {
					w = map[string]Snapshot{"acme/live": {Subscriptions: 1, SubscriptionsClosed: 1, Bytes: 7}}
				}
				if !reflect.DeepEqual(got, w) {
					t.Errorf("%s showed %+v last, want %+v", track, got, w)
				}
			}
			for i, track := range moqstats.Tracks()[4:] {
				if got := lastValues(sessions[i]()); !reflect.DeepEqual(got, wantSessions) {
					t.Errorf("%s showed %+v last, want %+v", track, got, wantSessions)
				}
			}
			for i, z := range zs {
				z.drain()
				plain, _ := b.Latest(moqstats.Tracks()[i])
				if want := jsonValue(t, plain); !reflect.DeepEqual(z.value, want) {
					t.Errorf("%s adds up to %v, its plain track's final frame is %s", z.name, z.value, plain)
				}
			}
		})
	}
}

// Shutdown gives up when its context is done: with an origin that never
// accepts a write, it returns the write error (and the context's), closes
// the broadcast, and nothing is written after it returns. A context done
// before the call gets exactly one attempt; one cancelled while Shutdown
// retries stops the retries.
func TestShutdownWithDoneContextReturnsTheErrorAndWritesNothingAfter(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cancelAfter int64 // attempts; 0: cancelled before Shutdown
	}{{"cancelled before", 0}, {"cancelled while retrying", 30}} { // 6 or 12 writes a pass
		for _, compressed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/compressed=%v", tc.name, compressed), func(t *testing.T) {
				o := memorigin.New()
				s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Millisecond, Compressed: compressed, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				b, _ := o.Lookup(s.Path())
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if tc.cancelAfter == 0 {
					cancel()
				}
				var attempts atomic.Int64
				refuse := errors.New("origin unavailable")
				// The hook is in place before the workload, so no tick can
				// publish it first and leave the final pass nothing to write.
				b.SetWriteHook(func(string, []byte) error {
					if attempts.Add(1) == tc.cancelAfter {
						cancel()
					}
					return refuse
				})
				written := b.Writes(moqstats.TrackPublisher)
				finalWorkload(s)
				err = s.Shutdown(ctx)
				if !errors.Is(err, refuse) || !errors.Is(err, context.Canceled) {
					t.Fatalf("Shutdown = %v, want the write error and context.Canceled", err)
				}
				after := attempts.Load()
				if tc.cancelAfter > 0 && after < tc.cancelAfter {
					t.Fatalf("%d writes attempted, want the retries that reached %d", after, tc.cancelAfter)
				}
				if !b.Closed() {
					t.Fatal("broadcast not closed after Shutdown")
				}
				if err := s.Flush(); !errors.Is(err, moqstats.ErrClosed) {
					t.Fatalf("Flush after Shutdown = %v, want ErrClosed", err)
				}
				time.Sleep(20 * time.Millisecond) // twenty intervals
				if n := attempts.Load(); n != after {
					t.Fatalf("%d writes attempted after Shutdown returned, want none", n-after)
				}
				if n := b.Writes(moqstats.TrackPublisher); n != written {
					t.Fatalf("%d frames written, want none", n-written)
				}
				if err := s.Shutdown(t.Context()); err != nil {
					t.Fatalf("second Shutdown = %v, want nil", err)
				}
			})
		}
	}
}

// Close retries for CloseTimeout, and a negative CloseTimeout makes one
// attempt, returning its error.
func TestCloseTimeoutBoundsTheRetries(t *testing.T) {
	for _, tc := range []struct {
		timeout time.Duration
		want    error
	}{{30 * time.Millisecond, context.DeadlineExceeded}, {-1, nil}} {
		t.Run(fmt.Sprint(tc.timeout), func(t *testing.T) {
			o := memorigin.New()
			s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour, CloseTimeout: tc.timeout, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := o.Lookup(s.Path())
			finalWorkload(s)
			refuse := errors.New("origin unavailable")
			var passes atomic.Int64
			b.SetWriteHook(func(track string, _ []byte) error {
				if track == moqstats.TrackPublisher {
					passes.Add(1)
				}
				return refuse
			})
			err = s.Close()
			if !errors.Is(err, refuse) {
				t.Fatalf("Close = %v, want the write error", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Close = %v, want it to wrap %v", err, tc.want)
			}
			if tc.want == nil && errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Close = %v with a negative CloseTimeout, want no deadline", err)
			}
			if n := passes.Load(); tc.timeout < 0 && n != 1 {
				t.Fatalf("%d attempts with a negative CloseTimeout, want 1", n)
			}
		})
	}
}

// A Handle taken before Close is as dead after it as one taken after: a
// relay keeps its session's handle for the session's life, and Close may
// come in between. Its sessions and guards are nil, its BroadcastStats
// empty, and nothing is created for what it is asked.
func TestHandleTakenBeforeCloseHandsOutNothingAfter(t *testing.T) {
	o := memorigin.New()
	s, err := moqstats.New(moqstats.Config{Origin: o, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Tier(moqstats.External)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if g := h.Session("r"); g != nil {
		t.Fatalf("Session after Close from a handle taken before = %v, want nil", g)
	}
	if v := h.PublisherBroadcasts(); v != nil {
		t.Fatalf("PublisherBroadcasts after Close = %v, want nil", v)
	}
	bs := h.Broadcast("b")
	if !bs.IsEmpty() {
		t.Fatal("Broadcast after Close from a handle taken before is not empty")
	}
	if g := bs.Publisher(); g != nil {
		t.Fatalf("Publisher guard = %v, want nil", g)
	}
	if g := bs.PublisherTrack("v"); g != nil {
		t.Fatalf("PublisherTrack guard = %v, want nil", g)
	}
	if g := bs.SubscriberFetch("v"); g != nil {
		t.Fatalf("SubscriberFetch guard = %v, want nil", g)
	}
	if n := moqstats.Entries(s); n != 0 {
		t.Fatalf("%d broadcast entries created after Close, want 0", n)
	}
	if _, ok := moqstats.SessionRaw(s, moqstats.External, "r"); ok || moqstats.SessionsHeld(s, moqstats.External) != 0 {
		t.Fatal("a session root created after Close")
	}
}
