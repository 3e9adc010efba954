package memorigin_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/moqstats/moqstats/memorigin"
)

// safety bounds how long a test waits for something that should happen at
// once; it only turns a hang into a failure.
const safety = 5 * time.Second

func publish(t *testing.T, o *memorigin.Origin, path string, tracks ...string) *memorigin.Broadcast {
	t.Helper()
	bc, err := o.Publish(path, tracks)
	if err != nil {
		t.Fatalf("Publish(%q, %q) error = %v, want nil", path, tracks, err)
	}
	b, ok := bc.(*memorigin.Broadcast)
	if !ok {
		t.Fatalf("Publish returned %T, want *memorigin.Broadcast", bc)
	}
	return b
}

func write(t *testing.T, b *memorigin.Broadcast, track, frame string) {
	t.Helper()
	if err := b.WriteFrame(track, []byte(frame)); err != nil {
		t.Fatalf("WriteFrame(%q, %q) error = %v, want nil", track, frame, err)
	}
}

func subscribe(t *testing.T, o *memorigin.Origin, path, track string) *memorigin.Subscription {
	t.Helper()
	s, err := o.Subscribe(path, track)
	if err != nil {
		t.Fatalf("Subscribe(%q, %q) error = %v, want nil", path, track, err)
	}
	t.Cleanup(s.Close)
	return s
}

// next reads one frame, failing the test if none arrives within safety.
func next(t *testing.T, s *memorigin.Subscription) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), safety)
	defer cancel()
	f, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next() error = %v, want a frame", err)
	}
	return string(f)
}

func wantEOF(t *testing.T, s *memorigin.Subscription) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), safety)
	defer cancel()
	f, err := s.Next(ctx)
	if err != io.EOF {
		t.Fatalf("Next() = %q, %v; want io.EOF", f, err)
	}
}

// parkedCtx closes parked the first time Done is called. Next and
// WaitAnnounced call Done only when they have found nothing to return and
// are about to block, so a receive from parked means the call is waiting.
// If that ever stops being true the tests using it get weaker, not flaky.
type parkedCtx struct {
	context.Context
	once   sync.Once
	parked chan struct{}
}

func newParkedCtx(ctx context.Context) *parkedCtx {
	return &parkedCtx{Context: ctx, parked: make(chan struct{})}
}

func (c *parkedCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.parked) })
	return c.Context.Done()
}

func waitParked(t *testing.T, c *parkedCtx) {
	t.Helper()
	select {
	case <-c.parked:
	case <-time.After(safety):
		t.Fatal("call did not block within the safety timeout")
	}
}

func TestPublishAnnouncesPathAndRejectsDuplicate(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "stats", "a.json", "b.json")

	if got, want := b.Path(), "stats"; got != want {
		t.Errorf("Path() = %q, want %q", got, want)
	}
	if got, want := b.Tracks(), []string{"a.json", "b.json"}; !slices.Equal(got, want) {
		t.Errorf("Tracks() = %q, want %q", got, want)
	}
	if got, ok := o.Lookup("stats"); !ok || got != b {
		t.Errorf("Lookup(stats) = %p, %v; want %p, true", got, ok, b)
	}
	if b.Closed() {
		t.Errorf("Closed() = true on a fresh broadcast, want false")
	}

	_, err := o.Publish("stats", []string{"c.json"})
	if !errors.Is(err, memorigin.ErrDuplicate) {
		t.Errorf("second Publish(stats) error = %v, want ErrDuplicate", err)
	}
	if got, ok := o.Lookup("stats"); !ok || got != b {
		t.Errorf("after rejected Publish, Lookup(stats) = %p, %v; want the original %p, true", got, ok, b)
	}
}

func TestTracksReturnsCopy(t *testing.T) {
	o := memorigin.New()
	in := []string{"a", "b"}
	b := publish(t, o, "p", in...)
	in[0] = "changed"
	got := b.Tracks()
	got[1] = "changed"
	if got, want := b.Tracks(), []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("Tracks() after mutating the Publish argument and a previous result = %q, want %q", got, want)
	}
}

