package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/memorigin"
	"github.com/moqstats/moqstats/zframe"
)

// zframes compresses a track's frames as a producer does: frames[i] is
// the JSON of frame i of its group, snapshot first; it returns the wire
// bytes of each.
func zframes(t *testing.T, frames ...string) [][]byte {
	t.Helper()
	w := zframe.NewWriter(1 << 20)
	var out [][]byte
	for i, f := range frames {
		var b []byte
		if i == 0 {
			b = w.Snapshot([]byte(f))
		} else {
			b = w.Delta([]byte(f))
		}
		out = append(out, append([]byte(nil), b...))
		w.Commit(true)
	}
	return out
}

func TestPatchTrafficMergesMemberByMember(t *testing.T) {
	f := consumer.TrafficFrame{
		"a":    {Bytes: 10, Frames: 2, Datagrams: 1},
		"b":    {Subscriptions: 1},
		"gone": {Bytes: 1},
	}
	// A changed key carries its changed counters only; a new key its
	// whole value, or some of it; a key that left is null, and a null for
	// a key f lacks changes nothing; unknown members are ignored whatever
	// they hold; an empty entry changes nothing.
	patch := `{"gone":null,"absent":null,"a":{"bytes":15,"x":{"y":[1,null]},"datagrams":18446744073709551615},"new":{"frames":3},"b":{}}`
	var d consumer.Decoder
	if err := d.PatchTraffic(f, []byte(patch)); err != nil {
		t.Fatal(err)
	}
	want := consumer.TrafficFrame{
		"a":   {Bytes: 15, Frames: 2, Datagrams: 1<<64 - 1},
		"b":   {Subscriptions: 1},
		"new": {Frames: 3},
	}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("patched frame\n %+v\nwant\n %+v", f, want)
	}
}

func TestPatchPresenceMergesMemberByMember(t *testing.T) {
	f := consumer.PresenceFrame{"acme": {Sessions: 3, SessionsClosed: 1}, "old": {Sessions: 1, SessionsClosed: 1}}
	var d consumer.Decoder
	if err := d.PatchPresence(f, []byte(`{"acme":{"sessions_closed":2},"old":null,"new":{"sessions":1,"bytes":"ignored"}}`)); err != nil {
		t.Fatal(err)
	}
	want := consumer.PresenceFrame{"acme": {Sessions: 3, SessionsClosed: 2}, "new": {Sessions: 1}}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("patched frame %+v, want %+v", f, want)
	}
	if err := d.PatchPresence(f, []byte(`{"acme":{"sessions":null}}`)); !errors.Is(err, consumer.ErrCounter) {
		t.Fatalf("a null counter: %v, want ErrCounter", err)
	}
}

