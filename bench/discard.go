package bench

import (
	"strings"
	"sync/atomic"

	"github.com/moqstats/moqstats"
)

// Discard is an Origin whose broadcast drops frames, counting bytes, so a
// benchmark measures the stats pass and not a transport. Frames and Bytes
// count the plain tracks, ZFrames and ZBytes the compressed siblings.
type Discard struct {
	Frames, Bytes   atomic.Int64
	ZFrames, ZBytes atomic.Int64
}

// Publish implements moqstats.Origin.
func (d *Discard) Publish(string, []string) (moqstats.Broadcast, error) {
	return discardBroadcast{d}, nil
}

type discardBroadcast struct{ d *Discard }

func (b discardBroadcast) WriteFrame(track string, frame []byte) error {
	if strings.HasSuffix(track, moqstats.CompressedSuffix) {
		b.d.ZFrames.Add(1)
		b.d.ZBytes.Add(int64(len(frame)))
		return nil
	}
	b.d.Frames.Add(1)
	b.d.Bytes.Add(int64(len(frame)))
	return nil
}

// AppendFrame implements moqstats.Appender: only compressed tracks append.
func (b discardBroadcast) AppendFrame(track string, frame []byte) error {
	return b.WriteFrame(track, frame)
}

func (discardBroadcast) Close() error { return nil }
