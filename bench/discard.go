package bench

import (
	"sync/atomic"

	"github.com/moqstats/moqstats"
)

// Discard is an Origin whose broadcast drops frames, counting bytes, so a
// benchmark measures the stats pass and not a transport.
type Discard struct {
	Frames, Bytes atomic.Int64
}

// Publish implements moqstats.Origin.
func (d *Discard) Publish(string, []string) (moqstats.Broadcast, error) {
	return discardBroadcast{d}, nil
}

type discardBroadcast struct{ d *Discard }

func (b discardBroadcast) WriteFrame(_ string, frame []byte) error {
	b.d.Frames.Add(1)
	b.d.Bytes.Add(int64(len(frame)))
	return nil
}

func (discardBroadcast) Close() error { return nil }
