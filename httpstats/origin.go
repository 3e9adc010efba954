package httpstats

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqstats/moqstats"
)

// Defaults for the zero fields of Options.
const (
	DefaultMaxStreams   = 256
	DefaultStreamBuffer = 64
	DefaultHeartbeat    = 15 * time.Second
	DefaultRetry        = 3 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	// DefaultStreamBytes caps the frame bytes one stream holds, queued
	// or being written: 8 MiB, some 40 frames of a node with a thousand
	// broadcasts.
	DefaultStreamBytes = 8 << 20
	// DefaultQueueBytes caps the frame bytes all streams of an Origin
	// hold, queued or being written.
	DefaultQueueBytes = 64 << 20
)

// Limits on what a writer and a request may carry.
const (
	// MaxGroupFrames is the most frames a group holds: its first frame
	// from WriteFrame and up to MaxGroupFrames-1 from AppendFrame.
	MaxGroupFrames = 256
	// MaxTrackName is the longest track name Publish accepts and the
	// longest request path (after the mount point) the handler serves;
	// a longer path is answered 414.
	MaxTrackName = 1024
	// MaxHeader is the longest Accept or If-None-Match header the handler
	// reads; a longer one is answered 431.
	MaxHeader = 4096
	// MaxLastEventID is the longest Last-Event-ID header the handler
	// reads; a longer one is answered 431. An id the handler wrote is at
	// most 24 bytes.
	MaxLastEventID = 64
)

var (
	// ErrAnnounced is returned by Publish while an earlier broadcast is
	// still announced: an Origin serves one broadcast at a time.
	ErrAnnounced = errors.New("httpstats: a broadcast is already announced")
	// ErrClosed is returned by WriteFrame, AppendFrame and Close on a
	// closed broadcast.
	ErrClosed = errors.New("httpstats: broadcast closed")
	// ErrUnknownTrack is returned by WriteFrame and AppendFrame for a
	// track the broadcast was not published with.
	ErrUnknownTrack = errors.New("httpstats: unknown track")
	// ErrNoGroup is returned by AppendFrame on a track no WriteFrame has
	// started a group on.
	ErrNoGroup = errors.New("httpstats: no group to append to")
	// ErrGroupFull is returned by AppendFrame on a group that already
	// holds MaxGroupFrames frames; start a new group with WriteFrame.
	ErrGroupFull = errors.New("httpstats: group full")
	// ErrUnauthorized, returned (or wrapped) by Options.Authorize, makes
	// the handler answer 401 Unauthorized; any other error is 403.
	ErrUnauthorized = errors.New("httpstats: unauthorized")
)

var (
	_ moqstats.Origin    = (*Origin)(nil)
	_ moqstats.Broadcast = (*Broadcast)(nil)
	_ http.Handler       = (*Origin)(nil)
)

// Options configure an Origin. The zero value means every default.
type Options struct {
	// MaxStreams caps the event streams open at once; a stream request
	// beyond it is answered 503 with Retry-After. 0 means
	// DefaultMaxStreams.
	MaxStreams int
	// StreamBuffer is how many events may wait for one stream's client.
	// When a new event finds the buffer full, the buffered events are
	// dropped and the client is resynchronized (see the package doc). 0
	// means DefaultStreamBuffer.
	StreamBuffer int
	// StreamBytes caps the bytes of the frames one stream holds, queued
	// for its client or taken to be written: a frame that would take it
	// past the cap is not queued and the stream resynchronizes, as for a
	// full StreamBuffer. 0 means DefaultStreamBytes.
	StreamBytes int
	// QueueBytes caps the same bytes summed over all streams. A frame
	// that would take the sum past it first drops the queues of the
	// streams holding the most queued bytes (the readers furthest
	// behind), slowest first, which resynchronize; if that is not
	// enough, the stream it was for resynchronizes. See "Slow clients"
	// in the package doc for what this bounds. 0 means
	// DefaultQueueBytes.
	QueueBytes int
	// Heartbeat is how long a stream stays silent before a ": ping"
	// comment keeps proxies from timing it out. 0 means
	// DefaultHeartbeat.
	Heartbeat time.Duration
	// Retry is the reconnection delay a stream sends in its "retry:"
	// field; rounded up to whole seconds, it is also the Retry-After of
	// a 503. 0 means DefaultRetry.
	Retry time.Duration
	// WriteTimeout bounds every write to a stream's client: a client
	// that takes longer to accept one event, or heartbeat, loses its
	// stream. It is what ends the stream of a client that stopped
	// reading but keeps its connection open. 0 means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Authorize, if set, runs on every GET and HEAD request before
	// anything about the broadcast is looked up. An error that is (or
	// wraps) ErrUnauthorized is answered 401 with WWW-Authenticate, any
	// other error 403; the response names neither the error nor the
	// broadcast. The request is the one the handler receives, so its
	// URL.Path is "/" or "/<track>" relative to the mount point.
	Authorize func(*http.Request) error
	// Challenge is the WWW-Authenticate value of a 401. "" means
	// `Bearer realm="moqstats"`.
	Challenge string
}