// A patch is checked as a frame is, plus what merging adds, and a
// rejected patch changes nothing: no entry of it is applied.
func TestPatchRejectsHostilePatchesAndChangesNothing(t *testing.T) {
	deep := `{"a":{"x":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}}`
	for _, c := range []struct {
		name, patch string
		dec         consumer.Decoder
		kind        error
	}{
		{"an array", `[{"a":null}]`, consumer.Decoder{}, consumer.ErrShape},
		{"null", `null`, consumer.Decoder{}, consumer.ErrShape},
		{"a number", `1`, consumer.Decoder{}, consumer.ErrShape},
		{"a string", `"a"`, consumer.Decoder{}, consumer.ErrShape},
		{"empty", ``, consumer.Decoder{}, consumer.ErrSyntax},
		{"an entry that is a number", `{"b":{"bytes":1},"a":1}`, consumer.Decoder{}, consumer.ErrShape},
		{"an entry that is an array", `{"b":{"bytes":1},"a":[]}`, consumer.Decoder{}, consumer.ErrShape},
		{"an entry that is a string", `{"a":"x"}`, consumer.Decoder{}, consumer.ErrShape},
		{"an entry that is a boolean", `{"a":true}`, consumer.Decoder{}, consumer.ErrShape},
		{"a string counter", `{"b":{"bytes":1},"a":{"bytes":"1"}}`, consumer.Decoder{}, consumer.ErrCounter},
		{"a null counter", `{"a":{"bytes":null}}`, consumer.Decoder{}, consumer.ErrCounter},
		{"an object counter", `{"a":{"bytes":{}}}`, consumer.Decoder{}, consumer.ErrCounter},
		{"a fraction", `{"a":{"bytes":1.5}}`, consumer.Decoder{}, consumer.ErrCounter},
		{"an exponent", `{"a":{"bytes":1e3}}`, consumer.Decoder{}, consumer.ErrCounter},
		{"a negative counter", `{"a":{"bytes":-1}}`, consumer.Decoder{}, consumer.ErrCounter},
		{"a counter beyond uint64", `{"b":{"bytes":1},"a":{"bytes":18446744073709551616}}`, consumer.Decoder{}, consumer.ErrCounter},
		{"a key twice", `{"a":null,"a":{"bytes":1}}`, consumer.Decoder{}, consumer.ErrDuplicateKey},
		{"a key twice, unsorted", `{"b":{},"a":{},"b":null}`, consumer.Decoder{}, consumer.ErrDuplicateKey},
		{"a counter twice", `{"a":{"bytes":1,"bytes":2}}`, consumer.Decoder{}, consumer.ErrDuplicateKey},
		{"an unknown member twice", `{"a":{"x":1,"x":2}}`, consumer.Decoder{}, consumer.ErrDuplicateKey},
		{"invalid UTF-8", "{\"a\xff\":{}}", consumer.Decoder{}, consumer.ErrInvalidUTF8},
		{"an unpaired surrogate", `{"\udc00":{}}`, consumer.Decoder{}, consumer.ErrInvalidUTF8},
		{"trailing bytes", `{"a":{}} {}`, consumer.Decoder{}, consumer.ErrSyntax},
		{"nested too deep", deep, consumer.Decoder{}, consumer.ErrTooDeep},
		{"over MaxFrameSize", `{"a":{"bytes":12345}}`, consumer.Decoder{MaxFrameSize: 10}, consumer.ErrFrameTooLarge},
		{"over MaxEntries in the patch", `{"x":null,"y":null,"z":null}`, consumer.Decoder{MaxEntries: 2}, consumer.ErrTooManyKeys},
		{"over MaxEntries in the result", `{"new":{}}`, consumer.Decoder{MaxEntries: 2}, consumer.ErrTooManyKeys},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := consumer.TrafficFrame{"a": {Bytes: 1}, "b": {Bytes: 2}}
			before := maps.Clone(f)
			err := c.dec.PatchTraffic(f, []byte(c.patch))
			if !errors.Is(err, c.kind) || !errors.Is(err, consumer.ErrInvalidFrame) {
				t.Fatalf("PatchTraffic(%q) = %v, want %v", c.patch, err, c.kind)
			}
			if !reflect.DeepEqual(f, before) {
				t.Fatalf("a rejected patch changed the frame to %+v, was %+v", f, before)
			}
		})
	}
	// At the limit, a patch that adds a key and removes one fits.
	f := consumer.TrafficFrame{"a": {Bytes: 1}, "b": {Bytes: 2}}
	if err := (&consumer.Decoder{MaxEntries: 2}).PatchTraffic(f, []byte(`{"a":null,"c":{"bytes":3}}`)); err != nil {
		t.Fatalf("a patch keeping the frame at MaxEntries: %v", err)
	}
}

