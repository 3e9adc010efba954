package consumer_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/memorigin"
)

// Against a real producer with a short retention window, on real time: a
// path that comes back within the window continues, one that comes back
// after it is re-created from zero and must be a new segment even when
// its new counts are above the old (no counter went down), and a path
// held live on another track for longer than the window kept its entry,
// so its return on this track continues however long it was absent.
func TestRetentionWindowAgainstARealProducer(t *testing.T) {
	t.Parallel()
	const window = time.Second
	agg, err := consumer.New(consumer.Config{Retention: window, RetentionSlack: window / 2})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := moqstats.New(moqstats.Config{
		Origin:   consumer.NewOrigin(memorigin.New(), agg, consumer.OriginOptions{}),
		Interval: 10 * time.Millisecond, Retention: window, Node: "n",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	h := stats.Tier(moqstats.External)
	// cycle announces path, subscribes to a track on it, moves 10 bytes
	// and closes both, n times in a row.
	cycle := func(path string, n int) {
		for range n {
			g := h.Broadcast(path).Publisher()
			tr := g.Track("v")
			tr.Bytes(10)
			tr.Close()
			g.Close()
		}
	}
	// back reopens path within the window with a pass in between, so
	// that if a stalled test outlived the window the new entry shows a
	// decrease.
	back := func(path string) {
		g := h.Broadcast(path).Publisher()
		time.Sleep(30 * time.Millisecond)
		tr := g.Track("v")
		tr.Bytes(10)
		tr.Close()
		g.Close()
	}
	cycle("p", 1)
	cycle("q", 1)
	time.Sleep(50 * time.Millisecond)
	back("p")
	back("q")
	time.Sleep(50 * time.Millisecond)
	pin := h.Broadcast("q").Subscriber()
	time.Sleep(2 * window) // p's retention ends; q's entry is pinned
	cycle("p", 3)
	cycle("q", 3)
	if err := stats.Flush(); err != nil {
		t.Fatal(err)
	}
	before := agg.View(time.Now()) // before the end, which zeroes Current
	pin.Close()
	if err := stats.Close(); err != nil {
		t.Fatal(err)
	}

	v := agg.View(time.Now())
	find := func(v *consumer.View, kind consumer.Kind, path string) consumer.BroadcastRow {
		for _, r := range v.Broadcasts {
			if r.Broadcast == path && r.Track.Kind == kind && r.Track.Tier == "" {
				return r
			}
		}
		t.Fatalf("no %v row for %q", kind, path)
		return consumer.BroadcastRow{}
	}
	want := consumer.Traffic{Announced: 5, AnnouncedClosed: 5, Subscriptions: 5, SubscriptionsClosed: 5, Bytes: 50}
	p := find(v, consumer.Publisher, "p")
	if p.Total != want || p.Segments != 2 {
		t.Errorf("p: total %+v in %d segments, want %+v in 2", p.Total, p.Segments, want)
	}
	if got := find(before, consumer.Publisher, "p").Current.Announced; got != 3 {
		t.Errorf("p: the producer's last frame shows %d announces, want 3: it did not re-create the entry after its window", got)
	}
	q := find(v, consumer.Publisher, "q")
	if q.Total != want || q.Segments != 1 {
		t.Errorf("q: total %+v in %d segments, want %+v in 1", q.Total, q.Segments, want)
	}
	if got := find(before, consumer.Publisher, "q").Current.Announced; got != 5 {
		t.Errorf("q: the producer's last frame shows %d announces, want 5: its pinned entry continued", got)
	}
	if qs := find(v, consumer.Subscriber, "q"); qs.Total != (consumer.Traffic{Announced: 1, AnnouncedClosed: 1}) {
		t.Errorf("q subscriber: %+v, want one announce", qs.Total)
	}
}
