// Package encode writes moqstats frames: JSON objects that map a key (a
// broadcast path or an auth root) to a counter snapshot, byte for byte as
// serde_json writes moq-net's frames, and the merge patches the compressed
// tracks carry between snapshots.
//
// # Wire format
//
// A frame is one JSON object with no whitespace, keys in the order the
// caller gives (moqstats gives them in byte order, as a Rust BTreeMap
// iterates). Per-broadcast values are objects with the fields announced,
// announced_closed, broadcasts, broadcasts_closed, subscriptions,
// subscriptions_closed, bytes, frames, groups, in that order, or, with all
// twelve fields (moq-net's current form), announced, announced_closed,
// announced_bytes, broadcasts, broadcasts_closed, subscriptions,
// subscriptions_closed, fetches, bytes, frames, groups, datagrams; session
// values have sessions, sessions_closed. Numbers are decimal uint64.
//
// A merge patch (RFC 7396) of a frame maps each key that changed to the
// fields that changed, each new key to its whole value, and each key that
// left to null.
//
// Strings escape exactly what serde_json escapes: '"' and '\\', the
// control bytes 0x08, 0x0C, '\n', '\r' and '\t' by their short escapes,
// and every other byte below 0x20 as \u00XX with lowercase hex. Everything
// else is written as is: '/', '<', '>', '&', DEL, U+2028, U+2029 and all
// non-ASCII. (encoding/json also escapes <, >, & and U+2028/U+2029, so its
// output differs; that is on purpose.) Invalid UTF-8, which serde_json can
// never see because Rust strings are valid, is replaced by U+FFFD, one per
// maximal subpart as in package lossy, so every frame is valid JSON.
//
// # Invariant
//
// Every function appends to dst and returns the extended slice, like
// strconv.AppendInt, and allocates only when dst must grow. A caller that
// reuses its buffer across ticks allocates nothing per frame.
package encode

import (
	"strconv"
	"unicode/utf8"

	"github.com/moqstats/moqstats/counters"
	"github.com/moqstats/moqstats/internal/lossy"
)

const hex = "0123456789abcdef"

// plain[b] is true for the ASCII bytes a JSON string holds unescaped.
// Bytes from 0x80 up are false here and handled as UTF-8.
var plain = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// AppendString appends s to dst as a quoted JSON string, escaped as the
// package doc describes, and returns the extended slice.
//
// The loop scans for the next byte that is not plain ASCII and copies the
// run before it in one append; non-ASCII runes are copied as they are once
// decoded as valid.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if plain[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				// Other control bytes have no short escape in JSON.
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, lossy.Replacement...)
			i += lossy.Subpart(s[i:])
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendSnapshot appends s as a per-broadcast frame value.
func AppendSnapshot(dst []byte, s *counters.Snapshot) []byte {
	dst = append(dst, `{"announced":`...)
	dst = strconv.AppendUint(dst, s.Announced, 10)
	dst = append(dst, `,"announced_closed":`...)
	dst = strconv.AppendUint(dst, s.AnnouncedClosed, 10)
	dst = append(dst, `,"broadcasts":`...)
	dst = strconv.AppendUint(dst, s.Broadcasts, 10)
	dst = append(dst, `,"broadcasts_closed":`...)
	dst = strconv.AppendUint(dst, s.BroadcastsClosed, 10)
	dst = append(dst, `,"subscriptions":`...)
	dst = strconv.AppendUint(dst, s.Subscriptions, 10)
	dst = append(dst, `,"subscriptions_closed":`...)
	dst = strconv.AppendUint(dst, s.SubscriptionsClosed, 10)
	dst = append(dst, `,"bytes":`...)
	dst = strconv.AppendUint(dst, s.Bytes, 10)
	dst = append(dst, `,"frames":`...)
	dst = strconv.AppendUint(dst, s.Frames, 10)
	dst = append(dst, `,"groups":`...)
	dst = strconv.AppendUint(dst, s.Groups, 10)
	return append(dst, '}')
}

// AppendSnapshotAll appends s as a per-broadcast frame value with all
// twelve fields, in the order moq-net writes them today: the nine, with
// announced_bytes after announced_closed, fetches after
// subscriptions_closed, and datagrams last.
func AppendSnapshotAll(dst []byte, s *counters.Snapshot) []byte {
	dst = append(dst, `{"announced":`...)
	dst = strconv.AppendUint(dst, s.Announced, 10)
	dst = append(dst, `,"announced_closed":`...)
	dst = strconv.AppendUint(dst, s.AnnouncedClosed, 10)
	dst = append(dst, `,"announced_bytes":`...)
	dst = strconv.AppendUint(dst, s.AnnouncedBytes, 10)
	dst = append(dst, `,"broadcasts":`...)
	dst = strconv.AppendUint(dst, s.Broadcasts, 10)
	dst = append(dst, `,"broadcasts_closed":`...)
	dst = strconv.AppendUint(dst, s.BroadcastsClosed, 10)
	dst = append(dst, `,"subscriptions":`...)
	dst = strconv.AppendUint(dst, s.Subscriptions, 10)
	dst = append(dst, `,"subscriptions_closed":`...)
	dst = strconv.AppendUint(dst, s.SubscriptionsClosed, 10)
	dst = append(dst, `,"fetches":`...)
	dst = strconv.AppendUint(dst, s.Fetches, 10)
	dst = append(dst, `,"bytes":`...)
	dst = strconv.AppendUint(dst, s.Bytes, 10)
	dst = append(dst, `,"frames":`...)
	dst = strconv.AppendUint(dst, s.Frames, 10)
	dst = append(dst, `,"groups":`...)
	dst = strconv.AppendUint(dst, s.Groups, 10)
	dst = append(dst, `,"datagrams":`...)
	dst = strconv.AppendUint(dst, s.Datagrams, 10)
	return append(dst, '}')
}