func TestRepublishAfterCloseIsNewBroadcast(t *testing.T) {
	o := memorigin.New()
	old := publish(t, o, "stats", "t")
	write(t, old, "t", "old")
	if err := old.Close(); err != nil {
		t.Fatalf("Close() error = %v, want nil", err)
	}
	if !old.Closed() {
		t.Errorf("Closed() = false after Close, want true")
	}
	if _, ok := o.Lookup("stats"); ok {
		t.Errorf("Lookup(stats) found a broadcast after Close, want none")
	}
	if got := o.Paths(); len(got) != 0 {
		t.Errorf("Paths() after Close = %q, want []", got)
	}

	nb := publish(t, o, "stats", "t")
	if nb == old {
		t.Fatalf("republished broadcast is the closed one, want a new *Broadcast")
	}
	if got, ok := o.Lookup("stats"); !ok || got != nb {
		t.Errorf("Lookup(stats) = %p, %v; want the new %p, true", got, ok, nb)
	}
	if f, ok := o.Latest("stats", "t"); ok {
		t.Errorf("Latest on the republished broadcast = %q, true; want none (state must not carry over)", f)
	}
	if f, ok := old.Latest("t"); !ok || string(f) != "old" {
		t.Errorf("closed broadcast Latest(t) = %q, %v; want \"old\", true", f, ok)
	}
}

func TestSecondCloseReturnsErrClosed(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	if err := b.Close(); err != nil {
		t.Fatalf("first Close() error = %v, want nil", err)
	}
	// Republish so a buggy second Close could unannounce the new one.
	nb := publish(t, o, "p", "t")
	if err := b.Close(); !errors.Is(err, memorigin.ErrClosed) {
		t.Errorf("second Close() error = %v, want ErrClosed", err)
	}
	if got, ok := o.Lookup("p"); !ok || got != nb {
		t.Errorf("after the old broadcast's second Close, Lookup(p) = %p, %v; want the new %p, true", got, ok, nb)
	}
}

func TestPublishRejectsBadTrackLists(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tracks []string
	}{
		{"nil", nil},
		{"empty", []string{}},
		{"empty name", []string{"a", ""}},
		{"duplicate name", []string{"a", "b", "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := memorigin.New()
			b, err := o.Publish("p", tc.tracks)
			if err == nil {
				t.Fatalf("Publish(p, %q) = %v, nil; want an error", tc.tracks, b)
			}
			if errors.Is(err, memorigin.ErrDuplicate) {
				t.Errorf("Publish(p, %q) error = %v, want a track-list error, not ErrDuplicate", tc.tracks, err)
			}
			if got := o.Paths(); len(got) != 0 {
				t.Errorf("Paths() after rejected Publish = %q, want []", got)
			}
		})
	}
}

func TestWriteToUnknownTrackFails(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	err := b.WriteFrame("other", []byte("x"))
	if !errors.Is(err, memorigin.ErrUnknownTrack) {
		t.Errorf("WriteFrame(other) error = %v, want ErrUnknownTrack", err)
	}
	if got := b.Writes("other"); got != 0 {
		t.Errorf("Writes(other) = %d, want 0", got)
	}
	if got := b.Writes("t"); got != 0 {
		t.Errorf("Writes(t) = %d, want 0", got)
	}
}

func TestWriteAfterCloseFails(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	write(t, b, "t", "1")
	if err := b.Close(); err != nil {
		t.Fatalf("Close() error = %v, want nil", err)
	}
	if err := b.WriteFrame("t", []byte("2")); !errors.Is(err, memorigin.ErrClosed) {
		t.Errorf("WriteFrame after Close error = %v, want ErrClosed", err)
	}
	if got := b.Writes("t"); got != 1 {
		t.Errorf("Writes(t) = %d, want 1", got)
	}
	if f, ok := b.Latest("t"); !ok || string(f) != "1" {
		t.Errorf("Latest(t) = %q, %v; want \"1\", true", f, ok)
	}
}

