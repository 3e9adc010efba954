package httpstats_test

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/fanout"
	"github.com/moqstats/moqstats/httpstats"
	"github.com/moqstats/moqstats/memorigin"
)

// TestStatsThroughFanoutServesMemoriginsFrames drives a real Stats
// through a fanout into memorigin and httpstats, and checks that HTTP
// serves exactly the frames memorigin holds: the listing, every GET, and
// every stream event, up to the end event after Stats.Close.
func TestStatsThroughFanoutServesMemoriginsFrames(t *testing.T) {
	mem := memorigin.New()
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	c := ts.Client()
	stats, err := moqstats.New(moqstats.Config{Origin: fanout.New(mem, o), Node: "sjc/1", Interval: time.Hour})
	if err != nil {
		t.Fatalf("moqstats.New through fanout: %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			stats.Close()
		}
	}()

	resp, body := get(t, c, "GET", ts.URL+"/stats/")
	var list struct {
		Path   string
		Tracks []string
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET / = %d %q (%v), want the listing", resp.StatusCode, body, err)
	}
	if list.Path != stats.Path() || !slices.Equal(list.Tracks, moqstats.Tracks()) {
		t.Errorf("listing = %q %q, want %q %q", list.Path, list.Tracks, stats.Path(), moqstats.Tracks())
	}

	// One stream and one memorigin subscription per track, both started
	// at the baseline frame.
	streams := map[string]*sseStream{}
	subs := map[string]*memorigin.Subscription{}
	httpFrames := map[string][]string{}
	memFrames := map[string][]string{}
	ctx, cancel := context.WithTimeout(context.Background(), safety)
	defer cancel()
	for _, track := range moqstats.Tracks() {
		streams[track] = openStream(t, c, ts.URL+"/stats/"+track)
		httpFrames[track] = append(httpFrames[track], streams[track].next(t).Data)
		sub, err := mem.Subscribe(stats.Path(), track)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		subs[track] = sub
		f, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		memFrames[track] = append(memFrames[track], string(f))
	}

	// Traffic on all four (tier, role) slots and sessions in both tiers,
	// so every track gets frames after the baseline.
	ext, internal := stats.Tier(moqstats.External), stats.Tier(moqstats.Internal)
	session := ext.Session("acme")
	peer := internal.Session("")
	viewer := ext.PublisherBroadcasts().Subscribe("acme/live")
	guards := []*moqstats.TrackGuard{
		ext.Broadcast("acme/live").PublisherTrack("video"),
		ext.Broadcast("acme/in").SubscriberTrack("video"),
		internal.Broadcast("acme/live").PublisherTrack("video"),
		internal.Broadcast("acme/live").SubscriberTrack("video"),
	}
	for round := range 5 {
		for i, g := range guards {
			g.Group()
			g.Frame()
			g.Bytes(uint64(1000*(round+1) + i))
		}
		if round == 3 {
			viewer.Close()
			session.Close()
		}
		if err := stats.Flush(); err != nil {
			t.Fatalf("Flush round %d: %v", round, err)
		}
		for _, track := range moqstats.Tracks() {
			want, _ := mem.Latest(stats.Path(), track)
			resp, body := get(t, c, "GET", ts.URL+"/stats/"+track)
			if resp.StatusCode != 200 || body != string(want) {
				t.Errorf("round %d: GET %s = %d %q, want memorigin's latest %q", round, track, resp.StatusCode, body, want)
			}
		}
	}
	for _, g := range guards {
		g.Close()
	}
	peer.Close()
	if err := stats.Close(); err != nil {
		t.Fatalf("Stats.Close: %v", err)
	}
	closed = true

	for _, track := range moqstats.Tracks() {
		for {
			ev := streams[track].next(t)
			if ev.Event == "end" {
				break
			}
			httpFrames[track] = append(httpFrames[track], ev.Data)
		}
		for {
			f, err := subs[track].Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: memorigin Next: %v", track, err)
			}
			memFrames[track] = append(memFrames[track], string(f))
		}
		if !slices.Equal(httpFrames[track], memFrames[track]) {
			t.Errorf("%s: stream frames\n%q\nwant memorigin's\n%q", track, httpFrames[track], memFrames[track])
		}
		if len(memFrames[track]) < 2 {
			t.Errorf("%s: only %d frames, want the baseline and later ones", track, len(memFrames[track]))
		}
	}
	resp, _ = get(t, c, "GET", ts.URL+"/stats/")
	if resp.StatusCode != 404 {
		t.Errorf("GET / after Stats.Close: status %d, want 404", resp.StatusCode)
	}
	wantNoStreams(t, o)
}