// field is one member of a per-broadcast value, for patches: its name,
// quoted, with the colon, and its counter index in a counters.Snapshot
// array.
type field struct {
	name string
	i    int
}

// nineFields and allFields are the members of a per-broadcast value in
// wire order, as AppendSnapshot and AppendSnapshotAll write them.
var (
	nineFields = []field{
		{`"announced":`, counters.Announced},
		{`"announced_closed":`, counters.AnnouncedClosed},
		{`"broadcasts":`, counters.Broadcasts},
		{`"broadcasts_closed":`, counters.BroadcastsClosed},
		{`"subscriptions":`, counters.Subscriptions},
		{`"subscriptions_closed":`, counters.SubscriptionsClosed},
		{`"bytes":`, counters.Bytes},
		{`"frames":`, counters.Frames},
		{`"groups":`, counters.Groups},
	}
	allFields = []field{
		nineFields[0], nineFields[1],
		{`"announced_bytes":`, counters.AnnouncedBytes},
		nineFields[2], nineFields[3], nineFields[4], nineFields[5],
		{`"fetches":`, counters.Fetches},
		nineFields[6], nineFields[7], nineFields[8],
		{`"datagrams":`, counters.Datagrams},
	}
)

// AppendSnapshotPatch appends the RFC 7396 merge patch that turns the
// per-broadcast value old into cur: an object of cur's members that
// differ from old's, in wire order (all twelve fields when all is set,
// the nine otherwise). It is {} when nothing differs.
func AppendSnapshotPatch(dst []byte, old, cur *counters.Snapshot, all bool) []byte {
	fields := nineFields
	if all {
		fields = allFields
	}
	o, c := old.Array(), cur.Array()
	dst = append(dst, '{')
	first := true
	for _, f := range fields {
		if c[f.i] != o[f.i] {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, f.name...)
			dst = strconv.AppendUint(dst, c[f.i], 10)
		}
	}
	return append(dst, '}')
}

// AppendSessionPatch is AppendSnapshotPatch for session values.
func AppendSessionPatch(dst []byte, old, cur *counters.SessionSnapshot) []byte {
	dst = append(dst, '{')
	if cur.Sessions != old.Sessions {
		dst = append(dst, `"sessions":`...)
		dst = strconv.AppendUint(dst, cur.Sessions, 10)
	}
	if cur.SessionsClosed != old.SessionsClosed {
		if cur.Sessions != old.Sessions {
			dst = append(dst, ',')
		}
		dst = append(dst, `"sessions_closed":`...)
		dst = strconv.AppendUint(dst, cur.SessionsClosed, 10)
	}
	return append(dst, '}')
}

// AppendSessionSnapshot appends s as a session frame value.
func AppendSessionSnapshot(dst []byte, s *counters.SessionSnapshot) []byte {
	dst = append(dst, `{"sessions":`...)
	dst = strconv.AppendUint(dst, s.Sessions, 10)
	dst = append(dst, `,"sessions_closed":`...)
	dst = strconv.AppendUint(dst, s.SessionsClosed, 10)
	return append(dst, '}')
}

// AppendBroadcastFrame appends a per-broadcast frame mapping keys[i] to
// vals[i]. Each key must already be a JSON string (the output of
// AppendString): keys are encoded once, when an entry is created, not on
// every tick. keys and vals must have the same length.
func AppendBroadcastFrame(dst []byte, keys []string, vals []counters.Snapshot) []byte {
	dst = append(dst, '{')
	dst = AppendBroadcastMembers(dst, keys, vals)
	return append(dst, '}')
}

// AppendSessionFrame appends a session frame mapping keys[i] (JSON
// strings, as for AppendBroadcastFrame) to vals[i].
func AppendSessionFrame(dst []byte, keys []string, vals []counters.SessionSnapshot) []byte {
	dst = append(dst, '{')
	dst = AppendSessionMembers(dst, keys, vals)
	return append(dst, '}')
}

// AppendBroadcastMembers appends the members of a per-broadcast frame,
// "key":value, separated by commas, without the braces: a frame built in
// pieces is '{', the pieces joined by ',', and '}'.
func AppendBroadcastMembers(dst []byte, keys []string, vals []counters.Snapshot) []byte {
	return appendMembers(dst, keys, vals, AppendSnapshot)
}

// AppendBroadcastMembersAll is AppendBroadcastMembers with all twelve
// fields per value (AppendSnapshotAll).
func AppendBroadcastMembersAll(dst []byte, keys []string, vals []counters.Snapshot) []byte {
	return appendMembers(dst, keys, vals, AppendSnapshotAll)
}

// AppendSessionMembers is AppendBroadcastMembers for session frames.
func AppendSessionMembers(dst []byte, keys []string, vals []counters.SessionSnapshot) []byte {
	return appendMembers(dst, keys, vals, AppendSessionSnapshot)
}

func appendMembers[V any](dst []byte, keys []string, vals []V, value func([]byte, *V) []byte) []byte {
	if len(keys) != len(vals) {
		panic("BUG: encode: " + strconv.Itoa(len(keys)) + " keys for " + strconv.Itoa(len(vals)) + " values")
	}
	for i := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, keys[i]...)
		dst = append(dst, ':')
		dst = value(dst, &vals[i])
	}
	return dst
}
