package httpstats_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moqstats/moqstats/httpstats"
)

func TestNewRejectsNegativeOptions(t *testing.T) {
	for _, opts := range []httpstats.Options{
		{MaxStreams: -1},
		{StreamBuffer: -1},
		{Heartbeat: -time.Second},
		{Retry: -time.Second},
		{WriteTimeout: -time.Second},
	} {
		if o, err := httpstats.New(opts); err == nil {
			t.Errorf("New(%+v) = %v, nil; want an error", opts, o)
		}
	}
}

func TestPublishValidatesTracks(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	for _, tc := range []struct {
		tracks []string
		want   string
	}{
		{nil, "no tracks"},
		{[]string{"a", ""}, "track 1 has an empty name"},
		{[]string{"a", "b", "a"}, `duplicate track "a"`},
		{[]string{strings.Repeat("x", httpstats.MaxTrackName+1)}, "MaxTrackName"},
	} {
		bc, err := o.Publish("p", tc.tracks)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Publish(p, %d tracks) = %v, %v; want an error containing %q", len(tc.tracks), bc, err, tc.want)
		}
	}
	if _, ok := o.Path(); ok {
		t.Error("Path() reports a broadcast after only failed publishes, want none")
	}
	// The longest name that is allowed is reachable over HTTP.
	publish(t, o, "p", strings.Repeat("x", httpstats.MaxTrackName))
}

func TestOneBroadcastAtATime(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	b := publish(t, o, "first", "t")
	if bc, err := o.Publish("second", []string{"t"}); !errors.Is(err, httpstats.ErrAnnounced) {
		t.Fatalf("second Publish = %v, %v; want an error wrapping ErrAnnounced", bc, err)
	}
	if p, ok := o.Path(); !ok || p != "first" {
		t.Errorf("Path() = %q, %v; want \"first\", true", p, ok)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close() error = %v, want nil", err)
	}
	if _, ok := o.Path(); ok {
		t.Error("Path() after Close reports a broadcast, want none")
	}
	b2 := publish(t, o, "second", "t")
	if got := b2.Path(); got != "second" {
		t.Errorf("Path() of the new broadcast = %q, want \"second\"", got)
	}
	if got, want := b2.Tracks(), []string{"t"}; !slices.Equal(got, want) {
		t.Errorf("Tracks() = %q, want %q", got, want)
	}
}

func TestWriteErrors(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	b := publish(t, o, "p", "a.json", "a.json.z")
	if err := b.WriteFrame("nope", []byte("x")); !errors.Is(err, httpstats.ErrUnknownTrack) {
		t.Errorf("WriteFrame(unknown track) error = %v, want ErrUnknownTrack", err)
	}
	if err := b.AppendFrame("nope", []byte("x")); !errors.Is(err, httpstats.ErrUnknownTrack) {
		t.Errorf("AppendFrame(unknown track) error = %v, want ErrUnknownTrack", err)
	}
	if err := b.AppendFrame("a.json.z", []byte("x")); !errors.Is(err, httpstats.ErrNoGroup) {
		t.Errorf("AppendFrame before any WriteFrame error = %v, want ErrNoGroup", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close() error = %v, want nil", err)
	}
	if !b.Closed() {
		t.Error("Closed() after Close = false, want true")
	}
	if err := b.WriteFrame("a.json", []byte("x")); !errors.Is(err, httpstats.ErrClosed) {
		t.Errorf("WriteFrame after Close error = %v, want ErrClosed", err)
	}
	if err := b.AppendFrame("a.json.z", []byte("x")); !errors.Is(err, httpstats.ErrClosed) {
		t.Errorf("AppendFrame after Close error = %v, want ErrClosed", err)
	}
	if err := b.Close(); !errors.Is(err, httpstats.ErrClosed) {
		t.Errorf("second Close() error = %v, want ErrClosed", err)
	}
}

func TestGroupHoldsAtMostMaxGroupFrames(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	b := publish(t, o, "p", "t.z")
	write(t, b, "t.z", "0")
	for i := 1; i < httpstats.MaxGroupFrames; i++ {
		appendFrame(t, b, "t.z", "d")
	}
	if err := b.AppendFrame("t.z", []byte("over")); !errors.Is(err, httpstats.ErrGroupFull) {
		t.Fatalf("AppendFrame on a group of %d frames error = %v, want ErrGroupFull", httpstats.MaxGroupFrames, err)
	}
	// A new group takes appends again.
	write(t, b, "t.z", "0")
	appendFrame(t, b, "t.z", "d")
}
