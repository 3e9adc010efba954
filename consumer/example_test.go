package consumer_test

import (
	"context"
	"fmt"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/memorigin"
)

func ExampleDecodeTraffic() {
	frame := []byte(`{"acme/live":{"announced":1,"announced_closed":0,"broadcasts":3,"broadcasts_closed":1,"subscriptions":4,"subscriptions_closed":2,"bytes":4096,"frames":40,"groups":2}}`)
	f, err := consumer.DecodeTraffic(frame)
	if err != nil {
		panic(err)
	}
	live := f["acme/live"]
	fmt.Println("bytes:", live.Bytes, "viewers:", live.Viewers())

	_, err = consumer.DecodeTraffic([]byte(`{"acme/live":{"bytes":-1}}`))
	fmt.Println(err)
	// Output:
	// bytes: 4096 viewers: 2
	// consumer: invalid frame: invalid counter: entry "acme/live" member "bytes": negative number -1
}

// An Aggregator fed frames by hand: a counter going down starts a new
// segment, and the lifetime total sums the last value of each.
func ExampleAggregator() {
	agg, err := consumer.New(consumer.Config{})
	if err != nil {
		panic(err)
	}
	t0 := time.Unix(0, 0)
	for i, frame := range []string{
		`{"acme/live":{"broadcasts":2,"bytes":1000}}`,
		`{"acme/live":{"broadcasts":2,"bytes":3000}}`,
		`{"acme/live":{"broadcasts":1,"bytes":500}}`, // collected and re-created
	} {
		if err := agg.Observe("sjc/1", "publisher.json", t0.Add(time.Duration(i)*time.Second), []byte(frame)); err != nil {
			panic(err)
		}
	}
	v := agg.View(t0.Add(2 * time.Second))
	row := v.Broadcasts[0]
	rate, _ := row.Rate(consumer.Bytes)
	fmt.Println("lifetime bytes:", row.Total.Bytes, "in", row.Segments, "segments")
	fmt.Println("bytes/s:", rate)
	fmt.Println("viewers now:", v.Viewers("", "acme/live"))
	// Output:
	// lifetime bytes: 3500 in 2 segments
	// bytes/s: 500
	// viewers now: 1
}

// In process: an Origin that feeds the Aggregator from the Stats' own
// writes, and publishes through the relay's origin as well.
func ExampleNewOrigin() {
	agg, err := consumer.New(consumer.Config{})
	if err != nil {
		panic(err)
	}
	relay := memorigin.New() // the relay's own origin
	stats, err := moqstats.New(moqstats.Config{Origin: consumer.NewOrigin(relay, agg, consumer.OriginOptions{}), Node: "sjc/1"})
	if err != nil {
		panic(err)
	}
	ext := stats.Tier(moqstats.External)
	session := ext.Session("acme")
	viewer := ext.PublisherBroadcasts().Subscribe("acme/live")
	track := ext.Broadcast("acme/live").PublisherTrack("video")
	track.Bytes(1500)
	if err := stats.Flush(); err != nil {
		panic(err)
	}

	v := agg.View(time.Now())
	fmt.Println("egress bytes:", v.Total("", consumer.Publisher).Bytes)
	fmt.Println("viewers:", v.TotalViewers(""), "sessions:", v.LiveSessions("", "acme"))

	track.Close()
	viewer.Close()
	session.Close()
	_ = stats.Close()
	v = agg.View(time.Now())
	fmt.Println("after close: bytes", v.Total("", consumer.Publisher).Bytes, "viewers", v.TotalViewers(""))
	// Output:
	// egress bytes: 1500
	// viewers: 1 sessions: 1
	// after close: bytes 1500 viewers 0
}

// Following a node's tracks through subscriptions: here the in-memory
// origin's, which is a Source.
func ExampleFollow() {
	origin := memorigin.New()
	stats, err := moqstats.New(moqstats.Config{Origin: origin, Node: "lhr"})
	if err != nil {
		panic(err)
	}
	agg, err := consumer.New(consumer.Config{})
	if err != nil {
		panic(err)
	}
	node, _ := consumer.NodeName("", stats.Path())
	sub, err := origin.Subscribe(stats.Path(), moqstats.TrackSubscriber)
	if err != nil {
		panic(err)
	}
	done := make(chan error)
	go func() {
		done <- consumer.Follow(context.Background(), agg, node, moqstats.TrackSubscriber, sub, consumer.FollowOptions{})
	}()

	track := stats.Tier(moqstats.External).Broadcast("acme/live").SubscriberTrack("video")
	track.Bytes(9000)
	track.Close()
	_ = stats.Close() // final pass, then the broadcast closes and Follow returns
	fmt.Println("follow:", <-done)
	fmt.Println(node, "ingress bytes:", agg.View(time.Now()).Total("", consumer.Subscriber).Bytes)
	// Output:
	// follow: <nil>
	// lhr ingress bytes: 9000
}
