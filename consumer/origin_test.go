package consumer_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/memorigin"
)

func TestOriginFeedsOnlyFramesThatReachedTheTrack(t *testing.T) {
	agg, _ := consumer.New(consumer.Config{})
	relay := memorigin.New()
	stats, err := moqstats.New(moqstats.Config{Origin: consumer.NewOrigin(relay, agg, consumer.OriginOptions{}), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := relay.Lookup(stats.Path())
	injected := errors.New("injected")
	b.SetWriteHook(func(string, []byte) error { return injected })
	g := stats.Tier(moqstats.External).Broadcast("a").PublisherTrack("v")
	g.Bytes(10)
	if err := stats.Flush(); !errors.Is(err, injected) {
		t.Fatalf("Flush = %v, want the injected failure", err)
	}
	if got := agg.View(time.Now()).Total("", consumer.Publisher).Bytes; got != 0 {
		t.Fatalf("a refused frame reached the aggregator: %d bytes", got)
	}
	b.SetWriteHook(nil)
	if err := stats.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := agg.View(time.Now()).Total("", consumer.Publisher).Bytes; got != 10 {
		t.Fatalf("after the retry: %d bytes, want 10", got)
	}
	g.Close()
	if err := stats.Close(); err != nil {
		t.Fatal(err)
	}
	v := agg.View(time.Now())
	if len(v.Tracks) != 6 {
		t.Fatalf("%d tracks, want all six", len(v.Tracks))
	}
	for _, tr := range v.Tracks {
		if !tr.Ended || tr.Node != "" {
			t.Errorf("track %+v: want ended, node \"\"", tr)
		}
	}
}

func TestOriginWithoutNextAndWithAWrongPrefix(t *testing.T) {
	agg, _ := consumer.New(consumer.Config{})
	if _, err := moqstats.New(moqstats.Config{Origin: consumer.NewOrigin(nil, agg, consumer.OriginOptions{Prefix: "other"})}); err == nil || !strings.Contains(err.Error(), "not a stats broadcast path") {
		t.Fatalf("New with a mismatched prefix: %v", err)
	}
	stats, err := moqstats.New(moqstats.Config{Origin: consumer.NewOrigin(nil, agg, consumer.OriginOptions{Prefix: "/custom/"}), Prefix: "custom", Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	s := stats.Tier(moqstats.Internal).Session("r")
	if err := stats.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := agg.View(time.Now()).LiveSessions("internal", "r"); got != 1 {
		t.Fatalf("live internal sessions %d, want 1", got)
	}
	s.Close()
	_ = stats.Close()
}