func TestCompressedTrackRebuildsEveryFrameAcrossGroups(t *testing.T) {
	c := consumer.NewCompressedTrack(consumer.Publisher, consumer.Decoder{})
	g1 := zframes(t,
		`{"a":{"announced":1,"announced_closed":0,"broadcasts":0,"broadcasts_closed":0,"subscriptions":1,"subscriptions_closed":0,"bytes":10,"frames":1,"groups":0}}`,
		`{"a":{"bytes":20,"frames":2}}`,
		`{"b":{"announced":0,"announced_closed":0,"broadcasts":1,"broadcasts_closed":0,"subscriptions":0,"subscriptions_closed":0,"bytes":0,"frames":0,"groups":0}}`,
		`{"a":null}`,
	)
	g2 := zframes(t,
		`{"b":{"announced":0,"announced_closed":0,"broadcasts":1,"broadcasts_closed":1,"subscriptions":0,"subscriptions_closed":0,"bytes":0,"frames":0,"groups":0}}`,
		`{}`,
		`{"b":{"broadcasts":2}}`,
	)
	want := []consumer.TrafficFrame{
		{"a": {Announced: 1, Subscriptions: 1, Bytes: 10, Frames: 1}},
		{"a": {Announced: 1, Subscriptions: 1, Bytes: 20, Frames: 2}},
		{"a": {Announced: 1, Subscriptions: 1, Bytes: 20, Frames: 2}, "b": {Broadcasts: 1}},
		{"b": {Broadcasts: 1}},
		{"b": {Broadcasts: 1, BroadcastsClosed: 1}},
		{"b": {Broadcasts: 1, BroadcastsClosed: 1}},
		{"b": {Broadcasts: 2, BroadcastsClosed: 1}},
	}
	if _, _, ok := c.Current(); ok || c.Traffic() != nil {
		t.Fatalf("a value before the first snapshot: %v", c.Traffic())
	}
	i := 0
	for g, group := range [][][]byte{g1, g2} {
		for idx, data := range group {
			if err := c.Apply(uint64(7+g), idx, data); err != nil {
				t.Fatalf("frame %d.%d: %v", 7+g, idx, err)
			}
			if !reflect.DeepEqual(c.Traffic(), want[i]) {
				t.Fatalf("after frame %d.%d: %+v, want %+v", 7+g, idx, c.Traffic(), want[i])
			}
			if gg, ii, ok := c.Current(); !ok || gg != uint64(7+g) || ii != idx {
				t.Fatalf("Current() = %d, %d, %v after frame %d.%d", gg, ii, ok, 7+g, idx)
			}
			i++
		}
	}
}

// A follower that joins mid-group cannot decode the group's deltas: each
// is ErrMissingSnapshot, no value appears, and the next group's snapshot
// starts the track.
func TestCompressedTrackLateJoinerWaitsForTheNextSnapshot(t *testing.T) {
	g1 := zframes(t, `{"a":{"bytes":1}}`, `{"a":{"bytes":2}}`, `{"a":{"bytes":3}}`, `{"a":{"bytes":4}}`)
	g2 := zframes(t, `{"a":{"bytes":5}}`, `{"a":{"bytes":6}}`)
	c := consumer.NewCompressedTrack(consumer.Subscriber, consumer.Decoder{})
	for idx := 2; idx < len(g1); idx++ {
		err := c.Apply(1, idx, g1[idx])
		var fe *consumer.FrameError
		if !errors.Is(err, consumer.ErrMissingSnapshot) || !errors.As(err, &fe) || fe.Group != 1 || fe.Index != idx {
			t.Fatalf("delta 1.%d of a group joined late: %v, want ErrMissingSnapshot placed at 1.%d", idx, err, idx)
		}
		if c.Traffic() != nil {
			t.Fatalf("a value from deltas without their snapshot: %v", c.Traffic())
		}
	}
	for idx, data := range g2 {
		if err := c.Apply(2, idx, data); err != nil {
			t.Fatalf("frame 2.%d: %v", idx, err)
		}
	}
	if got := c.Traffic()["a"].Bytes; got != 6 {
		t.Fatalf("bytes %d after the next group, want 6", got)
	}
}