// Origin announces one stats broadcast at a time and serves its tracks
// over HTTP. It implements moqstats.Origin and http.Handler. Make one with
// New; the zero value is not usable.
type Origin struct {
	opts Options // defaults applied; immutable
	// id tells Origins, and processes, apart in ETags; immutable.
	id string
	// now is time.Now; tests replace it before the first Publish.
	now func() time.Time
	// shutdown is closed by Shutdown; stream handlers select on it.
	shutdown chan struct{}

	// mu guards the fields below. Lock order: Origin.mu before
	// Broadcast.mu (Publish, Close and subscribe take both).
	mu sync.Mutex
	// current is the announced broadcast, nil when none is. A closed
	// broadcast is never current: Close clears it under both locks.
	current *Broadcast
	// incarnations counts successful Publish calls; each broadcast's
	// ETags carry its number, so they never repeat across broadcasts.
	incarnations uint64
	// nextGroup is one more than the largest group sequence number any
	// closed broadcast used, so a new broadcast's groups are all newer.
	nextGroup uint64
	// streams counts open event streams, capped by opts.MaxStreams.
	streams    int
	isShutdown bool

	// held is the bytes of frames held by all streams, queued or taken
	// and not yet written (see stream.queued and stream.inflight), capped
	// by opts.QueueBytes. Streams change it under their broadcast's mu;
	// atomic since streams of a closed broadcast release theirs under
	// its own.
	held atomic.Int64
}

// New returns an Origin with the given options. It fails if a count or a
// duration in opts is negative.
func New(opts Options) (*Origin, error) {
	switch {
	case opts.MaxStreams < 0:
		return nil, fmt.Errorf("httpstats: negative MaxStreams %d", opts.MaxStreams)
	case opts.StreamBuffer < 0:
		return nil, fmt.Errorf("httpstats: negative StreamBuffer %d", opts.StreamBuffer)
	case opts.StreamBytes < 0:
		return nil, fmt.Errorf("httpstats: negative StreamBytes %d", opts.StreamBytes)
	case opts.QueueBytes < 0:
		return nil, fmt.Errorf("httpstats: negative QueueBytes %d", opts.QueueBytes)
	case opts.Heartbeat < 0:
		return nil, fmt.Errorf("httpstats: negative Heartbeat %v", opts.Heartbeat)
	case opts.Retry < 0:
		return nil, fmt.Errorf("httpstats: negative Retry %v", opts.Retry)
	case opts.WriteTimeout < 0:
		return nil, fmt.Errorf("httpstats: negative WriteTimeout %v", opts.WriteTimeout)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&opts.MaxStreams, DefaultMaxStreams)
	def(&opts.StreamBuffer, DefaultStreamBuffer)
	def(&opts.StreamBytes, DefaultStreamBytes)
	def(&opts.QueueBytes, DefaultQueueBytes)
	defDur(&opts.Heartbeat, DefaultHeartbeat)
	defDur(&opts.Retry, DefaultRetry)
	defDur(&opts.WriteTimeout, DefaultWriteTimeout)
	if opts.Challenge == "" {
		opts.Challenge = `Bearer realm="moqstats"`
	}
	var id [8]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	return &Origin{
		opts:     opts,
		id:       hex.EncodeToString(id[:]),
		now:      time.Now,
		shutdown: make(chan struct{}),
	}, nil
}

// Publish announces the broadcast at path carrying tracks, and serves it
// until its Close. It fails with ErrAnnounced while another broadcast is
// announced, and with a descriptive error if tracks is empty or has an
// empty, repeated or over-long (MaxTrackName) name. The returned value is
// a *Broadcast. Publish keeps working after Shutdown, which only ends the
// HTTP streams.
func (o *Origin) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	if len(tracks) == 0 {
		return nil, fmt.Errorf("httpstats: publish %q: no tracks", path)
	}
	byName := make(map[string]*track, len(tracks))
	for i, name := range tracks {
		switch {
		case name == "":
			return nil, fmt.Errorf("httpstats: publish %q: track %d has an empty name", path, i)
		case len(name) > MaxTrackName:
			return nil, fmt.Errorf("httpstats: publish %q: track %d name is %d bytes, more than MaxTrackName (%d)", path, i, len(name), MaxTrackName)
		}
		if _, dup := byName[name]; dup {
			return nil, fmt.Errorf("httpstats: publish %q: duplicate track %q", path, name)
		}
		byName[name] = &track{name: name, kind: kindOf(name), index: i}
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	if o.current != nil {
		return nil, fmt.Errorf("%w: cannot publish %q while %q is", ErrAnnounced, path, o.current.path)
	}
	o.incarnations++
	// Groups start at the wall clock in milliseconds, or after the last
	// broadcast's groups if that is later. Within an Origin group numbers
	// so only grow; across a restart they grow too unless the previous
	// process wrote more than one group per millisecond. Either way a
	// Last-Event-ID from an earlier broadcast names an older group, and
	// a reconnecting client is sent the current state rather than
	// nothing.
	first := o.nextGroup
	if ms := o.now().UnixMilli(); ms > 0 {
		first = max(first, uint64(ms))
	}
	b := &Broadcast{
		origin:     o,
		path:       path,
		names:      slices.Clone(tracks),
		etagPrefix: fmt.Sprintf(`"%s.%d.`, o.id, o.incarnations),
		firstGroup: first,
		tracks:     byName,
	}
	o.current = b
	return b, nil
}

// Shutdown ends every open event stream and makes new stream requests
// fail with 503. It does not wait for the stream handlers to return;
// http.Server.Shutdown does. Register it with the server so its Shutdown
// ends the streams it does not close by itself:
//
//	srv.RegisterOnShutdown(origin.Shutdown)
//
// Plain GETs keep working, and so do Publish and the broadcast's writes,
// so a Stats publishing through a fanout is not disturbed. Shutdown is
// idempotent and cannot be undone.
func (o *Origin) Shutdown() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.isShutdown {
		o.isShutdown = true
		close(o.shutdown)
	}
}

// Streams returns the number of event streams open now.
func (o *Origin) Streams() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.streams
}

// Path returns the path of the announced broadcast and true, or "" and
// false when none is announced.
func (o *Origin) Path() (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.current == nil {
		return "", false
	}
	return o.current.path, true
}