func TestSubscribeUnknownPathOrTrackIsNotFound(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	if _, err := o.Subscribe("nope", "t"); !errors.Is(err, memorigin.ErrNotFound) {
		t.Errorf("Subscribe(nope, t) error = %v, want ErrNotFound", err)
	}
	if _, err := o.Subscribe("p", "nope"); !errors.Is(err, memorigin.ErrNotFound) {
		t.Errorf("Subscribe(p, nope) error = %v, want ErrNotFound", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Subscribe("p", "t"); !errors.Is(err, memorigin.ErrNotFound) {
		t.Errorf("Subscribe to a closed path error = %v, want ErrNotFound", err)
	}
}

func TestLatestIsLastWrittenFramePerTrack(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "a", "b")
	if f, ok := o.Latest("p", "a"); ok {
		t.Errorf("Latest(p, a) before any write = %q, true; want false", f)
	}
	write(t, b, "a", "a1")
	write(t, b, "a", "a2")
	write(t, b, "b", "b1")
	for _, tc := range []struct{ track, want string }{{"a", "a2"}, {"b", "b1"}} {
		if f, ok := o.Latest("p", tc.track); !ok || string(f) != tc.want {
			t.Errorf("Origin.Latest(p, %s) = %q, %v; want %q, true", tc.track, f, ok, tc.want)
		}
		if f, ok := b.Latest(tc.track); !ok || string(f) != tc.want {
			t.Errorf("Broadcast.Latest(%s) = %q, %v; want %q, true", tc.track, f, ok, tc.want)
		}
	}
	if got, want := b.Writes("a"), 2; got != want {
		t.Errorf("Writes(a) = %d, want %d", got, want)
	}
	if f, ok := o.Latest("nope", "a"); ok {
		t.Errorf("Latest(nope, a) = %q, true; want false", f)
	}
	if f, ok := o.Latest("p", "nope"); ok {
		t.Errorf("Latest(p, nope) = %q, true; want false", f)
	}
}

func TestEmptyFrameIsStoredAndDelivered(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	s := subscribe(t, o, "p", "t")
	write(t, b, "t", "")
	if f, ok := b.Latest("t"); !ok || len(f) != 0 {
		t.Errorf("Latest(t) = %q, %v; want \"\", true", f, ok)
	}
	if got := next(t, s); got != "" {
		t.Errorf("Next() = %q, want \"\"", got)
	}
}

func TestSubscriberSeesLatestThenEachNewFrame(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t", "other")
	write(t, b, "t", "1")
	write(t, b, "t", "2")
	s := subscribe(t, o, "p", "t")
	write(t, b, "other", "x") // another track must not leak in
	write(t, b, "t", "3")
	write(t, b, "t", "4")
	for _, want := range []string{"2", "3", "4"} {
		if got := next(t, s); got != want {
			t.Fatalf("Next() = %q, want %q", got, want)
		}
	}
	if f, ok := s.TryNext(); ok {
		t.Errorf("TryNext() after reading everything = %q, true; want false", f)
	}
}

func TestSubscriberWithoutLatestSeesOnlyNewFrames(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	s := subscribe(t, o, "p", "t")
	if f, ok := s.TryNext(); ok {
		t.Fatalf("TryNext() on a never-written track = %q, true; want false", f)
	}
	write(t, b, "t", "1")
	if f, ok := s.TryNext(); !ok || string(f) != "1" {
		t.Errorf("TryNext() = %q, %v; want \"1\", true", f, ok)
	}
}

func TestNextBlocksUntilWrite(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	s := subscribe(t, o, "p", "t")
	ctx := newParkedCtx(t.Context())
	type result struct {
		f   []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		f, err := s.Next(ctx)
		got <- result{f, err}
	}()
	waitParked(t, ctx)
	write(t, b, "t", "woke")
	select {
	case r := <-got:
		if r.err != nil || string(r.f) != "woke" {
			t.Errorf("Next() = %q, %v; want \"woke\", nil", r.f, r.err)
		}
	case <-time.After(safety):
		t.Fatal("Next() still blocked after a write")
	}
}

// TestNoFrameSkippedUnderConcurrentWriter checks the package invariant:
// subscribers joining while a writer runs each see a contiguous run of
// frames, starting no earlier than the latest frame when they joined and
// ending at the last frame written.
func TestNoFrameSkippedUnderConcurrentWriter(t *testing.T) {
	const frames = 5000
	const subscribers = 8
	const step = frames / subscribers
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	write(t, b, "t", "0")

	// join[k] is closed once frame k*step is written, so subscriber k
	// subscribes while later frames are being written.
	join := make([]chan struct{}, subscribers)
	for k := range join {
		join[k] = make(chan struct{})
	}
	var subscribed, done sync.WaitGroup
	subscribed.Add(subscribers)
	errs := make(chan string, subscribers)
	for k := range subscribers {
		done.Go(func() {
			<-join[k]
			s, err := o.Subscribe("p", "t")
			subscribed.Done()
			if err != nil {
				errs <- fmt.Sprintf("subscriber %d: Subscribe error = %v, want nil", k, err)
				return
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), safety)
			defer cancel()
			prev := -1
			for {
				f, err := s.Next(ctx)
				if err == io.EOF {
					break
				}
				if err != nil {
					errs <- fmt.Sprintf("subscriber %d: Next error = %v after frame %d, want a frame or io.EOF", k, err, prev)
					return
				}
				n, err := strconv.Atoi(string(f))
				if err != nil {
					errs <- fmt.Sprintf("subscriber %d: got frame %q, want a number", k, f)
					return
				}
				if prev < 0 && n < k*step {
					errs <- fmt.Sprintf("subscriber %d: first frame %d, want >= %d (latest at join)", k, n, k*step)
					return
				}
				if prev >= 0 && n != prev+1 {
					errs <- fmt.Sprintf("subscriber %d: got frame %d after %d, want %d", k, n, prev, prev+1)
					return
				}
				prev = n
			}
			if prev != frames-1 {
				errs <- fmt.Sprintf("subscriber %d: last frame before EOF = %d, want %d", k, prev, frames-1)
			}
		})
	}
	close(join[0])
	for i := 1; i < frames; i++ {
		if err := b.WriteFrame("t", []byte(strconv.Itoa(i))); err != nil {
			t.Errorf("WriteFrame(%d) error = %v, want nil", i, err)
		}
		if i%step == 0 && i/step < subscribers {
			close(join[i/step])
		}
	}
	subscribed.Wait() // a Close before a Subscribe would make it ErrNotFound
	if err := b.Close(); err != nil {
		t.Errorf("Close() error = %v, want nil", err)
	}
	done.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got, want := b.Writes("t"), frames; got != want {
		t.Errorf("Writes(t) = %d, want %d", got, want)
	}
}