// A transport that delivers the current group again from its start (a
// subscription made anew) lets a track that joined it too late to apply
// anything take it whole; a track that applied frames of it sees those
// refused as replays and goes on with the next.
func TestCompressedTrackTakesAGroupDeliveredAgainFromItsStart(t *testing.T) {
	g := zframes(t, `{"a":{"bytes":1}}`, `{"a":{"bytes":2}}`, `{"a":{"bytes":3}}`, `{"a":{"bytes":4}}`)
	late := consumer.NewCompressedTrack(consumer.Publisher, consumer.Decoder{})
	if err := late.Apply(9, 2, g[2]); !errors.Is(err, consumer.ErrMissingSnapshot) {
		t.Fatalf("joining mid-group: %v", err)
	}
	for idx := range 3 {
		if err := late.Apply(9, idx, g[idx]); err != nil {
			t.Fatalf("the group again, frame 9.%d: %v", idx, err)
		}
	}
	if got := late.Traffic()["a"].Bytes; got != 3 {
		t.Fatalf("bytes %d, want 3", got)
	}

	on := consumer.NewCompressedTrack(consumer.Publisher, consumer.Decoder{})
	for idx := range 2 {
		if err := on.Apply(9, idx, g[idx]); err != nil {
			t.Fatal(err)
		}
	}
	for idx := range 2 {
		if err := on.Apply(9, idx, g[idx]); !errors.Is(err, consumer.ErrFrameOrder) {
			t.Fatalf("frame 9.%d again: %v, want ErrFrameOrder", idx, err)
		}
	}
	for idx := 2; idx < len(g); idx++ {
		if err := on.Apply(9, idx, g[idx]); err != nil {
			t.Fatalf("frame 9.%d after the replays: %v", idx, err)
		}
	}
	if got := on.Traffic()["a"].Bytes; got != 4 {
		t.Fatalf("bytes %d, want 4", got)
	}
}

