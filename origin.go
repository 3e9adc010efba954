package moqstats

// Origin is where the stats broadcast is announced. A relay passes its own
// origin (the thing that routes broadcasts to subscribers); tests and the
// demo use the in-memory one in package memorigin.
type Origin interface {
	// Publish announces the stats broadcast at path carrying these tracks,
	// in this order: publisher.json, subscriber.json,
	// internal/publisher.json, internal/subscriber.json, sessions.json,
	// internal/sessions.json. Each track must keep its latest frame so a
	// subscriber that joins late still reads a baseline.
	Publish(path string, tracks []string) (Broadcast, error)
}

// Broadcast is the stats broadcast returned by Origin.Publish.
type Broadcast interface {
	// WriteFrame appends frame to track. The frame is valid only during
	// the call: an implementation that keeps it must copy it. A returned
	// error means the frame did not reach the track; Stats retries on its
	// next pass.
	WriteFrame(track string, frame []byte) error
	// Close unannounces the broadcast.
	Close() error
}