// TestConcurrentNextOnOneSubscriptionLosesNothing: several readers sharing
// one subscription together get every frame exactly once.
func TestConcurrentNextOnOneSubscriptionLosesNothing(t *testing.T) {
	const frames = 2000
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	s := subscribe(t, o, "p", "t")

	var mu sync.Mutex
	seen := make(map[string]int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), safety)
			defer cancel()
			for {
				f, err := s.Next(ctx)
				if err != nil {
					return // io.EOF at the end; a timeout shows up as missing frames
				}
				mu.Lock()
				seen[string(f)]++
				mu.Unlock()
			}
		})
	}
	for i := range frames {
		write(t, b, "t", strconv.Itoa(i))
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := len(seen); got != frames {
		t.Errorf("distinct frames read = %d, want %d", got, frames)
	}
	for f, n := range seen {
		if n != 1 {
			t.Errorf("frame %q read %d times, want 1", f, n)
		}
	}
}

// TestConcurrentNextWakesEveryReader: when two frames arrive while two
// readers are blocked on one subscription, both readers get one. A single
// wake-up for both frames would leave the second reader stranded. The race
// window is small, so it is tried many times.
func TestConcurrentNextWakesEveryReader(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	for round := range 200 {
		s := subscribe(t, o, "p", "t")
		if round > 0 {
			s.TryNext() // drop the latest frame from the previous round
		}
		got := make(chan string, 2)
		var ctxs []*parkedCtx
		for range 2 {
			ctx := newParkedCtx(t.Context())
			ctxs = append(ctxs, ctx)
			go func() {
				f, err := s.Next(ctx)
				if err != nil {
					got <- "error: " + err.Error()
					return
				}
				got <- string(f)
			}()
		}
		for _, ctx := range ctxs {
			waitParked(t, ctx)
		}
		write(t, b, "t", "x")
		write(t, b, "t", "y")
		var frames []string
		for range 2 {
			select {
			case f := <-got:
				frames = append(frames, f)
			case <-time.After(safety):
				t.Fatalf("round %d: readers got %q, want both of [x y]", round, frames)
			}
		}
		slices.Sort(frames)
		if want := []string{"x", "y"}; !slices.Equal(frames, want) {
			t.Fatalf("round %d: readers got %q, want %q", round, frames, want)
		}
		s.Close()
	}
}

