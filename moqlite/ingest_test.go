package moqlite_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/internal/memconn"
	"github.com/moqstats/moqstats/moqlite/internal/wire"
	"github.com/moqstats/moqstats/moqlite/transport"
)

// publishInto dials agg from a client that publishes pub's broadcasts, on
// every version, and returns the client's session.
func publishInto(t *testing.T, agg, pub *moqlite.Server, protocol string) *memconn.Session {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cs, ss := memconn.Pair(ctx, protocol)
	go agg.ServeSession(ctx, ss, moqlite.ConnInfo{Transport: "memconn"})
	c, err := moqlite.NewClient(ctx, cs, moqlite.ClientConfig{Publish: pub})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return cs
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A server with Ingest republishes what a client announces: each group
// with its frames and its sequence as the client wrote them, on every
// version; the relayed broadcast is unannounced once the client's closes.
func TestIngestRelaysWhatAClientPublishes(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			agg := moqlite.NewServer(moqlite.ServerConfig{Ingest: &moqlite.IngestConfig{Prefix: "nodes", Tracks: []string{"a", "b", "absent"}}})
			defer agg.Close()
			pub := moqlite.NewServer(moqlite.ServerConfig{})
			defer pub.Close()
			b, err := pub.PublishBroadcast("nodes/x", []string{"a", "b"})
			if err != nil {
				t.Fatal(err)
			}
			b.WriteFrame("a", []byte("a0"))
			publishInto(t, agg, pub, v.protocol)

			reader, _, _ := connect(t, agg, "moq-lite-04")
			ann, err := reader.Announced("nodes")
			if err != nil {
				t.Fatal(err)
			}
			ctx := timeout(t, 10*time.Second)
			a, err := ann.Next(ctx)
			if err != nil || a.Path != "nodes/x" || !a.Active {
				t.Fatalf("announce %+v, %v; want nodes/x active", a, err)
			}
			if _, err := reader.Subscribe("nodes/x", "absent"); !errors.Is(err, moqlite.ErrNotFound) {
				t.Fatalf("subscribe to a track the client does not publish: %v, want ErrNotFound", err)
			}
			subA, err := reader.Subscribe("nodes/x", "a")
			if err != nil {
				t.Fatal(err)
			}
			subB, err := reader.Subscribe("nodes/x", "b")
			if err != nil {
				t.Fatal(err)
			}
			// The relayed track starts at the latest group, a0.
			want := map[uint64][]string{0: {"a0"}}
			eventually(t, "the first group relayed", func() bool { return agg.Stats().SessionsTotal >= 2 })
			b.AppendFrame("a", []byte("a1"))
			b.WriteFrame("a", []byte("a2"))
			b.WriteFrame("b", []byte("b0"))
			b.AppendFrame("b", []byte("b1"))
			want[0] = append(want[0], "a1")
			want[1] = []string{"a2"}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			for name, sub := range map[string]*moqlite.Subscription{"a": subA, "b": subB} {
				got := map[uint64][]string{}
				for {
					g, err := sub.NextGroup(ctx)
					if err != nil {
						if err != io.EOF {
							t.Fatalf("track %s: %v", name, err)
						}
						break
					}
					frames, _ := readGroup(ctx, g)
					for _, f := range frames {
						got[g.Sequence] = append(got[g.Sequence], string(f))
					}
				}
				w := want
				if name == "b" {
					w = map[uint64][]string{0: {"b0", "b1"}}
				}
				if !reflect.DeepEqual(got, w) {
					t.Fatalf("track %s: groups %v, want %v", name, got, w)
				}
			}
			a, err = ann.Next(ctx)
			if err != nil || a.Path != "nodes/x" || a.Active {
				t.Fatalf("announce %+v, %v; want nodes/x ended", a, err)
			}
		})
	}
}

