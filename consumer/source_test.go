package consumer

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// scriptedSource delivers its frames in the order given, then io.EOF, as
// a transport whose groups arrive out of order (one stream each) would.
type scriptedSource struct{ frames []Frame }

func (s *scriptedSource) Next(ctx context.Context) ([]byte, error) {
	f, err := s.NextFrame(ctx)
	return f.Data, err
}

func (s *scriptedSource) NextFrame(context.Context) (Frame, error) {
	if len(s.frames) == 0 {
		return Frame{}, io.EOF
	}
	f := s.frames[0]
	s.frames = s.frames[1:]
	return f, nil
}

// A plain frame of a group older than one already applied is a cumulative
// value older than the Aggregator's: it is ErrFrameOrder and changes
// nothing, where applied it would read as a reset and count twice.
func TestFollowRejectsAStalePlainFrame(t *testing.T) {
	agg := newAgg(t, Config{})
	src := &scriptedSource{frames: []Frame{
		{Group: 0, Index: 0, Data: bytesFrame("a", 10)},
		{Group: 2, Index: 0, Data: bytesFrame("a", 30)},
		{Group: 1, Index: 0, Data: bytesFrame("a", 20)}, // arrived late
		{Group: 2, Index: 0, Data: bytesFrame("a", 30)}, // a replay
		{Group: 2, Index: 1, Data: bytesFrame("a", 35)},
	}}
	var errs []error
	err := Follow(context.Background(), agg, "n", "publisher.json", src, FollowOptions{Now: func() time.Time { return at(1) }, OnError: func(err error) { errs = append(errs, err) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 2 {
		t.Fatalf("reported %v, want the late frame and the replay", errs)
	}
	for _, err := range errs {
		if !errors.Is(err, ErrFrameOrder) {
			t.Fatalf("reported %v, want ErrFrameOrder", err)
		}
	}
	v := agg.View(at(2))
	if r := row(t, v, "n", "a"); r.Total.Bytes != 35 || r.Segments != 1 {
		t.Fatalf("total %d bytes in %d segments, want 35 in 1", r.Total.Bytes, r.Segments)
	}
	// Group 1 was skipped on the way to 2: one Gap, and none for the
	// frames refused.
	if len(v.Tracks) != 1 || v.Tracks[0].Gaps != 1 {
		t.Fatalf("tracks %+v, want one with 1 gap", v.Tracks)
	}
}
