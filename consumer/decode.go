package consumer

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bytedance/sonic"
	"github.com/bytedance/sonic/ast"
	sonicutf8 "github.com/bytedance/sonic/utf8"

	"github.com/moqstats/moqstats/zframe"
)

// Decoder limits, applied when the corresponding Decoder field is zero.
const (
	// DefaultMaxFrameSize is the largest frame decoded: 64 MiB, the cap
	// upstream's decompressor puts on one frame. A node with 100,000
	// broadcasts on one track writes frames of about 30 MB.
	DefaultMaxFrameSize = 64 << 20
	// DefaultMaxEntries is the most keys one frame may carry.
	DefaultMaxEntries = 1 << 20
	// DefaultMaxDepth is the deepest nesting of JSON containers, counting
	// the frame itself as 1 and an entry as 2: ignored members may hold
	// objects and arrays, nested this deep.
	DefaultMaxDepth = 16
	// DefaultMaxKeyLen is the longest key (a broadcast path or auth root,
	// in bytes once unescaped) a frame may carry: 4 KiB, four times
	// moqstats' MaxPathLen (a moqstats producer folds longer paths into
	// its overflow key), room for producers that key by longer paths.
	// Every key held costs its length for as long as it is held, so this
	// and the Aggregator's MaxKeys bound what keys cost.
	DefaultMaxKeyLen = 4 << 10
	// DefaultMaxGroupFrames is the most frames a compressed track's group
	// may hold: zframe.MaxGroupFrames, the cap moqstats, upstream's
	// producers and httpstats put on a group (a snapshot and 255 deltas).
	DefaultMaxGroupFrames = zframe.MaxGroupFrames
)

// Kinds of decode error. Every error a Decoder or a CompressedTrack
// returns is a *FrameError that matches ErrInvalidFrame and exactly one
// of the others with errors.Is. The last four come from compressed
// tracks only: ErrCompression is about a frame's bytes, ErrMissingSnapshot,
// ErrFrameOrder and ErrGroupTooLong about where it sits in its track.
var (
	ErrInvalidFrame  = errors.New("consumer: invalid frame")
	ErrFrameTooLarge = errors.New("frame too large")
	ErrInvalidUTF8   = errors.New("invalid UTF-8")
	ErrSyntax        = errors.New("invalid JSON")
	ErrShape         = errors.New("wrong shape")
	ErrCounter       = errors.New("invalid counter")
	ErrDuplicateKey  = errors.New("duplicate key")
	ErrTooDeep       = errors.New("nested too deep")
	ErrTooManyKeys   = errors.New("too many keys")
	ErrKeyTooLong    = errors.New("key too long")
	// ErrCompression: the frame is not the DEFLATE data its group's
	// stream continues with.
	ErrCompression = errors.New("invalid compressed data")
	// ErrMissingSnapshot: a delta whose group's frames before it were not
	// all applied (a follower that joined mid-group, frames lost, or an
	// earlier frame of the group rejected). The track resumes with the
	// next group's snapshot.
	ErrMissingSnapshot = errors.New("delta without the frames of its group before it")
	// ErrFrameOrder: a frame at or before one already applied (a replay,
	// or an older group); it changes nothing.
	ErrFrameOrder = errors.New("frame out of order")
	// ErrGroupTooLong: a frame at an index past the Decoder's
	// MaxGroupFrames. The track resumes with the next group's snapshot.
	ErrGroupTooLong = errors.New("group too long")
)

// FrameError is a frame the decoder rejected: why (Kind), and where (the
// entry and member it was in, when it was in one; the node and track it
// came from, when the Aggregator or a follower knows them).
type FrameError struct {
	Kind   error  // one of ErrFrameTooLarge ... ErrGroupTooLong
	Node   string // set by Aggregator.Observe and the followers
	Track  string // set with Node
	Entry  string // the entry's key, truncated to 64 bytes; "" at the root
	Field  string // the member within the entry, truncated; "" if none
	Detail string
	// Group and Index place a frame of a compressed track: its group's
	// sequence number and its index in the group. Set by
	// CompressedTrack.Apply.
	Group  uint64
	Index  int
	inKey  bool // Entry is meaningful (the key may be "")
	inFld  bool // Field is meaningful
	placed bool // Group and Index are meaningful
}