func TestFrameIsCopied(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	s1 := subscribe(t, o, "p", "t")
	s2 := subscribe(t, o, "p", "t")

	buf := []byte("abc")
	if err := b.WriteFrame("t", buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XYZ") // the caller reuses its buffer

	if f, ok := b.Latest("t"); !ok || string(f) != "abc" {
		t.Errorf("Latest(t) after mutating the written slice = %q, %v; want \"abc\", true", f, ok)
	}
	l, _ := b.Latest("t")
	copy(l, "LLL")
	f1 := []byte(next(t, s1))
	if string(f1) != "abc" {
		t.Errorf("first subscriber Next() = %q, want \"abc\"", f1)
	}
	if got, _ := s2.TryNext(); string(got) != "abc" {
		t.Errorf("second subscriber got %q after others mutated their copies, want \"abc\"", got)
	}
	if f, _ := o.Latest("p", "t"); string(f) != "abc" {
		t.Errorf("Origin.Latest(p, t) after mutating a returned copy = %q, want \"abc\"", f)
	}
}

func TestSubscriberGetsOwnCopy(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	s1 := subscribe(t, o, "p", "t")
	s2 := subscribe(t, o, "p", "t")
	write(t, b, "t", "abc")
	f1, _ := s1.TryNext()
	copy(f1, "XYZ")
	if f2, _ := s2.TryNext(); string(f2) != "abc" {
		t.Errorf("second subscriber got %q after the first mutated its frame, want \"abc\"", f2)
	}
	if f, _ := b.Latest("t"); string(f) != "abc" {
		t.Errorf("Latest(t) after a subscriber mutated its frame = %q, want \"abc\"", f)
	}
}

func TestWriteHookFailureDropsFrame(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	write(t, b, "t", "kept")
	s := subscribe(t, o, "p", "t")
	if got := next(t, s); got != "kept" {
		t.Fatalf("Next() = %q, want \"kept\"", got)
	}

	injected := errors.New("injected")
	var hookSaw []string
	b.SetWriteHook(func(track string, frame []byte) error {
		hookSaw = append(hookSaw, track+"="+string(frame))
		return injected
	})
	if err := b.WriteFrame("t", []byte("dropped")); !errors.Is(err, injected) {
		t.Fatalf("WriteFrame with failing hook error = %v, want %v", err, injected)
	}
	if got, want := hookSaw, []string{"t=dropped"}; !slices.Equal(got, want) {
		t.Errorf("hook saw %q, want %q", got, want)
	}
	if got, want := b.Writes("t"), 1; got != want {
		t.Errorf("Writes(t) after a hook failure = %d, want %d", got, want)
	}
	if f, _ := b.Latest("t"); string(f) != "kept" {
		t.Errorf("Latest(t) after a hook failure = %q, want \"kept\"", f)
	}
	if f, ok := s.TryNext(); ok {
		t.Errorf("subscriber got %q after a hook failure, want nothing", f)
	}

	b.SetWriteHook(func(string, []byte) error { return nil })
	write(t, b, "t", "passed")
	b.SetWriteHook(nil)
	write(t, b, "t", "unhooked")
	if got, want := b.Writes("t"), 3; got != want {
		t.Errorf("Writes(t) after two successful writes = %d, want %d", got, want)
	}
	for _, want := range []string{"passed", "unhooked"} {
		if got := next(t, s); got != want {
			t.Errorf("Next() = %q, want %q", got, want)
		}
	}
}

func TestWriteHookMayCallBroadcast(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	write(t, b, "t", "first")
	var sawWrites int
	var sawLatest string
	b.SetWriteHook(func(track string, _ []byte) error {
		sawWrites = b.Writes(track)
		f, _ := b.Latest(track)
		sawLatest = string(f)
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- b.WriteFrame("t", []byte("second")) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WriteFrame error = %v, want nil", err)
		}
	case <-time.After(safety):
		t.Fatal("WriteFrame deadlocked when its hook called back into the broadcast")
	}
	if sawWrites != 1 || sawLatest != "first" {
		t.Errorf("hook saw Writes = %d, Latest = %q; want 1, \"first\"", sawWrites, sawLatest)
	}
}

func TestCloseDeliversEOFAfterDraining(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	write(t, b, "t", "1")
	s := subscribe(t, o, "p", "t")
	write(t, b, "t", "2")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1", "2"} {
		if got := next(t, s); got != want {
			t.Fatalf("Next() after Close = %q, want queued frame %q", got, want)
		}
	}
	wantEOF(t, s)
	wantEOF(t, s) // stays at EOF
	if f, ok := s.TryNext(); ok {
		t.Errorf("TryNext() at EOF = %q, true; want false", f)
	}
}

