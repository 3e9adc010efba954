package moqstats_test

import (
	"context"
	"fmt"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/memorigin"
)

// A relay counts one viewer watching one broadcast and publishes the
// counts. A real relay passes its own origin and leaves Interval at its
// one-second default; Flush runs a pass now so the example can print it.
func Example() {
	origin := memorigin.New()
	stats, err := moqstats.New(moqstats.Config{Origin: origin, Node: "sjc/1"})
	if err != nil {
		panic(err)
	}
	defer stats.Close()

	// Per viewer session: a tier-scoped handle, the session's presence,
	// and its egress subscriptions.
	ext := stats.Tier(moqstats.External)
	session := ext.Session("acme")
	defer session.Close()
	viewer := ext.PublisherBroadcasts()

	// The broadcast is announced to the session, which subscribes.
	announce := ext.Broadcast("acme/live").Publisher()
	defer announce.Close()
	sub := viewer.Subscribe("acme/live")
	defer sub.Close()

	// Per subscribed track: bump once per group, frame and payload.
	track := announce.Track("video")
	defer track.Close()
	track.Group()
	track.Frame()
	track.Bytes(1200)

	if err := stats.Flush(); err != nil {
		panic(err)
	}
	fmt.Println(stats.Path())
	frame, _ := origin.Latest(stats.Path(), moqstats.TrackPublisher)
	fmt.Println(string(frame))
	frame, _ = origin.Latest(stats.Path(), moqstats.TrackSessions)
	fmt.Println(string(frame))
	// Output:
	// .stats/node/sjc/1
	// {"acme/live":{"announced":1,"announced_closed":0,"broadcasts":1,"broadcasts_closed":0,"subscriptions":1,"subscriptions_closed":0,"bytes":1200,"frames":1,"groups":1}}
	// {"acme":{"sessions":1,"sessions_closed":0}}
}

// A consumer (a dashboard, billing) subscribes to a stats track: it reads
// the latest frame, then each changed one.
func Example_consumer() {
	origin := memorigin.New()
	stats, err := moqstats.New(moqstats.Config{Origin: origin})
	if err != nil {
		panic(err)
	}
	sub, err := origin.Subscribe(stats.Path(), moqstats.TrackSubscriber)
	if err != nil {
		panic(err)
	}

	ingest := stats.Tier(moqstats.External).Broadcast("cam/1")
	announce := ingest.Subscriber()
	track := announce.Track("video")
	track.Bytes(500)
	track.Close()
	announce.Close()
	stats.Close() // the final pass writes the closing counts

	for {
		frame, err := sub.Next(context.Background())
		if err != nil {
			break // io.EOF: the broadcast closed
		}
		fmt.Println(string(frame))
	}
	// Output:
	// {}
	// {"cam/1":{"announced":1,"announced_closed":1,"broadcasts":0,"broadcasts_closed":0,"subscriptions":1,"subscriptions_closed":1,"bytes":500,"frames":0,"groups":0}}
}

// Without an Origin, stats are disabled: every guard is nil and every call
// a no-op, so call sites need no branches.
func ExampleConfig_disabled() {
	stats, _ := moqstats.New(moqstats.Config{Interval: 5 * time.Second})
	track := stats.Tier(moqstats.External).Broadcast("x").PublisherTrack("video")
	track.Bytes(1200) // no-op on a nil guard
	track.Close()
	fmt.Println(stats.Enabled(), track == nil)
	// Output: false true
}
