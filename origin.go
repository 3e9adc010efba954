package moqstats

// Origin is where the stats broadcast is announced. A relay passes its own
// origin (the thing that routes broadcasts to subscribers); tests and the
// demo use the in-memory one in package memorigin.
type Origin interface {
	// Publish announces the stats broadcast at path carrying these tracks,
	// in this order: publisher.json, subscriber.json,
	// internal/publisher.json, internal/subscriber.json, sessions.json,
	// internal/sessions.json, with Config.Compressed each followed by its
	// ".z" sibling. Each track must keep its latest group so a subscriber
	// that joins late still reads a baseline.
	Publish(path string, tracks []string) (Broadcast, error)
}

// Broadcast is the stats broadcast returned by Origin.Publish.
type Broadcast interface {
	// WriteFrame writes frame to track as a new group holding just this
	// frame. The frame is valid only during the call: an implementation
	// that keeps it must copy it. A returned error means the frame did not
	// reach the track; Stats retries on its next pass.
	WriteFrame(track string, frame []byte) error
	// Close unannounces the broadcast.
	Close() error
}

// Appender is implemented by a Broadcast whose tracks hold several frames
// per group, which compressed tracks need (Config.Compressed): a group's
// first frame is written with WriteFrame, and AppendFrame appends later
// ones to the track's current group, in order. Its frame, too, is valid
// only during the call. An error means the frame did not reach the track;
// Stats then starts a new group.
type Appender interface {
	AppendFrame(track string, frame []byte) error
}