// Error says what was wrong and where: "consumer: node "sjc/1" track
// "publisher.json": invalid frame: invalid counter: entry "acme/live"
// member "bytes": negative number -1", or for a compressed track's
// frame "consumer: node "sjc/1" track "publisher.json.z" frame 7.3:
// invalid frame: ...".
func (e *FrameError) Error() string {
	msg := "consumer: "
	where := ""
	if e.Track != "" {
		where = "node " + strconv.Quote(e.Node) + " track " + strconv.Quote(e.Track)
	}
	if e.placed {
		if where != "" {
			where += " "
		}
		where += "frame " + strconv.FormatUint(e.Group, 10) + "." + strconv.Itoa(e.Index)
	}
	if where != "" {
		msg += where + ": "
	}
	msg += "invalid frame: " + e.Kind.Error()
	if e.inKey {
		msg += ": entry " + strconv.Quote(e.Entry)
	}
	if e.inFld {
		msg += " member " + strconv.Quote(e.Field)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap returns ErrInvalidFrame and the error's Kind.
func (e *FrameError) Unwrap() []error { return []error{ErrInvalidFrame, e.Kind} }

// A Decoder decodes frames into typed snapshots, rejecting anything the
// producer cannot have written with a *FrameError, and never panicking:
// frames come off the network. The zero Decoder uses the Default limits.
// A Decoder holds no state between calls and is safe for concurrent use.
//
// # What a frame may be
//
// A frame is one JSON object (RFC 8259) mapping keys to objects whose
// members named like a counter are unsigned integers that fit a uint64.
// Counters missing from an entry read as 0 and members with other names are
// ignored, whatever they hold, as upstream's decoders do. Rejected: a
// frame larger than MaxFrameSize, bytes that are not UTF-8, a \u escape of
// an unpaired surrogate, any JSON syntax error (control bytes in strings,
// bad escapes, trailing bytes after the object), a root or an entry that
// is not an object (null included), a counter that is not an integer
// (null, a string, a fraction or exponent, a negative number, or one
// beyond 2^64-1), the same key twice in the frame or the same member twice
// in an entry, more than MaxEntries keys, a key longer than MaxKeyLen
// bytes, and containers nested deeper than MaxDepth. A rejected frame is
// rejected whole, a key too long as any other fault: no producer that
// respects the limits writes it, and the Aggregator keeps nothing of a
// frame it drops (the next good frame carries every count it would have). Member names are case-sensitive: "Bytes" is an unknown
// member, not the counter bytes.
//
// # How
//
// sonic checks what it checks fastest, in native code: the UTF-8 of the
// whole frame (package sonic/utf8), then the JSON grammar, including
// control bytes and escapes in every string and trailing bytes, by
// decoding the frame into an empty struct with ValidateString set. Should
// it reject the frame, encoding/json's grammar decides instead, so every
// platform gives the same answer (sonic's arm64 decoder also rejects
// numbers beyond float64's range, and sonic stops at 4096 levels). No
// sonic config rejects an unpaired surrogate escape in a member it skips,
// so a scan of the frame's backslashes does. A sonic ast.Visitor then walks the frame once,
// building the map and checking what no sonic config checks: shapes,
// nulls, duplicate keys, the counters' integer form and range, and the
// depth of ignored members. Keys arrive in byte order from every known
// producer, so a key above the previous one needs no duplicate lookup.
type Decoder struct {
	// MaxFrameSize caps the frame's length in bytes (default
	// DefaultMaxFrameSize).
	MaxFrameSize int
	// MaxEntries caps the number of keys in one frame (default
	// DefaultMaxEntries).
	MaxEntries int
	// MaxDepth caps the nesting of containers (default DefaultMaxDepth;
	// at least 2, the depth of a well-formed frame).
	MaxDepth int
	// MaxKeyLen caps the length of a key in bytes, as decoded (default
	// DefaultMaxKeyLen). Member names inside an entry are not kept, and
	// are bounded by the frame size alone.
	MaxKeyLen int
	// MaxGroupFrames caps the frames of one group of a compressed track
	// (default DefaultMaxGroupFrames): a frame at a higher index is
	// ErrGroupTooLong, and the track waits for the next group.
	MaxGroupFrames int
}

// DecodeTraffic decodes a per-broadcast frame with the default limits.
func DecodeTraffic(frame []byte) (TrafficFrame, error) {
	var d Decoder
	return d.Traffic(frame)
}

// DecodePresence decodes a session frame with the default limits.
func DecodePresence(frame []byte) (PresenceFrame, error) {
	var d Decoder
	return d.Presence(frame)
}

// Traffic decodes a per-broadcast frame (publisher.json and the other
// three per-broadcast tracks).
func (d *Decoder) Traffic(frame []byte) (TrafficFrame, error) {
	out := make(TrafficFrame, estimateEntries(len(frame)))
	if err := d.decode(frame, trafficSink(out), lookupTraffic, false); err != nil {
		return nil, err
	}
	return out, nil
}

// Presence decodes a session frame (sessions.json, internal/sessions.json).
func (d *Decoder) Presence(frame []byte) (PresenceFrame, error) {
	out := make(PresenceFrame, estimateEntries(len(frame)))
	if err := d.decode(frame, presenceSink(out), lookupPresence, false); err != nil {
		return nil, err
	}
	return out, nil
}

// PatchTraffic applies patch, a delta of a compressed per-broadcast track
// (an RFC 7396 merge patch of its frame), to f, which must not be nil.
// It checks patch as Traffic checks a frame, with two differences: an
// entry may be null, which removes its key from f (a key f lacks is left
// absent), and an entry's object merges into f's entry member by member,
// or makes a new entry from zero, so counters it leaves out keep their
// values. A counter may not be null: RFC 7396 would delete it, and no
// producer deletes one. f may hold at most MaxEntries keys afterwards
// (ErrTooManyKeys). On any error f is unchanged.
func (d *Decoder) PatchTraffic(f TrafficFrame, patch []byte) error {
	if f == nil {
		panic("consumer: PatchTraffic of a nil TrafficFrame")
	}
	return patchFrame(d, f, patch, lookupTraffic, func(v *Traffic, i int, c uint64) { v.counters()[i] = c })
}

// PatchPresence applies patch, a delta of a compressed session track, to
// f, which must not be nil, as PatchTraffic does.
func (d *Decoder) PatchPresence(f PresenceFrame, patch []byte) error {
	if f == nil {
		panic("consumer: PatchPresence of a nil PresenceFrame")
	}
	return patchFrame(d, f, patch, lookupPresence, func(v *Presence, i int, c uint64) { v.counters()[i] = c })
}

// patchFrame decodes patch whole, checks the size of the result, and only
// then applies it to f, so that a rejected patch changes nothing. set
// sets counter i (an index lookup gave) of an entry.
func patchFrame[V Traffic | Presence](d *Decoder, f map[string]V, patch []byte, lookup func(string) int, set func(v *V, i int, c uint64)) error {
	ops := make(patchSink, min(len(patch)/32, 4096))
	if err := d.decode(patch, ops, lookup, true); err != nil {
		return err
	}
	_, maxEntries, _ := d.limits()
	n := len(f)
	for k, op := range ops {
		switch _, had := f[k]; {
		case op.remove && had:
			n--
		case !op.remove && !had:
			n++
		}
	}
	if n > maxEntries {
		return &FrameError{Kind: ErrTooManyKeys, Detail: "the patch takes the frame to " + strconv.Itoa(n) + " keys, limit " + strconv.Itoa(maxEntries)}
	}
	for k, op := range ops {
		if op.remove {
			delete(f, k)
			continue
		}
		v := f[k]
		for i := range NumTrafficFields {
			if op.seen&(1<<i) != 0 {
				set(&v, i, op.vals[i])
			}
		}
		// k is a substring of the patch's text, and assigning to a map
		// stores the key even when it is there already: a clone keeps
		// every patch that touched a key from being held by f.
		f[strings.Clone(k)] = v
	}
	return nil
}

// estimateEntries sizes the result map for a frame of n bytes: a moqstats
// entry takes about 180 bytes. Capped, so a large frame of few entries
// does not allocate ahead.
func estimateEntries(n int) int { return min(n/180, 4096) }

// strictAPI is the sonic configuration of the grammar pass: ValidateString
// makes it reject control bytes and bad escapes in every string, skipped
// ones included (its default config accepts both), and skipped values are
// validated (NoValidateJSONSkip is false).
var strictAPI = sonic.Config{ValidateString: true}.Froze()

var visitorOptions = &ast.VisitorOptions{OnlyNumber: true}

// keyLimit returns the longest key a frame may carry.
func (d *Decoder) keyLimit() int {
	if d.MaxKeyLen <= 0 {
		return DefaultMaxKeyLen
	}
	return d.MaxKeyLen
}

// groupLimit returns the most frames a compressed track's group may hold.
func (d *Decoder) groupLimit() int {
	if d.MaxGroupFrames <= 0 {
		return DefaultMaxGroupFrames
	}
	return d.MaxGroupFrames
}

func (d *Decoder) limits() (size, entries, depth int) {
	size, entries, depth = d.MaxFrameSize, d.MaxEntries, d.MaxDepth
	if size <= 0 {
		size = DefaultMaxFrameSize
	}
	if entries <= 0 {
		entries = DefaultMaxEntries
	}
	if depth <= 0 {
		depth = DefaultMaxDepth
	}
	return size, entries, max(depth, 2)
}

// decode checks frame and hands its entries to out; with patch set, frame
// is a merge patch, whose entries may be null (removals).
func (d *Decoder) decode(frame []byte, out sink, lookup func(string) int, patch bool) error {
	maxSize, maxEntries, maxDepth := d.limits()
	if len(frame) > maxSize {
		return &FrameError{Kind: ErrFrameTooLarge, Detail: strconv.Itoa(len(frame)) + " bytes, limit " + strconv.Itoa(maxSize)}
	}
	if !sonicutf8.Validate(frame) {
		return &FrameError{Kind: ErrInvalidUTF8, Detail: "at byte " + strconv.Itoa(firstInvalidUTF8(frame))}
	}
	if err := rootIsObject(frame, patch); err != nil {
		return err
	}
	// One copy: sonic reads strings, and the keys of the result are
	// substrings of this one, which nobody else can modify.
	s := string(frame)
	// Decoding an object into an empty struct skips every member, and
	// sonic validates what it skips.
	var skip struct{}
	if err := strictAPI.UnmarshalFromString(s, &skip); err != nil {
		// encoding/json's grammar has the last word, so that a frame
		// gets the same answer on every platform: sonic's arm64 decoder
		// also rejects numbers beyond float64's range, and both of
		// sonic's stop at 4096 levels, where the visitor's depth limit
		// gives the better error.
		if fe := stdSyntax(frame); fe != nil {
			return fe
		}
	}
	if off := unpairedSurrogate(s); off >= 0 {
		return &FrameError{Kind: ErrInvalidUTF8, Detail: "\\u escape of an unpaired surrogate at byte " + strconv.Itoa(off)}
	}
	v := frameVisitor{out: out, lookup: lookup, maxEntries: maxEntries, maxDepth: maxDepth, maxKeyLen: d.keyLimit(), sorted: true, patch: patch}
	if err := ast.Preorder(s, &v, visitorOptions); err != nil {
		if fe, ok := err.(*FrameError); ok {
			return fe
		}
		// The grammar pass accepted the frame, so sonic's walk should
		// too; report it as the syntax error it calls it all the same.
		return &FrameError{Kind: ErrSyntax, Detail: err.Error()}
	}
	return nil
}

// rootIsObject checks the frame's (or patch's) first token, so that the
// grammar pass decodes an object into its struct and any error it returns
// is about the grammar.
func rootIsObject(frame []byte, patch bool) error {
	what := "frame"
	if patch {
		what = "patch"
	}
	for _, c := range frame {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return nil
		}
		var kind string
		switch {
		case c == '[':
			kind = "an array"
		case c == '"':
			kind = "a string"
		case c == 'n':
			kind = "null"
		case c == 't' || c == 'f':
			kind = "a boolean"
		case c == '-' || c >= '0' && c <= '9':
			kind = "a number"
		default:
			return &FrameError{Kind: ErrSyntax, Detail: "the " + what + " starts with byte 0x" + strconv.FormatUint(uint64(c), 16) + ", not a JSON value"}
		}
		return &FrameError{Kind: ErrShape, Detail: "the " + what + " is " + kind + ", want an object"}
	}
	return &FrameError{Kind: ErrSyntax, Detail: "empty " + what}
}

// stdSyntax checks the frame against encoding/json's grammar, which
// gives an offset, and returns nil if it holds.
func stdSyntax(frame []byte) *FrameError {
	var skip struct{}
	var se *json.SyntaxError
	if err := json.Unmarshal(frame, &skip); errors.As(err, &se) {
		kind := ErrSyntax
		if strings.Contains(se.Error(), "max depth") {
			kind = ErrTooDeep
		}
		return &FrameError{Kind: kind, Detail: se.Error() + " (at byte " + strconv.FormatInt(se.Offset, 10) + ")"}
	}
	return nil
}

// firstInvalidUTF8 returns the offset of the first byte of b that does not
// start a valid UTF-8 sequence. b must contain one.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// unpairedSurrogate returns the offset of the first \u escape of a
// surrogate that is not a high one followed by a low one, or -1. s must be
// valid JSON, where a backslash appears only in a string and starts an
// escape, so walking the backslashes left to right finds every escape.
func unpairedSurrogate(s string) int {
	for i := 0; ; {
		j := strings.IndexByte(s[i:], '\\')
		if j < 0 {
			return -1
		}
		i += j
		if s[i+1] != 'u' {
			i += 2 // \" \\ \/ \b \f \n \r \t
			continue
		}
		r := hex4(s[i+2 : i+6])
		switch {
		case r < 0xD800 || r > 0xDFFF:
			i += 6
		case r <= 0xDBFF && i+12 <= len(s) && s[i+6] == '\\' && s[i+7] == 'u' && isLowSurrogate(hex4(s[i+8:i+12])):
			i += 12
		default:
			return i
		}
	}
}

func isLowSurrogate(r rune) bool { return r >= 0xDC00 && r <= 0xDFFF }

// hex4 decodes four hex digits; the grammar pass checked they are.
func hex4(h string) rune {
	var r rune
	for i := range 4 {
		c := rune(h[i])
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | c
	}
	return r
}

// sink receives a frame's entries as the visitor completes them: the
// counters of each, and which of them the entry set (a bit per counter).
// remove receives a patch's null entries.
type sink interface {
	has(key string) bool
	put(key string, vals *[NumTrafficFields]uint64, seen uint32)
	remove(key string)
}

type trafficSink TrafficFrame

func (m trafficSink) has(key string) bool { _, ok := m[key]; return ok }
func (m trafficSink) put(key string, vals *[NumTrafficFields]uint64, _ uint32) {
	var t Traffic
	*t.counters() = *vals
	m[key] = t
}
func (m trafficSink) remove(string) { panic("BUG: consumer: a removal in a frame") }

type presenceSink PresenceFrame

func (m presenceSink) has(key string) bool { _, ok := m[key]; return ok }
func (m presenceSink) put(key string, vals *[NumTrafficFields]uint64, _ uint32) {
	m[key] = Presence{Sessions: vals[Sessions], SessionsClosed: vals[SessionsClosed]}
}
func (m presenceSink) remove(string) { panic("BUG: consumer: a removal in a frame") }

// patchOp is one entry of a merge patch: its key's removal, or the
// counters it sets.
type patchOp struct {
	vals   [NumTrafficFields]uint64
	seen   uint32 // a bit per counter set
	remove bool
}

type patchSink map[string]patchOp

func (m patchSink) has(key string) bool { _, ok := m[key]; return ok }
func (m patchSink) put(key string, vals *[NumTrafficFields]uint64, seen uint32) {
	m[key] = patchOp{vals: *vals, seen: seen}
}
func (m patchSink) remove(key string) { m[key] = patchOp{remove: true} }

func lookupTraffic(name string) int {
	switch name {
	case "announced":
		return int(Announced)
	case "announced_closed":
		return int(AnnouncedClosed)
	case "announced_bytes":
		return int(AnnouncedBytes)
	case "broadcasts":
		return int(Broadcasts)
	case "broadcasts_closed":
		return int(BroadcastsClosed)
	case "subscriptions":
		return int(Subscriptions)
	case "subscriptions_closed":
		return int(SubscriptionsClosed)
	case "fetches":
		return int(Fetches)
	case "bytes":
		return int(Bytes)
	case "frames":
		return int(Frames)
	case "groups":
		return int(Groups)
	case "datagrams":
		return int(Datagrams)
	}
	return -1
}

func lookupPresence(name string) int {
	switch name {
	case "sessions":
		return int(Sessions)
	case "sessions_closed":
		return int(SessionsClosed)
	}
	return -1
}

// frameVisitor builds a frame from sonic's preorder walk. Depth counts the
// containers open: the frame is 1, an entry 2, anything deeper is inside
// an ignored member.
type frameVisitor struct {
	out        sink
	lookup     func(string) int
	maxEntries int
	maxDepth   int
	maxKeyLen  int
	patch      bool // a merge patch: a null entry removes its key

	depth    int
	entries  int
	inEntry  bool // key names the entry being read
	inMember bool // name names the member being read

	// Entry keys: sorted holds while every key so far was above the one
	// before it, so a key above last cannot repeat one.
	sorted bool
	last   string
	key    string

	// The entry being read: its counters, which of them were set, and the
	// member whose value comes next (its counter, or -1: ignored).
	vals    [NumTrafficFields]uint64
	seen    uint32
	member  int
	name    string
	ignored []string // ignored member names in this entry, for duplicates
	spill   map[string]struct{}
}

func (v *frameVisitor) fail(kind error, detail string) error {
	e := &FrameError{Kind: kind, Detail: detail}
	if v.inEntry {
		e.Entry, e.inKey = truncate(v.key), true
	}
	if v.inMember {
		e.Field, e.inFld = truncate(v.name), true
	}
	return e
}

// truncate shortens s to at most 64 bytes, on a rune boundary, for error
// messages: a hostile key may be megabytes long.
func truncate(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	i := limit
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// scalar handles a value that is not a container, named for messages.
func (v *frameVisitor) scalar(kind string) error {
	switch {
	case v.depth == 1:
		return v.fail(ErrShape, "the entry is "+kind+", want an object")
	case v.depth == 2 && v.member >= 0:
		return v.fail(ErrCounter, "got "+kind+", want an unsigned integer")
	}
	return nil // inside an ignored member
}

// The ast.Visitor methods: sonic calls them in document order.

func (v *frameVisitor) OnNull() error {
	switch {
	case v.patch && v.depth == 1:
		v.out.remove(v.key)
		v.entries++
		v.inEntry = false
		return nil
	case v.patch && v.depth == 2 && v.member >= 0:
		return v.fail(ErrCounter, "got null, which would delete the counter; want an unsigned integer")
	}
	return v.scalar("null")
}

func (v *frameVisitor) OnBool(b bool) error {
	if b {
		return v.scalar("true")
	}
	return v.scalar("false")
}

func (v *frameVisitor) OnString(string) error { return v.scalar("a string") }

func (v *frameVisitor) OnInt64(_ int64, n json.Number) error { return v.number(string(n)) }

func (v *frameVisitor) OnFloat64(_ float64, n json.Number) error { return v.number(string(n)) }

func (v *frameVisitor) number(n string) error {
	if v.depth != 2 || v.member < 0 {
		return v.scalar("a number")
	}
	c, why := parseCounter(n)
	if why != "" {
		return v.fail(ErrCounter, why)
	}
	v.vals[v.member] = c
	return nil
}

// parseCounter parses a JSON number, already checked against the grammar,
// that must be an unsigned integer within uint64; it returns why not.
func parseCounter(n string) (uint64, string) {
	if n[0] == '-' {
		return 0, "negative number " + truncate(n)
	}
	var c uint64
	overflow := false
	for i := 0; i < len(n); i++ {
		d := uint64(n[i] - '0')
		if d > 9 {
			return 0, "number " + truncate(n) + " is not an integer"
		}
		if c > (1<<64-1-d)/10 {
			overflow = true // keep scanning: 1e999 is not an integer either
		}
		c = c*10 + d
	}
	if overflow {
		return 0, "number " + truncate(n) + " exceeds 18446744073709551615"
	}
	return c, ""
}

// open handles the start of an object or array.
func (v *frameVisitor) open(object bool, kind string) error {
	switch {
	case v.depth == 0:
		// rootIsObject saw '{'; sonic agrees or the grammar pass failed.
	case v.depth == 1:
		if !object {
			return v.fail(ErrShape, "the entry is "+kind+", want an object")
		}
		v.vals = [NumTrafficFields]uint64{}
		v.seen = 0
		v.member, v.inMember = -1, false
		v.ignored, v.spill = v.ignored[:0], nil
	case v.depth == 2 && v.member >= 0:
		return v.fail(ErrCounter, "got "+kind+", want an unsigned integer")
	}
	if v.depth == v.maxDepth {
		return v.fail(ErrTooDeep, "more than "+strconv.Itoa(v.maxDepth)+" levels")
	}
	v.depth++
	return nil
}

func (v *frameVisitor) OnObjectBegin(int) error { return v.open(true, "an object") }

func (v *frameVisitor) OnArrayBegin(int) error { return v.open(false, "an array") }

func (v *frameVisitor) OnArrayEnd() error {
	v.depth--
	return nil
}

func (v *frameVisitor) OnObjectEnd() error {
	v.depth--
	if v.depth == 1 {
		v.out.put(v.key, &v.vals, v.seen)
		v.entries++
		v.inEntry, v.inMember = false, false
	}
	return nil
}

func (v *frameVisitor) OnObjectKey(k string) error {
	switch v.depth {
	case 1:
		v.key, v.inEntry = k, true
		if len(k) > v.maxKeyLen {
			return v.fail(ErrKeyTooLong, strconv.Itoa(len(k))+" bytes, limit "+strconv.Itoa(v.maxKeyLen))
		}
		if v.sorted && (v.entries == 0 || k > v.last) {
			v.last = k
		} else if v.sorted = false; v.out.has(k) {
			return v.fail(ErrDuplicateKey, "")
		}
		if v.entries == v.maxEntries {
			return v.fail(ErrTooManyKeys, "more than "+strconv.Itoa(v.maxEntries))
		}
	case 2:
		v.name, v.inMember = k, true
		v.member = v.lookup(k)
		if v.member >= 0 {
			if v.seen&(1<<v.member) != 0 {
				return v.fail(ErrDuplicateKey, "")
			}
			v.seen |= 1 << v.member
		} else if v.seenIgnored(k) {
			return v.fail(ErrDuplicateKey, "")
		}
	}
	return nil
}

// seenIgnored records an ignored member name and reports whether the entry
// had it already: a short list first, a set once there are many, so a
// hostile entry of many members costs linear time.
func (v *frameVisitor) seenIgnored(k string) bool {
	if v.spill != nil {
		if _, ok := v.spill[k]; ok {
			return true
		}
		v.spill[k] = struct{}{}
		return false
	}
	for _, s := range v.ignored {
		if s == k {
			return true
		}
	}
	v.ignored = append(v.ignored, k)
	if len(v.ignored) > 8 {
		v.spill = make(map[string]struct{}, 16)
		for _, s := range v.ignored {
			v.spill[s] = struct{}{}
		}
	}
	return false
}