// A group broken by a lost or rejected frame delivers no value until the
// next group: the value stays the last one built (never a value a
// missing patch would have changed), and Current reports it stale.
func TestCompressedTrackBrokenGroupWaitsForTheNextSnapshot(t *testing.T) {
	for _, c := range []struct {
		name   string
		break_ func(c *consumer.CompressedTrack, g [][]byte) error
		kind   error
	}{
		{"a lost delta", func(c *consumer.CompressedTrack, g [][]byte) error { return c.Apply(1, 3, g[3]) }, consumer.ErrMissingSnapshot},
		{"a corrupt delta", func(c *consumer.CompressedTrack, g [][]byte) error {
			return c.Apply(1, 2, []byte{0xff, 0xff, 0xff})
		}, consumer.ErrCompression},
		{"a patch that is not JSON", func(c *consumer.CompressedTrack, g [][]byte) error {
			return c.Apply(1, 2, zframes(t, `{"a":{"bytes":1}}`, `{"a":{"bytes":2}}`, `{"a":`)[2])
		}, consumer.ErrSyntax},
		{"a patch that is not an object", func(c *consumer.CompressedTrack, g [][]byte) error {
			return c.Apply(1, 2, zframes(t, `{"a":{"bytes":1}}`, `{"a":{"bytes":2}}`, `[1]`)[2])
		}, consumer.ErrShape},
	} {
		t.Run(c.name, func(t *testing.T) {
			g1 := zframes(t, `{"a":{"bytes":1}}`, `{"a":{"bytes":2}}`, `{"a":{"bytes":3}}`, `{"a":{"bytes":4}}`)
			g2 := zframes(t, `{"a":{"bytes":5}}`)
			ct := consumer.NewCompressedTrack(consumer.Publisher, consumer.Decoder{})
			for idx := range 2 {
				if err := ct.Apply(1, idx, g1[idx]); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.break_(ct, g1); !errors.Is(err, c.kind) {
				t.Fatalf("breaking the group: %v, want %v", err, c.kind)
			}
			if _, _, ok := ct.Current(); ok {
				t.Fatal("Current reports a value after the group broke")
			}
			for idx := 2; idx < len(g1); idx++ {
				err := ct.Apply(1, idx, g1[idx])
				if !errors.Is(err, consumer.ErrMissingSnapshot) && !errors.Is(err, consumer.ErrFrameOrder) {
					t.Fatalf("frame 1.%d of a broken group: %v, want it refused", idx, err)
				}
				if got := ct.Traffic()["a"].Bytes; got != 2 {
					t.Fatalf("bytes %d in a broken group, want the last value built, 2", got)
				}
			}
			if err := ct.Apply(2, 0, g2[0]); err != nil {
				t.Fatal(err)
			}
			if got := ct.Traffic()["a"].Bytes; got != 5 {
				t.Fatalf("bytes %d after the next snapshot, want 5", got)
			}
		})
	}
}

// Frames at or before the last one applied (a replay, an older group)
// are ErrFrameOrder and change nothing: the group goes on after them.
func TestCompressedTrackReplaysChangeNothing(t *testing.T) {
	g1 := zframes(t, `{"a":{"bytes":1}}`, `{"a":{"bytes":2}}`)
	g2 := zframes(t, `{"a":{"bytes":3}}`, `{"a":{"bytes":4}}`, `{"a":{"bytes":5}}`)
	c := consumer.NewCompressedTrack(consumer.Publisher, consumer.Decoder{})
	for idx, data := range g1 {
		if err := c.Apply(1, idx, data); err != nil {
			t.Fatal(err)
		}
	}
	for idx := range 2 {
		if err := c.Apply(2, idx, g2[idx]); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []struct {
		group uint64
		index int
		data  []byte
	}{{2, 0, g2[0]}, {2, 1, g2[1]}, {1, 0, g1[0]}, {1, 1, g1[1]}, {2, -1, g2[1]}} {
		if err := c.Apply(f.group, f.index, f.data); !errors.Is(err, consumer.ErrFrameOrder) {
			t.Fatalf("replayed frame %d.%d: %v, want ErrFrameOrder", f.group, f.index, err)
		}
		if got := c.Traffic()["a"].Bytes; got != 4 {
			t.Fatalf("bytes %d after a replay, want 4", got)
		}
	}
	if err := c.Apply(2, 2, g2[2]); err != nil {
		t.Fatalf("the group after the replays: %v", err)
	}
	if got := c.Traffic()["a"].Bytes; got != 5 {
		t.Fatalf("bytes %d, want 5", got)
	}
	// Reset forgets the groups: a new broadcast may number from 1.
	c.Reset()
	if c.Traffic() != nil {
		t.Fatal("a value after Reset")
	}
	if err := c.Apply(1, 0, g1[0]); err != nil {
		t.Fatalf("group 1 after Reset: %v", err)
	}
}

func TestCompressedTrackCapsTheInflatedSize(t *testing.T) {
	big := `{"a":{"bytes":1,"pad":"` + strings.Repeat("x", 5000) + `"}}`
	g := zframes(t, big)
	if len(g[0]) > 200 {
		t.Fatalf("%d compressed bytes: the test wants a frame that inflates far", len(g[0]))
	}
	c := consumer.NewCompressedTrack(consumer.Publisher, consumer.Decoder{MaxFrameSize: 1000})
	err := c.Apply(3, 0, g[0])
	if !errors.Is(err, consumer.ErrFrameTooLarge) {
		t.Fatalf("a frame inflating past MaxFrameSize: %v, want ErrFrameTooLarge", err)
	}
	if !strings.Contains(err.Error(), "frame 3.0: invalid frame: frame too large") {
		t.Fatalf("error %q does not place the frame", err)
	}
	if c.Traffic() != nil {
		t.Fatal("a value from a rejected snapshot")
	}
}

func TestCompressedSessionsTrack(t *testing.T) {
	g := zframes(t, `{"acme":{"sessions":2,"sessions_closed":0}}`, `{"acme":{"sessions_closed":1},"beta":{"sessions":1,"sessions_closed":0}}`, `{"acme":null}`)
	c := consumer.NewCompressedTrack(consumer.SessionsKind, consumer.Decoder{})
	want := []consumer.PresenceFrame{
		{"acme": {Sessions: 2}},
		{"acme": {Sessions: 2, SessionsClosed: 1}, "beta": {Sessions: 1}},
		{"beta": {Sessions: 1}},
	}
	for idx, data := range g {
		if err := c.Apply(1, idx, data); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.Presence(), want[idx]) || c.Traffic() != nil {
			t.Fatalf("after frame %d: %+v (traffic %v), want %+v", idx, c.Presence(), c.Traffic(), want[idx])
		}
	}
}

func TestObserveRefusesACompressedFrame(t *testing.T) {
	agg := newAggT(t, consumer.Config{})
	err := agg.Observe("n", "publisher.json.z", time.Now(), zframes(t, `{}`)[0])
	if !errors.Is(err, consumer.ErrCompressed) {
		t.Fatalf("Observe on a compressed track: %v, want ErrCompressed", err)
	}
	if agg.Keys() != 0 || len(agg.View(time.Now()).Tracks) != 0 {
		t.Fatal("a refused frame left state")
	}
}

// plainSource hides a subscription's NextFrame: a Source that does not
// tell where frames sit.
type plainSource struct{ sub *memorigin.Subscription }

func (p plainSource) Next(ctx context.Context) ([]byte, error) { return p.sub.Next(ctx) }

func TestFollowCompressedNeedsAFrameSource(t *testing.T) {
	mem := memorigin.New()
	stats, err := moqstats.New(moqstats.Config{Origin: mem, Interval: time.Hour, Compressed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	sub, err := mem.Subscribe(stats.Path(), "publisher.json.z")
	if err != nil {
		t.Fatal(err)
	}
	err = consumer.Follow(context.Background(), newAggT(t, consumer.Config{}), "", "publisher.json.z", plainSource{sub}, consumer.FollowOptions{})
	if err == nil || !strings.Contains(err.Error(), "needs a FrameSource") {
		t.Fatalf("Follow of a compressed track from a plain Source: %v", err)
	}
}

func newAggT(t *testing.T, cfg consumer.Config) *consumer.Aggregator {
	t.Helper()
	agg, err := consumer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return agg
}

// lateSource delivers a subscription's frames from the latest one queued
// when it is made, as a relay that serves only the latest frame would: a
// late joiner mid-group.
type lateSource struct {
	*memorigin.Subscription
	first   consumer.Frame
	pending bool
}

func joinLate(sub *memorigin.Subscription) *lateSource {
	l := &lateSource{Subscription: sub}
	for {
		f, ok := sub.TryNextFrame()
		if !ok {
			return l
		}
		l.first, l.pending = f, true
	}
}

func (l *lateSource) NextFrame(ctx context.Context) (consumer.Frame, error) {
	if l.pending {
		l.pending = false
		return l.first, nil
	}
	return l.Subscription.NextFrame(ctx)
}

// A follower that joins a compressed track mid-group, with a real Stats:
// every delta of that group is reported as ErrMissingSnapshot and
// nothing reaches the Aggregator (no wrong value), until the next group,
// whose values it then follows to the same totals a plain follower
// computes.
func TestFollowLateJoinerMidGroup(t *testing.T) {
	mem := memorigin.New()
	stats, err := moqstats.New(moqstats.Config{Origin: mem, Node: "n", Interval: time.Hour, Compressed: true, DeltaRatio: 100})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := mem.Lookup(stats.Path())
	g := stats.Tier(moqstats.External).Broadcast("a").PublisherTrack("v")
	flush := func() {
		t.Helper()
		if err := stats.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		g.Bytes(10)
		flush()
	}
	if _, frames, _ := b.Group("publisher.json.z"); len(frames) < 4 {
		t.Fatalf("%d frames in the group: the test wants the follower to join mid-group", len(frames))
	}
	zsub, err := mem.Subscribe(stats.Path(), "publisher.json.z")
	if err != nil {
		t.Fatal(err)
	}
	psub, err := mem.Subscribe(stats.Path(), "publisher.json")
	if err != nil {
		t.Fatal(err)
	}
	late := joinLate(zsub)
	if !late.pending || late.first.Index == 0 {
		t.Fatalf("joined at frame %d.%d, want one mid-group", late.first.Group, late.first.Index)
	}
	zagg, pagg := newAggT(t, consumer.Config{}), newAggT(t, consumer.Config{})
	errs := make(chan error, 100)
	done := make(chan struct{}, 2)
	go func() {
		if err := consumer.Follow(context.Background(), zagg, "n", "publisher.json.z", late, consumer.FollowOptions{OnError: func(err error) { errs <- err }}); err != nil {
			t.Error(err)
		}
		done <- struct{}{}
	}()
	go func() {
		if err := consumer.Follow(context.Background(), pagg, "n", "publisher.json", psub, consumer.FollowOptions{}); err != nil {
			t.Error(err)
		}
		done <- struct{}{}
	}()
	// Three more deltas in the group the follower joined.
	for range 3 {
		g.Bytes(10)
		flush()
	}
	for range 4 {
		select {
		case err := <-errs:
			if !errors.Is(err, consumer.ErrMissingSnapshot) || !strings.Contains(err.Error(), `track "publisher.json.z" frame `) {
				t.Fatalf("follower error %v, want ErrMissingSnapshot placed on the track", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the deltas of the group joined late were not reported")
		}
	}
	if v := zagg.View(time.Now()); len(v.Broadcasts) != 0 {
		t.Fatalf("rows from a group joined mid-way: %+v", v.Broadcasts)
	}
	// A failed write makes the Stats start a new group: its snapshot
	// carries the value, and the deltas after it follow.
	b.SetWriteHook(func(string, []byte) error { return errInjected })
	g.Bytes(10)
	if err := stats.Flush(); !errors.Is(err, errInjected) {
		t.Fatalf("Flush = %v, want the injected failure", err)
	}
	b.SetWriteHook(nil)
	flush()
	g.Bytes(5)
	flush()
	g.Close()
	if err := stats.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	<-done
	select {
	case err := <-errs:
		t.Fatalf("a frame of the next group was refused: %v", err)
	default:
	}
	zv, pv := zagg.View(time.Now()), pagg.View(time.Now())
	want := consumer.Traffic{Subscriptions: 1, SubscriptionsClosed: 1, Bytes: 85}
	for name, v := range map[string]*consumer.View{"compressed": zv, "plain": pv} {
		if got := v.BroadcastTotal("", consumer.Publisher, "a"); got != want {
			t.Errorf("%s follower: totals %+v, want %+v", name, got, want)
		}
	}
}

// A compressed Stats publishes through an Origin: it is an Appender over
// memorigin, passes both flavors on, and feeds the Aggregator the plain
// frames only, once per (node, track).
func TestOriginPublishesACompressedStats(t *testing.T) {
	agg := newAggT(t, consumer.Config{})
	mem := memorigin.New()
	var observed []string
	stats, err := moqstats.New(moqstats.Config{
		Origin: consumer.NewOrigin(mem, agg, consumer.OriginOptions{OnError: func(err error) { observed = append(observed, err.Error()) }}),
		Node:   "n", Interval: time.Hour, Compressed: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := mem.Lookup(stats.Path())
	g := stats.Tier(moqstats.External).Broadcast("a").PublisherTrack("v")
	for i := range 5 {
		g.Bytes(uint64(i + 1))
		if err := stats.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if _, frames, _ := b.Group("publisher.json.z"); len(frames) < 2 {
		t.Fatalf("%d frames in the compressed group: no delta went through the Origin", len(frames))
	}
	v := agg.View(time.Now())
	if len(v.Tracks) != len(moqstats.Tracks()) {
		t.Fatalf("%d tracks in the Aggregator, want the %d plain ones: %+v", len(v.Tracks), len(moqstats.Tracks()), v.Tracks)
	}
	for _, tr := range v.Tracks {
		if tr.Track.Compressed {
			t.Fatalf("a compressed track in the Aggregator: %+v", tr)
		}
		if tr.Track.Kind == consumer.Publisher && tr.Track.Tier == "" && tr.Frames != uint64(b.Writes("publisher.json")) {
			t.Fatalf("publisher.json: %d frames applied, %d written", tr.Frames, b.Writes("publisher.json"))
		}
	}
	if got := v.BroadcastTotal("", consumer.Publisher, "a").Bytes; got != 15 {
		t.Fatalf("bytes %d, want 15", got)
	}
	g.Close()
	if err := stats.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tr := range agg.View(time.Now()).Tracks {
		if !tr.Ended {
			t.Fatalf("track %s not ended", tr.Track.Name())
		}
	}
	if len(observed) != 0 {
		t.Fatalf("errors feeding the Aggregator: %v", observed)
	}

	// Without a next Origin the frames go nowhere else; a compressed
	// Stats still works.
	agg2 := newAggT(t, consumer.Config{})
	s2, err := moqstats.New(moqstats.Config{Origin: consumer.NewOrigin(nil, agg2, consumer.OriginOptions{}), Interval: time.Hour, Compressed: true})
	if err != nil {
		t.Fatal(err)
	}
	sess := s2.Tier(moqstats.Internal).Session("r")
	if err := s2.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := agg2.View(time.Now()).LiveSessions("internal", "r"); got != 1 {
		t.Fatalf("live sessions %d, want 1", got)
	}
	sess.Close()
	_ = s2.Close()
}

// noAppendOrigin publishes broadcasts that cannot append.
type noAppendOrigin struct{}

type noAppendBroadcast struct{}

func (noAppendOrigin) Publish(string, []string) (moqstats.Broadcast, error) {
	return noAppendBroadcast{}, nil
}
func (noAppendBroadcast) WriteFrame(string, []byte) error { return nil }
func (noAppendBroadcast) Close() error                    { return nil }

func TestOriginIsAnAppenderOnlyWhenTheNextBroadcastIs(t *testing.T) {
	agg := newAggT(t, consumer.Config{})
	_, err := moqstats.New(moqstats.Config{Origin: consumer.NewOrigin(noAppendOrigin{}, agg, consumer.OriginOptions{}), Compressed: true})
	if !errors.Is(err, moqstats.ErrInvalidConfig) {
		t.Fatalf("a compressed Stats over a broadcast without AppendFrame: %v, want ErrInvalidConfig", err)
	}
	s, err := moqstats.New(moqstats.Config{Origin: consumer.NewOrigin(noAppendOrigin{}, agg, consumer.OriginOptions{})})
	if err != nil {
		t.Fatalf("a plain Stats over it: %v", err)
	}
	_ = s.Close()
}

func ExampleCompressedTrack() {
	// The frames of one group of a compressed track: a snapshot, then
	// merge patches (here built with zframe.Writer, as a producer does).
	w := zframe.NewWriter(0)
	var frames [][]byte
	for i, json := range []string{
		`{"acme/live":{"announced":1,"announced_closed":0,"broadcasts":2,"broadcasts_closed":0,"subscriptions":2,"subscriptions_closed":0,"bytes":4096,"frames":40,"groups":2}}`,
		`{"acme/live":{"bytes":8192,"frames":80},"beta":{"bytes":1}}`,
		`{"beta":null}`,
	} {
		if i == 0 {
			frames = append(frames, append([]byte(nil), w.Snapshot([]byte(json))...))
		} else {
			frames = append(frames, append([]byte(nil), w.Delta([]byte(json))...))
		}
		w.Commit(true)
	}

	track := consumer.NewCompressedTrack(consumer.Publisher, consumer.Decoder{})
	for i, data := range frames {
		if err := track.Apply(42, i, data); err != nil {
			panic(err)
		}
		v := track.Traffic()
		fmt.Println(len(v), "keys, acme/live bytes:", v["acme/live"].Bytes)
	}
	// A delta from a group whose snapshot was not seen cannot be applied.
	fmt.Println(track.Apply(44, 1, frames[1]))
	// Output:
	// 1 keys, acme/live bytes: 4096
	// 2 keys, acme/live bytes: 8192
	// 1 keys, acme/live bytes: 8192
	// consumer: frame 44.1: invalid frame: delta without the frames of its group before it: no snapshot of the group was applied
}