// Ingest's caps and Authorize: broadcasts past MaxBroadcasts, refused by
// Authorize, or at a path the server publishes itself are not relayed,
// and each is counted.
func TestIngestRefusesAndCounts(t *testing.T) {
	agg := moqlite.NewServer(moqlite.ServerConfig{
		Ingest: &moqlite.IngestConfig{Prefix: "n", Tracks: []string{"t"}, MaxBroadcasts: 2},
		Authorize: func(_ moqlite.ConnInfo, req moqlite.Request) error {
			if req.Action == moqlite.ActionPublish && req.Path == "n/forbidden" {
				return errors.New("not this one")
			}
			return nil
		},
	})
	defer agg.Close()
	if _, err := agg.PublishBroadcast("n/own", []string{"t"}); err != nil {
		t.Fatal(err)
	}
	pub := moqlite.NewServer(moqlite.ServerConfig{})
	defer pub.Close()
	publish := func(paths ...string) {
		for _, p := range paths {
			b, err := pub.PublishBroadcast(p, []string{"t"})
			if err != nil {
				t.Fatal(err)
			}
			b.WriteFrame("t", []byte(p))
		}
	}
	publish("n/forbidden", "n/own")
	publishInto(t, agg, pub, "moq-lite-04")
	eventually(t, "two refusals", func() bool { return agg.Stats().Refusals.Broadcasts == 2 })
	if st := agg.Stats(); st.Refusals.Auth != 1 {
		t.Fatalf("auth refusals %d, want 1", st.Refusals.Auth)
	}
	// One of three is past MaxBroadcasts.
	publish("n/1", "n/2", "n/3")
	eventually(t, "a refusal past MaxBroadcasts", func() bool { return agg.Stats().Refusals.Broadcasts == 3 })
	relayed := 0
	for _, p := range []string{"n/1", "n/2", "n/3", "n/forbidden"} {
		reader, _, _ := connect(t, agg, "moq-lite-04")
		if sub, err := reader.Subscribe(p, "t"); err == nil {
			sub.Close()
			relayed++
			if p == "n/forbidden" {
				t.Fatal("a broadcast Authorize refused was relayed")
			}
		}
	}
	if relayed != 2 {
		t.Fatalf("%d broadcasts relayed, want MaxBroadcasts (2)", relayed)
	}
}

