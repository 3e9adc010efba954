package consumer

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqstats/moqstats/internal/sse"
)

// HTTP follower defaults, applied when the HTTPOptions field is zero.
const (
	DefaultMinBackoff   = 250 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultIdleTimeout  = time.Minute
	DefaultMaxIndexSize = 1 << 20
	DefaultMaxTracks    = 64
)

// HTTPOptions configures FollowHTTP.
type HTTPOptions struct {
	// Client makes the requests; default a client with no overall
	// timeout (streams are long-lived; IdleTimeout guards them) that
	// refuses redirects (ErrRedirect): a node that could redirect its
	// followers could make them send requests to any host they reach. A
	// Client given here follows its own CheckRedirect.
	Client *http.Client
	// Prefix is the producers' prefix, to name the node from the
	// advertised path; "" means moqstats.DefaultPrefix.
	Prefix string
	// Node, if set, names the node instead of the advertised path.
	Node string
	// Compressed follows each track's compressed sibling (".json.z")
	// instead of the plain track, where the index lists both: the same
	// values in fewer bytes on the wire, each event a frame of a group
	// (see "Compressed tracks" in the package doc). A track listed in
	// one flavor only is followed in that one.
	Compressed bool
	// MinBackoff and MaxBackoff bound the wait before a reconnect, which
	// doubles after each failure (with jitter) and restarts from
	// MinBackoff after a stream that delivered an event. A server's
	// retry: hint is honoured within them.
	MinBackoff, MaxBackoff time.Duration
	// IdleTimeout drops a stream that sent nothing, not even a ping, for
	// this long (headers included), and reconnects; it also bounds the
	// index request.
	IdleTimeout time.Duration
	// MaxIndexSize caps the index document; MaxTracks caps the tracks
	// followed per node.
	MaxIndexSize int
	MaxTracks    int
	// Now stamps frames as they arrive; default time.Now.
	Now func() time.Time
	// OnError receives every failure the follower recovers from: requests
	// that failed, streams that broke, frames the Aggregator rejected,
	// tracks skipped. nil drops them.
	OnError func(error)
}