func TestCloseWakesBlockedNext(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	s := subscribe(t, o, "p", "t")
	ctx := newParkedCtx(t.Context())
	got := make(chan error, 1)
	go func() {
		_, err := s.Next(ctx)
		got <- err
	}()
	waitParked(t, ctx)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != io.EOF {
			t.Errorf("blocked Next() after Close error = %v, want io.EOF", err)
		}
	case <-time.After(safety):
		t.Fatal("blocked Next() not woken by Close")
	}
}

func TestSubscriptionCloseEndsNext(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	s := subscribe(t, o, "p", "t")
	write(t, b, "t", "queued")
	s.Close()
	wantEOF(t, s) // queued frames are dropped on unsubscribe
	s.Close()     // idempotent
	write(t, b, "t", "after")
	wantEOF(t, s)

	// A Next blocked on another subscription is woken by its Close.
	s2 := subscribe(t, o, "p", "t")
	if got := next(t, s2); got != "after" {
		t.Fatalf("Next() = %q, want \"after\"", got)
	}
	ctx := newParkedCtx(t.Context())
	got := make(chan error, 1)
	go func() {
		_, err := s2.Next(ctx)
		got <- err
	}()
	waitParked(t, ctx)
	s2.Close()
	select {
	case err := <-got:
		if err != io.EOF {
			t.Errorf("blocked Next() after Subscription.Close error = %v, want io.EOF", err)
		}
	case <-time.After(safety):
		t.Fatal("blocked Next() not woken by Subscription.Close")
	}
	if err := b.Close(); err != nil {
		t.Errorf("Broadcast.Close() after its subscriptions closed error = %v, want nil", err)
	}
}

func TestSubscriptionBelongsToItsBroadcast(t *testing.T) {
	o := memorigin.New()
	old := publish(t, o, "p", "t")
	s := subscribe(t, o, "p", "t")
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	nb := publish(t, o, "p", "t")
	write(t, nb, "t", "new")
	wantEOF(t, s)
}

func TestNextReturnsOnContextCancel(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	s := subscribe(t, o, "p", "t")

	parent, cancel := context.WithCancel(t.Context())
	ctx := newParkedCtx(parent)
	got := make(chan error, 1)
	go func() {
		_, err := s.Next(ctx)
		got <- err
	}()
	waitParked(t, ctx)
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Next() after cancel error = %v, want context.Canceled", err)
		}
	case <-time.After(safety):
		t.Fatal("Next() did not return after its context was cancelled")
	}

	// An already-cancelled context wins even over a queued frame, and the
	// frame stays queued for the next call.
	write(t, b, "t", "queued")
	if f, err := s.Next(parent); !errors.Is(err, context.Canceled) {
		t.Errorf("Next(cancelled ctx) = %q, %v; want context.Canceled", f, err)
	}
	if got := next(t, s); got != "queued" {
		t.Errorf("Next() after a cancelled call = %q, want \"queued\"", got)
	}
}

