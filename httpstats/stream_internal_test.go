package httpstats

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// attach registers a stream on track name as subscribe does, without
// HTTP, and takes its initial events.
func attach(t *testing.T, o *Origin, name string, limit int) (*stream, []event) {
	t.Helper()
	o.opts.StreamBuffer = limit
	s, code, msg := o.subscribe(name, position{}, false)
	if s == nil {
		t.Fatalf("subscribe(%q) = %d %s, want a stream", name, code, msg)
	}
	t.Cleanup(func() { o.unsubscribe(s) })
	evs, _ := s.take(nil)
	return s, evs
}

// ids renders events as "G.F=frame".
func ids(evs []event) string {
	out := ""
	for i, ev := range evs {
		if i > 0 {
			out += " "
		}
		out += strconv.FormatUint(ev.group, 10) + "." + strconv.Itoa(ev.index) + "=" + string(ev.frame)
	}
	return out
}

func newTestOrigin(t *testing.T, tracks ...string) (*Origin, *Broadcast) {
	t.Helper()
	o, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	o.now = func() time.Time { return time.UnixMilli(0) } // groups from 0
	bc, err := o.Publish("p", tracks)
	if err != nil {
		t.Fatal(err)
	}
	return o, bc.(*Broadcast)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestQueueWithinLimitLosesNothing: a stream that is never more than its
// limit behind gets every frame in order.
func TestQueueWithinLimitLosesNothing(t *testing.T) {
	o, b := newTestOrigin(t, "t.json")
	s, _ := attach(t, o, "t.json", 3)
	for round := range 3 {
		for i := range 3 {
			must(t, b.WriteFrame("t.json", []byte(fmt.Sprint(round, i))))
		}
		evs, _ := s.take(nil)
		if len(evs) != 3 || s.resyncs != 0 {
			t.Fatalf("round %d: took %s with %d resyncs, want 3 frames and none", round, ids(evs), s.resyncs)
		}
	}
}

// TestOverflowOnPlainTrackResyncsToLatest: a full queue is dropped and
// the stream then gets the latest frame only.
func TestOverflowOnPlainTrackResyncsToLatest(t *testing.T) {
	o, b := newTestOrigin(t, "t.json")
	must(t, b.WriteFrame("t.json", []byte("a")))
	s, evs := attach(t, o, "t.json", 2)
	if got, want := ids(evs), "0.0=a"; got != want {
		t.Fatalf("initial events %s, want %s", got, want)
	}
	for _, f := range []string{"b", "c", "d", "e", "f"} {
		must(t, b.WriteFrame("t.json", []byte(f)))
	}
	evs, _ = s.take(nil)
	if got, want := ids(evs), "5.0=f"; got != want || s.resyncs != 1 {
		t.Errorf("after overflow took %s (%d resyncs), want %s (1 resync)", got, s.resyncs, want)
	}
	if len(s.queue) != 0 || s.resync {
		t.Errorf("after the resync: queue %d, resync %v; want empty and false", len(s.queue), s.resync)
	}
	must(t, b.WriteFrame("t.json", []byte("g")))
	if evs, _ := s.take(nil); ids(evs) != "6.0=g" {
		t.Errorf("after the resync took %s, want 6.0=g: queued again", ids(evs))
	}
}

// TestOverflowOnGroupTrackContinuesTheGroup: a full queue on a ".z"
// track, while the client's group is still current, resumes after the
// client's last frame: no delta is lost and none repeated.
func TestOverflowOnGroupTrackContinuesTheGroup(t *testing.T) {
	o, b := newTestOrigin(t, "t.z")
	must(t, b.WriteFrame("t.z", []byte("s")))
	must(t, b.AppendFrame("t.z", []byte("d1")))
	s, evs := attach(t, o, "t.z", 2)
	if got, want := ids(evs), "0.0=s 0.1=d1"; got != want {
		t.Fatalf("initial events %s, want %s", got, want)
	}
	for _, f := range []string{"d2", "d3", "d4"} {
		must(t, b.AppendFrame("t.z", []byte(f)))
	}
	evs, _ = s.take(nil)
	if got, want := ids(evs), "0.2=d2 0.3=d3 0.4=d4"; got != want || s.resyncs != 1 {
		t.Errorf("after overflow in the same group took %s (%d resyncs), want %s (1 resync)", got, s.resyncs, want)
	}
}

// TestOverflowOnGroupTrackRestartsAtNewestGroup: a full queue on a ".z"
// track after the group changed restarts at frame 0 of the newest group,
// since the missed deltas cannot be skipped.
func TestOverflowOnGroupTrackRestartsAtNewestGroup(t *testing.T) {
	o, b := newTestOrigin(t, "t.z")
	must(t, b.WriteFrame("t.z", []byte("s")))
	s, _ := attach(t, o, "t.z", 2)
	must(t, b.AppendFrame("t.z", []byte("d1")))
	must(t, b.WriteFrame("t.z", []byte("S")))
	must(t, b.AppendFrame("t.z", []byte("D1")))
	must(t, b.WriteFrame("t.z", []byte("Z")))
	must(t, b.AppendFrame("t.z", []byte("Z1")))
	evs, _ := s.take(nil)
	if got, want := ids(evs), "2.0=Z 2.1=Z1"; got != want || s.resyncs != 1 {
		t.Errorf("after overflow across groups took %s (%d resyncs), want %s (1 resync)", got, s.resyncs, want)
	}
}

// TestCloseEndsAfterQueue: take reports the end together with the last
// queued frames.
func TestCloseEndsAfterQueue(t *testing.T) {
	o, b := newTestOrigin(t, "t.json")
	s, _ := attach(t, o, "t.json", 4)
	must(t, b.WriteFrame("t.json", []byte("a")))
	must(t, b.Close())
	evs, ended := s.take(nil)
	if ids(evs) != "0.0=a" || !ended {
		t.Errorf("take after Close = %s, %v; want 0.0=a, true", ids(evs), ended)
	}
}

// TestETagCarriesIncarnation: two broadcasts whose groups had the same
// numbers (which nextGroup prevents within one Origin) still get
// different ETags, from the incarnation.
func TestETagCarriesIncarnation(t *testing.T) {
	o, b := newTestOrigin(t, "t.json")
	must(t, b.WriteFrame("t.json", []byte("a")))
	v1, _, _ := o.lookup("t.json")
	must(t, b.Close())
	o.nextGroup = 0
	bc, err := o.Publish("p", []string{"t.json"})
	must(t, err)
	must(t, bc.WriteFrame("t.json", []byte("b")))
	v2, _, _ := o.lookup("t.json")
	if v1.group != v2.group || v1.etag() == v2.etag() {
		t.Errorf("ETags %s (group %d) and %s (group %d), want the same group and different ETags", v1.etag(), v1.group, v2.etag(), v2.group)
	}
}

// heldBy sums what the streams of b hold, as the streams count it.
func heldBy(b *Broadcast) (sum int, per map[*stream]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	per = map[*stream]int{}
	for _, t := range b.tracks {
		for s := range t.streams {
			per[s] = s.queued + s.inflight
			sum += s.queued + s.inflight
		}
	}
	return sum, per
}

// The frames streams hold are capped in bytes, per stream and in total,
// whatever the frame count: a stream past StreamBytes resyncs, and past
// QueueBytes the stream holding the most queued bytes (the reader
// furthest behind) drops its queue first, while the others keep theirs.
func TestSlowStreamsHoldBoundedBytes(t *testing.T) {
	o, b := newTestOrigin(t, "t.json")
	o.opts.StreamBytes, o.opts.QueueBytes = 1000, 1500
	t.Cleanup(func() { // after every stream left: cleanups run last-in first-out
		if n := o.held.Load(); n != 0 {
			t.Errorf("the Origin counts %d bytes held once every stream left, want 0", n)
		}
	})
	frame := func(i int) []byte { return fmt.Appendf(make([]byte, 0, 100), "%0100d", i)[:100] }
	must(t, b.WriteFrame("t.json", frame(0)))
	early, _ := attach(t, o, "t.json", 64)
	// The early reader falls 9 frames behind: 900 bytes, within both caps.
	for i := 1; i <= 9; i++ {
		must(t, b.WriteFrame("t.json", frame(i)))
	}
	late, _ := attach(t, o, "t.json", 64)
	for i := 10; i <= 14; i++ {
		must(t, b.WriteFrame("t.json", frame(i)))
		sum, per := heldBy(b)
		if sum > o.opts.QueueBytes || int(o.held.Load()) != sum {
			t.Fatalf("after frame %d: streams hold %d bytes, Origin counts %d, want equal and at most QueueBytes %d", i, sum, o.held.Load(), o.opts.QueueBytes)
		}
		for _, n := range per {
			if n > o.opts.StreamBytes {
				t.Fatalf("after frame %d: a stream holds %d bytes, want at most StreamBytes %d", i, n, o.opts.StreamBytes)
			}
		}
	}
	// Frame 10 fits for early (1000 bytes: its cap) and late (100);
	// frame 11 takes early past StreamBytes (it resyncs); frames 12-14 go
	// to late. Then early has nothing queued and late 500.
	if early.resyncs != 1 || late.resyncs != 0 {
		t.Fatalf("resyncs: early %d, late %d; want 1 and 0", early.resyncs, late.resyncs)
	}
	// A third stream far behind and a total over QueueBytes: the one
	// holding the most queued bytes drops its queue, not the others.
	third, _ := attach(t, o, "t.json", 64)
	early.take(nil) // resync: takes the latest frame, counted in flight
	early.release()
	for i := 15; i <= 24; i++ {
		must(t, b.WriteFrame("t.json", frame(i)))
		if sum, _ := heldBy(b); sum > o.opts.QueueBytes {
			t.Fatalf("after frame %d: streams hold %d bytes, over QueueBytes %d", i, sum, o.opts.QueueBytes)
		}
	}
	if late.resyncs == 0 {
		t.Fatal("the stream furthest behind kept its queue while the total was over QueueBytes")
	}
	if third.resyncs > late.resyncs || early.resyncs > late.resyncs+1 {
		t.Fatalf("resyncs: early %d, late %d, third %d: the readers less behind dropped more often than the one furthest behind", early.resyncs, late.resyncs, third.resyncs)
	}
	// Taking moves bytes in flight; releasing and leaving uncount them.
	evs, _ := third.take(nil)
	if len(evs) == 0 {
		t.Fatal("third took nothing")
	}
	_, per := heldBy(b)
	if per[third] == 0 || third.inflight == 0 || third.queued != 0 {
		t.Fatalf("after a take: queued %d, in flight %d; want all in flight", third.queued, third.inflight)
	}
	third.release()
	if third.inflight != 0 {
		t.Fatalf("in flight after release: %d, want 0", third.inflight)
	}
}

// The byte accounting holds under concurrency: clients that read, stop
// reading or go away race frames of random sizes and the broadcast's
// Close; what the Origin counts never passes QueueBytes plus one resync
// (the track's latest frame) per stream, and is zero once every stream
// left. Run under -race.
func TestHeldBytesAccountingUnderRaces(t *testing.T) {
	for round := range 4 {
		o, b := newTestOrigin(t, "t.json")
		o.opts.StreamBytes, o.opts.QueueBytes, o.opts.WriteTimeout = 4<<10, 8<<10, 200*time.Millisecond
		srv := httptest.NewServer(o)
		const clients, frames, maxFrame = 8, 300, 1 << 10
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/t.json", nil)
				req.Header.Set("Accept", "text/event-stream")
				resp, err := srv.Client().Do(req)
				if err != nil {
					return
				}
				defer resp.Body.Close()
				switch c % 3 {
				case 0: // reads everything
					io.Copy(io.Discard, resp.Body)
				case 1: // reads a little, then goes away
					io.CopyN(io.Discard, resp.Body, int64(rand.IntN(8<<10)))
				default: // stops reading until the write timeout drops it
					time.Sleep(300 * time.Millisecond)
				}
			})
		}
		var peak int64
		for i := range frames {
			f := make([]byte, 1+rand.IntN(maxFrame))
			for j := range f {
				f[j] = 'a' + byte(j%26)
			}
			must(t, b.WriteFrame("t.json", f))
			peak = max(peak, o.held.Load())
			if round%2 == 1 && i == frames/2 {
				break // close mid-stream, with queues full
			}
		}
		must(t, b.Close())
		wg.Wait()
		srv.Close()
		if limit := int64(o.opts.QueueBytes + clients*maxFrame); peak > limit {
			t.Fatalf("round %d: the Origin counted %d bytes held, over QueueBytes plus a frame per stream (%d)", round, peak, limit)
		}
		deadline := time.Now().Add(10 * time.Second)
		for o.held.Load() != 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := o.held.Load(); n != 0 {
			t.Fatalf("round %d: %d bytes counted held after every stream left, want 0", round, n)
		}
	}
}