// A session lost is not a broadcast closed: the relayed broadcast stays
// for Linger, and the client that redials goes on in the group it was
// in, without a frame twice or missing; a client that does not come back
// has its broadcast ended after Linger.
func TestIngestOutlivesALostSession(t *testing.T) {
	agg := moqlite.NewServer(moqlite.ServerConfig{Ingest: &moqlite.IngestConfig{Prefix: "n", Tracks: []string{"t"}, Linger: 300 * time.Millisecond}})
	defer agg.Close()
	pub := moqlite.NewServer(moqlite.ServerConfig{})
	defer pub.Close()
	b, err := pub.PublishBroadcast("n/x", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	b.WriteFrame("t", []byte("f0"))
	cs := publishInto(t, agg, pub, "moq-lite-04")
	reader, _, _ := connect(t, agg, "moq-lite-04")
	var sub *moqlite.Subscription
	eventually(t, "the relay", func() bool {
		sub, err = reader.Subscribe("n/x", "t")
		return err == nil
	})
	ctx := timeout(t, 10*time.Second)
	g, err := sub.NextGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := g.ReadFrame(ctx); err != nil || string(f) != "f0" {
		t.Fatalf("frame %q, %v; want f0", f, err)
	}
	cs.CloseWithError(0x1, "cut")
	b.AppendFrame("t", []byte("f1")) // sent to nobody: the session is gone
	cs = publishInto(t, agg, pub, "moq-lite-04")
	b.AppendFrame("t", []byte("f2"))
	var rest []string
	for len(rest) < 2 {
		f, err := g.ReadFrame(ctx)
		if err != nil {
			t.Fatalf("after %v: %v", rest, err)
		}
		rest = append(rest, string(f))
	}
	if fmt.Sprint(rest) != "[f1 f2]" {
		t.Fatalf("the group went on with %v, want [f1 f2]", rest)
	}

	// Cut again, and no redial: the broadcast ends after Linger.
	cs.CloseWithError(0x1, "cut")
	if f, err := g.ReadFrame(ctx); err != io.EOF {
		t.Fatalf("the group went on with %q, %v; want its end", f, err)
	}
	if g, err := sub.NextGroup(ctx); err != io.EOF {
		t.Fatalf("after Linger: group %v, %v; want the subscription's end", g, err)
	}
}

// jsPeer is a publishing peer that speaks lite-04 as @moq/lite does: it
// announces n/x to the server's announce interest and answers each of the
// server's subscriptions with SUBSCRIBE_OK, whatever the track; the test
// resets the one to a track it does not publish (as an application does
// by closing the Track it was asked for with an error).
type jsPeer struct {
	t        *testing.T
	sess     *memconn.Session
	f        wire.Features
	announce chan transport.BidiStream
	subs     chan jsSub
}

type jsSub struct {
	track  string
	id     uint64
	stream transport.BidiStream
}

// subscribeRelayed connects a reader to agg, waits for the relayed
// broadcast n/x to be announced and subscribes to its track t.
func subscribeRelayed(t *testing.T, ctx context.Context, agg *moqlite.Server) (*moqlite.Announced, *moqlite.Subscription) {
	t.Helper()
	reader, _, _ := connect(t, agg, "moq-lite-04")
	ann, err := reader.Announced("n")
	if err != nil {
		t.Fatal(err)
	}
	if a, err := ann.Next(ctx); err != nil || a.Path != "n/x" || !a.Active {
		t.Fatalf("announce %+v, %v; want n/x active", a, err)
	}
	sub, err := reader.Subscribe("n/x", "t")
	if err != nil {
		t.Fatal(err)
	}
	return ann, sub
}

func newJSPeer(t *testing.T, ctx context.Context, agg *moqlite.Server) *jsPeer {
	const proto = "moq-lite-04"
	f, _, _ := wire.ByProtocol(proto)
	cs, ss := memconn.Pair(ctx, proto)
	go agg.ServeSession(ctx, ss, moqlite.ConnInfo{Transport: "memconn"})
	p := &jsPeer{t: t, sess: cs, f: f, announce: make(chan transport.BidiStream, 1), subs: make(chan jsSub, 16)}
	go func() {
		for {
			st, err := cs.AcceptBidi(ctx)
			if err != nil {
				return
			}
			br := bufio.NewReader(st)
			typ, err := wire.ReadVarint(br)
			if err != nil {
				return
			}
			body, err := wire.ReadMessage(br, wire.MaxMessage)
			if err != nil {
				return
			}
			switch wire.StreamType(typ) {
			case wire.StreamAnnounce:
				st.Write(wire.AppendMessage(nil, wire.AppendAnnounce(nil, wire.Announce{Active: true, Suffix: "x"}, f)))
				p.announce <- st
			case wire.StreamSubscribe:
				m, err := wire.ParseSubscribe(body, f)
				if err != nil {
					st.Reset(moqlite.CodeProtocol)
					continue
				}
				st.Write(wire.AppendSubscribeOk(nil, wire.SubscribeOk{}, f))
				p.subs <- jsSub{track: m.Track, id: m.ID, stream: st}
			}
		}
	}()
	return p
}

// subscribed waits for the server's n subscriptions, and returns them by
// track.
func (p *jsPeer) subscribed(ctx context.Context, n int) map[string]jsSub {
	p.t.Helper()
	subs := map[string]jsSub{}
	for len(subs) < n {
		select {
		case s := <-p.subs:
			subs[s.track] = s
		case <-ctx.Done():
			p.t.Fatalf("the server made %d subscriptions to the peer, want %d", len(subs), n)
		}
	}
	return subs
}

// group sends a whole group on the subscription.
func (p *jsPeer) group(ctx context.Context, s jsSub, seq uint64, frames ...string) {
	p.t.Helper()
	g, err := p.sess.OpenUni(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	out := wire.AppendGroupStream(nil, wire.Group{Subscribe: s.id, Sequence: seq})
	for _, frame := range frames {
		out = append(wire.AppendFrameHeader(out, len(frame)), frame...)
	}
	g.Write(out)
	g.Close()
}

// unannounce ends n/x on the announce stream.
func (p *jsPeer) unannounce() {
	(<-p.announce).Write(wire.AppendMessage(nil, wire.AppendAnnounce(nil, wire.Announce{Active: false, Suffix: "x"}, p.f)))
}

// readAll reads a subscription's groups until it ends, failing on any
// other end than io.EOF.
func readAll(t *testing.T, ctx context.Context, sub *moqlite.Subscription, why string) map[uint64][]string {
	t.Helper()
	got := map[uint64][]string{}
	for {
		g, err := sub.NextGroup(ctx)
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("the relayed subscription, after %v: %v; want its end %s", got, err, why)
		}
		frames, _ := readGroup(ctx, g)
		for _, f := range frames {
			got[g.Sequence] = append(got[g.Sequence], string(f))
		}
	}
}

// A peer that ends its broadcast by unannouncing it alone, leaving the
// server's subscriptions to it open (as @moq/lite does when an
// application closes its Broadcast but not the Tracks it was asked for),
// still ends the relay: each relayed subscription ends after the groups
// sent before the unannounce, and the relayed broadcast is unannounced.
func TestIngestEndsTheRelayWhenThePeerUnannounces(t *testing.T) {
	agg := moqlite.NewServer(moqlite.ServerConfig{Ingest: &moqlite.IngestConfig{Prefix: "n", Tracks: []string{"t"}}})
	defer agg.Close()
	ctx := timeout(t, 10*time.Second)
	peer := newJSPeer(t, ctx, agg)
	ann, sub := subscribeRelayed(t, ctx, agg)
	peer.group(ctx, peer.subscribed(ctx, 1)["t"], 4, "f0", "f1")
	peer.unannounce() // and the subscription left open

	got := readAll(t, ctx, sub, "after the peer's unannounce")
	if want := map[uint64][]string{4: {"f0", "f1"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("relayed groups %v, want %v", got, want)
	}
	if a, err := ann.Next(ctx); err != nil || a.Path != "n/x" || a.Active {
		t.Fatalf("announce %+v, %v; want n/x ended", a, err)
	}
}

// A subscription the peer resets while its session stays up (how
// @moq/lite refuses a track it does not publish, after SUBSCRIBE_OK) ends
// that track, not the session: once the peer ends its other tracks, the
// relayed broadcast ends at once, not after Linger as for a lost session.
func TestIngestTakesAResetSubscriptionForATrackEnded(t *testing.T) {
	agg := moqlite.NewServer(moqlite.ServerConfig{Ingest: &moqlite.IngestConfig{Prefix: "n", Tracks: []string{"t", "absent"}, Linger: time.Minute}})
	defer agg.Close()
	ctx := timeout(t, 10*time.Second)
	peer := newJSPeer(t, ctx, agg)
	ann, sub := subscribeRelayed(t, ctx, agg)
	subs := peer.subscribed(ctx, 2)
	peer.group(ctx, subs["t"], 0, "f0")
	subs["absent"].stream.Reset(moqlite.CodeNotFound)
	subs["t"].stream.Close() // the peer ends its track

	got := readAll(t, ctx, sub, "once the peer ended its only track")
	if want := map[uint64][]string{0: {"f0"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("relayed groups %v, want %v", got, want)
	}
	if a, err := ann.Next(ctx); err != nil || a.Path != "n/x" || a.Active {
		t.Fatalf("announce %+v, %v; want n/x ended", a, err)
	}
}