func TestWaitAnnouncedAfterPublishReturnsAtOnce(t *testing.T) {
	o := memorigin.New()
	b := publish(t, o, "p", "t")
	ctx, cancel := context.WithTimeout(t.Context(), safety)
	defer cancel()
	got, err := o.WaitAnnounced(ctx, "p")
	if err != nil || got != b {
		t.Errorf("WaitAnnounced(p) = %p, %v; want %p, nil", got, err, b)
	}
}

func TestWaitAnnouncedBeforePublishBlocksUntilPublish(t *testing.T) {
	o := memorigin.New()
	ctx := newParkedCtx(t.Context())
	type result struct {
		b   *memorigin.Broadcast
		err error
	}
	got := make(chan result, 1)
	go func() {
		b, err := o.WaitAnnounced(ctx, "p")
		got <- result{b, err}
	}()
	waitParked(t, ctx)
	publish(t, o, "other", "t") // must not satisfy the wait
	select {
	case r := <-got:
		t.Fatalf("WaitAnnounced(p) returned %p, %v after publishing another path; want it still blocked", r.b, r.err)
	default:
	}
	b := publish(t, o, "p", "t")
	select {
	case r := <-got:
		if r.err != nil || r.b != b {
			t.Errorf("WaitAnnounced(p) = %p, %v; want %p, nil", r.b, r.err, b)
		}
	case <-time.After(safety):
		t.Fatal("WaitAnnounced(p) still blocked after Publish(p)")
	}
}

func TestWaitAnnouncedReturnsOnContextCancel(t *testing.T) {
	o := memorigin.New()
	parent, cancel := context.WithCancel(t.Context())
	ctx := newParkedCtx(parent)
	got := make(chan error, 1)
	go func() {
		_, err := o.WaitAnnounced(ctx, "p")
		got <- err
	}()
	waitParked(t, ctx)
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("WaitAnnounced after cancel error = %v, want context.Canceled", err)
		}
	case <-time.After(safety):
		t.Fatal("WaitAnnounced did not return after its context was cancelled")
	}
}

func TestPathsSorted(t *testing.T) {
	o := memorigin.New()
	if got := o.Paths(); len(got) != 0 {
		t.Errorf("Paths() on a new Origin = %q, want []", got)
	}
	for _, p := range []string{"c", "a", "b/x", "b"} {
		publish(t, o, p, "t")
	}
	if got, want := o.Paths(), []string{"a", "b", "b/x", "c"}; !slices.Equal(got, want) {
		t.Errorf("Paths() = %q, want %q", got, want)
	}
	b, _ := o.Lookup("b")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := o.Paths(), []string{"a", "b/x", "c"}; !slices.Equal(got, want) {
		t.Errorf("Paths() after closing b = %q, want %q", got, want)
	}
}

func TestZeroOriginIsUsable(t *testing.T) {
	var o memorigin.Origin
	b := publish(t, &o, "p", "t")
	write(t, b, "t", "x")
	if f, ok := o.Latest("p", "t"); !ok || !bytes.Equal(f, []byte("x")) {
		t.Errorf("Latest(p, t) on a zero Origin = %q, %v; want \"x\", true", f, ok)
	}
}