func (o *HTTPOptions) defaults() {
	if o.Client == nil {
		o.Client = &http.Client{CheckRedirect: refuseRedirect}
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxIndexSize <= 0 {
		o.MaxIndexSize = DefaultMaxIndexSize
	}
	if o.MaxTracks <= 0 {
		o.MaxTracks = DefaultMaxTracks
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// refuseRedirect is the default client's CheckRedirect.
func refuseRedirect(req *http.Request, via []*http.Request) error {
	return fmt.Errorf("%w: %s redirected to %s", ErrRedirect, via[len(via)-1].URL.Redacted(), req.URL.Redacted())
}

func (o *HTTPOptions) report(err error) {
	if o.OnError != nil {
		o.OnError(err)
	}
}

// Index is the document a node's stats endpoint serves at its base URL.
type Index struct {
	Path   string   `json:"path"`   // the advertised stats broadcast path
	Tracks []string `json:"tracks"` // its tracks
}

// ErrIdleTimeout is reported (through HTTPOptions.OnError) for a stream
// dropped because nothing arrived for HTTPOptions.IdleTimeout, during
// the response headers or after.
var ErrIdleTimeout = errors.New("consumer: idle timeout")

// ErrRedirect is reported for a request the node answered with a
// redirect, which the default client does not follow.
var ErrRedirect = errors.New("consumer: redirect refused")

// ErrSkippedTrack is reported (through HTTPOptions.OnError) for a track
// the follower does not follow: a name that is not a stats track, or one
// past HTTPOptions.MaxTracks. The flavor of a track not chosen (plain or
// compressed, see HTTPOptions.Compressed) is skipped without a report.
var ErrSkippedTrack = errors.New("consumer: track skipped")

// FollowHTTP follows one node's stats endpoint at base until ctx is done,
// feeding agg, and then returns ctx.Err(). It reads the index at base/,
// then streams one flavor of every track it lists as Server-Sent Events
// from base/<track>, reconnecting with backoff and Last-Event-ID after a
// failure: the plain ".json" track, or with HTTPOptions.Compressed its
// ".json.z" sibling, whose events carry base64 frames placed by their
// G.F ids and are rebuilt with a CompressedTrack (a group the follower
// cannot apply whole is reported, and the track resumes with the next
// group's snapshot). An end event means the broadcast closed: the track
// ends (Aggregator.EndTrack);
// once every track ended the follower reads the index again, with
// backoff, to follow the node when it publishes again. An event id below
// the last one seen means the server serves a new broadcast (the node
// restarted while the follower was away): the track ends before the
// event is applied. Every connection, and every event whose id skips
// frames, is reported to agg as a Gap (see "Followers and lost frames" in
// the package doc). After an end the follower connects without
// Last-Event-ID and skips the ended broadcast's last frame if the server
// serves it again (same id, same bytes); a new broadcast whose first
// frame matches both is skipped too, which costs only that frame's
// resolution, since the next frame carries its counts.
//
// Memory is bounded: an event larger than the Aggregator's frame limit is
// skipped (and reported) without being buffered, a stream keeps at most
// 1 MiB of event buffer between events, the index is capped by
// MaxIndexSize and its tracks by MaxTracks (see "Bounds" in the package
// doc). Errors name the limit they hit: ErrIdleTimeout, ErrRedirect, a
// *FrameError of kind ErrFrameTooLarge, a line without end.
func FollowHTTP(ctx context.Context, agg *Aggregator, base string, opts HTTPOptions) error {
	opts.defaults()
	base = strings.TrimSuffix(base, "/")
	if _, err := url.Parse(base); err != nil {
		return fmt.Errorf("consumer: follow %q: %w", base, err)
	}
	bo := backoff{min: opts.MinBackoff, max: opts.MaxBackoff}
	// Streams outlive one reading of the index: what a stream knows about
	// an ended broadcast must survive until the node publishes again.
	streams := map[[2]string]*stream{}
	for {
		idx, err := fetchIndex(ctx, &opts, base)
		if err == nil {
			var node string
			node, err = nodeOf(&opts, idx)
			if err == nil && followTracks(ctx, agg, &opts, base, node, idx.Tracks, streams) {
				bo.reset()
			}
		}
		if err != nil {
			opts.report(err)
		}
		if !sleep(ctx, bo.next()) {
			return ctx.Err()
		}
	}
}

func nodeOf(opts *HTTPOptions, idx *Index) (string, error) {
	if opts.Node != "" {
		return opts.Node, nil
	}
	node, ok := NodeName(opts.Prefix, idx.Path)
	if !ok {
		return "", fmt.Errorf("consumer: advertised path %q is not a stats broadcast under prefix %q", truncate(idx.Path), opts.Prefix)
	}
	return node, nil
}

func fetchIndex(ctx context.Context, opts *HTTPOptions, base string) (*Index, error) {
	parent := ctx
	ctx, cancel := context.WithTimeoutCause(ctx, opts.IdleTimeout, fmt.Errorf("%w: no index within %v", ErrIdleTimeout, opts.IdleTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
	if err != nil {
		return nil, fmt.Errorf("consumer: index %q: %w", base, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := opts.Client.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && parent.Err() == nil {
			err = fmt.Errorf("%w: %w", cause, err)
		}
		return nil, fmt.Errorf("consumer: index: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("consumer: index %q: %s", base+"/", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(opts.MaxIndexSize)+1))
	if err != nil {
		return nil, fmt.Errorf("consumer: index %q: %w", base+"/", err)
	}
	if len(body) > opts.MaxIndexSize {
		return nil, fmt.Errorf("consumer: index %q: larger than %d bytes", base+"/", opts.MaxIndexSize)
	}
	var idx Index
	if err := json.Unmarshal(body, &idx); err != nil {
		return nil, fmt.Errorf("consumer: index %q: %w", base+"/", err)
	}
	return &idx, nil
}

// followTracks streams node's tracks until every one ended or ctx is done,
// and reports whether any delivered an event.
func followTracks(ctx context.Context, agg *Aggregator, opts *HTTPOptions, base, node string, tracks []string, streams map[[2]string]*stream) bool {
	var wg sync.WaitGroup
	var delivered atomic.Bool
	// One flavor of each track, by its plain name: the preferred flavor
	// if the index lists it, else the other.
	chosen := map[string]Track{}
	var order []string
	for _, name := range tracks {
		t, err := ParseTrack(name)
		if err != nil {
			opts.report(fmt.Errorf("%w: node %q: %w", ErrSkippedTrack, node, err))
			continue
		}
		plain := t.plain().Name()
		if _, ok := chosen[plain]; !ok {
			order = append(order, plain)
			chosen[plain] = t
		} else if t.Compressed == opts.Compressed {
			chosen[plain] = t
		}
	}
	for i, plain := range order {
		if i == opts.MaxTracks {
			opts.report(fmt.Errorf("%w: node %q: more than %d tracks", ErrSkippedTrack, node, opts.MaxTracks))
			break
		}
		t := chosen[plain]
		name := t.Name()
		s := streams[[2]string{node, name}]
		if s == nil {
			if len(streams) >= 4*opts.MaxTracks {
				clear(streams) // a server renaming its node or tracks endlessly
			}
			s = &stream{agg: agg, opts: opts, node: node, track: name, url: base + "/" + escapeTrack(name), feed: newFeed(agg, node, name, t)}
			streams[[2]string{node, name}] = s
		}
		wg.Go(func() {
			if s.run(ctx) {
				delivered.Store(true)
			}
		})
	}
	wg.Wait()
	return delivered.Load()
}

// escapeTrack escapes each segment of a track name for a URL path.
func escapeTrack(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// stream follows one track's event stream across reconnects.
type stream struct {
	agg   *Aggregator
	opts  *HTTPOptions
	node  string
	track string
	url   string

	feed *feed  // applies the track's frames
	buf  []byte // a compressed track's event, base64-decoded

	lastID  string   // the last event id applied, sent as Last-Event-ID
	last    [2]int64 // lastID parsed (group, frame); valid if hasLast
	hasLast bool
	retry   time.Duration // the server's retry: hint; 0 if none
	sum     uint64        // hash of the last frame applied

	// After an end, the id and hash of the ended broadcast's last frame:
	// a server may serve a closed broadcast's latest frame again until
	// the node publishes anew, and that frame is already counted.
	gone    bool
	goneID  string
	goneSum uint64
}

// run streams until the track ends or ctx is done, and reports whether
// any event arrived.
func (s *stream) run(ctx context.Context) (any bool) {
	bo := backoff{min: s.opts.MinBackoff, max: s.opts.MaxBackoff}
	for {
		ended, delivered, err := s.connect(ctx)
		any = any || delivered
		if ended || ctx.Err() != nil {
			return any
		}
		if delivered {
			bo.reset()
		}
		if err != nil {
			s.opts.report(err)
		}
		wait := bo.next()
		if s.retry > 0 {
			wait = min(max(s.retry, s.opts.MinBackoff), s.opts.MaxBackoff)
		}
		if !sleep(ctx, wait) {
			return any
		}
	}
}

// connect makes one request and reads its events. ended reports an end
// event; delivered, that at least one data event arrived.
func (s *stream) connect(ctx context.Context) (ended, delivered bool, err error) {
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return false, false, fmt.Errorf("consumer: node %q track %q: %w", s.node, s.track, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	// The idle timer cancels the request when nothing arrives for too
	// long, headers included: a half-open connection never returns an
	// error by itself. Its cause names the limit, where the request's
	// error would only say "context canceled".
	idle := time.AfterFunc(s.opts.IdleTimeout, func() {
		cancel(fmt.Errorf("%w: nothing for %v", ErrIdleTimeout, s.opts.IdleTimeout))
	})
	defer idle.Stop()
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && parent.Err() == nil {
			err = fmt.Errorf("%w, waiting for the response headers: %w", cause, err)
		}
		return false, false, fmt.Errorf("consumer: node %q track %q: %w", s.node, s.track, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, false, fmt.Errorf("consumer: node %q track %q: %s", s.node, s.track, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, false, fmt.Errorf("consumer: node %q track %q: content type %q, want text/event-stream", s.node, s.track, ct)
	}
	// Frames written while no stream was open are lost, or arrive now,
	// late: no absence is measured across this moment.
	s.gap()

	maxFrame, _, _ := s.agg.cfg.Decoder.limits()
	r := sse.NewReader(resp.Body, maxFrame)
	for {
		ev, err := r.Next(func() { idle.Reset(s.opts.IdleTimeout) })
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && parent.Err() == nil && err != io.EOF {
				err = fmt.Errorf("%w: %w", cause, err)
			}
			return false, delivered, fmt.Errorf("consumer: node %q track %q: stream: %w", s.node, s.track, err)
		}
		if ev.Retry > 0 {
			s.retry = ev.Retry
		}
		if ev.Type == "" && !ev.HasData && !ev.HasID {
			continue // a comment (": ping") or a bare retry:
		}
		if ev.Type == "end" {
			s.feed.end(s.opts.Now())
			if s.lastID != "" {
				s.gone, s.goneID, s.goneSum = true, s.lastID, s.sum
			}
			s.lastID, s.hasLast = "", false // a new broadcast numbers from scratch
			return true, delivered, nil
		}
		if ev.Type != "" && ev.Type != "message" {
			continue
		}
		if s.gone && ev.HasID && ev.ID == s.goneID && !ev.TooLarge && frameSum(ev.Data) == s.goneSum {
			continue // the ended broadcast's last frame, served again
		}
		s.gone = false
		delivered = true
		s.apply(ev)
	}
}

// apply feeds one data event to the Aggregator, deduplicating by id. The
// feed tells the Aggregator of frames skipped: an id that does not follow
// the last one (a resync, a reconnect, a new broadcast numbered from the
// clock), an event skipped unread, or a compressed group broken.
func (s *stream) apply(ev *sse.Event) {
	id, placed := parseEventID(ev.ID)
	if placed && s.hasLast {
		switch cmpID(id, s.last) {
		case 0:
			return // the latest frame again, after a reconnect
		case -1:
			// The server numbers from scratch: a new broadcast.
			s.feed.end(s.opts.Now())
		}
	}
	s.setID(ev)
	if ev.TooLarge {
		s.opts.report(&FrameError{Kind: ErrFrameTooLarge, Node: s.node, Track: s.track,
			Detail: "event " + strconv.Quote(truncate(ev.ID)) + " over the Aggregator's frame limit, skipped unread"})
		return
	}
	s.sum = frameSum(ev.Data)
	data := ev.Data
	if s.feed.z != nil {
		if !placed {
			s.opts.report(&FrameError{Kind: ErrFrameOrder, Node: s.node, Track: s.track,
				Detail: "event id " + strconv.Quote(truncate(ev.ID)) + " is not G.F: a compressed frame cannot be placed in its group"})
			return
		}
		need := base64.StdEncoding.DecodedLen(len(data))
		if cap(s.buf) < need {
			s.buf = make([]byte, need)
		}
		n, err := base64.StdEncoding.Decode(s.buf[:need], data)
		if cap(s.buf) > sse.MaxKeptData {
			defer func() { s.buf = nil }() // a large frame's buffer is not kept for every stream
		}
		if err != nil {
			s.opts.report(&FrameError{Kind: ErrCompression, Node: s.node, Track: s.track, Group: uint64(id[0]), Index: int(id[1]), placed: true,
				Detail: "event data is not standard base64: " + err.Error()})
			return
		}
		data = s.buf[:n]
	}
	var err error
	if placed {
		err = s.feed.frame(s.opts.Now(), uint64(id[0]), int(id[1]), data)
	} else {
		err = s.feed.unplaced(s.opts.Now(), data)
	}
	if err != nil {
		s.opts.report(err)
	}
}

// gap tells the Aggregator that frames of the track may have been lost.
func (s *stream) gap() { s.feed.gap(s.opts.Now()) }

var frameSeed = maphash.MakeSeed()

func frameSum(b []byte) uint64 { return maphash.Bytes(frameSeed, b) }

func (s *stream) setID(ev *sse.Event) {
	if !ev.HasID {
		return
	}
	s.lastID = ev.ID
	s.last, s.hasLast = parseEventID(ev.ID)
}

// parseEventID parses "G.F" (group, frame index).
func parseEventID(id string) ([2]int64, bool) {
	g, f, ok := strings.Cut(id, ".")
	if !ok {
		return [2]int64{}, false
	}
	gn, err1 := strconv.ParseInt(g, 10, 64)
	fn, err2 := strconv.ParseInt(f, 10, 64)
	if err1 != nil || err2 != nil || gn < 0 || fn < 0 {
		return [2]int64{}, false
	}
	return [2]int64{gn, fn}, true
}

func cmpID(a, b [2]int64) int {
	return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
}

// backoff is exponential backoff with jitter.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) reset() { b.cur = 0 }

// next returns the next wait: cur doubled, within [min, max], then up to a
// quarter less at random so followers of one server spread out.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return b.cur - time.Duration(rand.Int64N(int64(b.cur)/4+1))
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