// TestConcurrentUseIsRaceFree exercises every method at once; it asserts
// little itself and exists for go test -race.
func TestConcurrentUseIsRaceFree(t *testing.T) {
	o := memorigin.New()
	var wg sync.WaitGroup
	for w := range 4 {
		path := "p" + strconv.Itoa(w)
		// The reader stops when the writer is done with the path.
		ctx, cancel := context.WithTimeout(context.Background(), safety)
		wg.Go(func() {
			defer cancel()
			for round := range 20 {
				bc, err := o.Publish(path, []string{"a", "b"})
				if err != nil {
					t.Errorf("Publish(%q) round %d error = %v, want nil", path, round, err)
					return
				}
				b := bc.(*memorigin.Broadcast)
				b.SetWriteHook(func(string, []byte) error { return nil })
				for i := range 20 {
					_ = b.WriteFrame("a", []byte(strconv.Itoa(i)))
					_ = b.WriteFrame("b", []byte(strconv.Itoa(i)))
				}
				if err := b.Close(); err != nil {
					t.Errorf("Close(%q) error = %v, want nil", path, err)
				}
			}
		})
		wg.Go(func() {
			for {
				b, err := o.WaitAnnounced(ctx, path)
				if err != nil {
					return
				}
				_, _ = b.Latest("a")
				_ = b.Writes("b")
				_ = b.Tracks()
				_ = b.Closed()
				_ = o.Paths()
				_, _ = o.Latest(path, "a")
				s, err := o.Subscribe(path, "a")
				if err != nil {
					continue // closed in between
				}
				for {
					if _, err := s.Next(ctx); err != nil {
						break
					}
					if _, ok := s.TryNext(); !ok {
						s.Close()
					}
				}
			}
		})
	}
	wg.Wait()
}

// WriteFrame starts a group and AppendFrame extends it; Group reads the
// current one; a late subscriber starts at the current group's first
// frame and sees each frame's group and index.
func TestGroupsWriteAppendAndLateSubscribers(t *testing.T) {
	o := memorigin.New()
	bc, err := o.Publish("p", []string{"t.z"})
	if err != nil {
		t.Fatal(err)
	}
	b := bc.(*memorigin.Broadcast)
	if err := b.AppendFrame("t.z", []byte("x")); !errors.Is(err, memorigin.ErrNoGroup) {
		t.Fatalf("AppendFrame before any group = %v, want memorigin.ErrNoGroup", err)
	}
	early, err := o.Subscribe("p", "t.z")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		data  string
		group bool
	}{{"s1", true}, {"d1", false}, {"s2", true}, {"d2", false}, {"d3", false}} {
		var err error
		if w.group {
			err = b.WriteFrame("t.z", []byte(w.data))
		} else {
			err = b.AppendFrame("t.z", []byte(w.data))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	seq, frames, ok := b.Group("t.z")
	if !ok || seq != 2 || len(frames) != 3 || string(frames[0]) != "s2" || string(frames[2]) != "d3" {
		t.Fatalf("Group = %d %q %v, want group 2 holding s2 d2 d3", seq, frames, ok)
	}
	if f, _ := b.Latest("t.z"); string(f) != "d3" {
		t.Fatalf("Latest = %q, want the last frame of the group", f)
	}
	late, err := o.Subscribe("p", "t.z")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		f, ok := late.TryNextFrame()
		if !ok {
			break
		}
		got = append(got, fmt.Sprintf("%d.%d:%s", f.Group, f.Index, f.Data))
	}
	if want := []string{"2.0:s2", "2.1:d2", "2.2:d3"}; !slices.Equal(got, want) {
		t.Fatalf("late subscriber read %q, want the current group from its start %q", got, want)
	}
	got = got[:0]
	for {
		f, ok := early.TryNextFrame()
		if !ok {
			break
		}
		got = append(got, fmt.Sprintf("%d.%d:%s", f.Group, f.Index, f.Data))
	}
	if want := []string{"1.0:s1", "1.1:d1", "2.0:s2", "2.1:d2", "2.2:d3"}; !slices.Equal(got, want) {
		t.Fatalf("early subscriber read %q, want every frame %q", got, want)
	}
	if n := b.Writes("t.z"); n != 5 {
		t.Fatalf("Writes = %d, want 5 (appends count)", n)
	}
	b.SetWriteHook(func(string, []byte) error { return errors.New("down") })
	if err := b.AppendFrame("t.z", []byte("x")); err == nil || err.Error() != "down" {
		t.Fatalf("AppendFrame with a failing hook = %v, want the hook's error", err)
	}
}
