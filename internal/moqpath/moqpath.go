// Package moqpath normalizes broadcast paths the way moq-net's Path type
// does, so that every spelling of a path maps to one counters key.
//
// # Invariant
//
// Normalize(s) is valid UTF-8, has no leading or trailing '/', and no two
// consecutive '/'. Normalize is idempotent, and returns s itself (no
// allocation) when s is already normal, which is the common case on a
// relay's hot setup path.
//
// HasPrefix compares whole segments: ".stats" is a prefix of ".stats" and
// ".stats/node/x", but not of ".statsfoo". Both arguments must be normal.
package moqpath

import (
	"strings"

	"github.com/moqstats/moqstats/internal/lossy"
)

// Normalize returns the normal form of s: invalid UTF-8 replaced as by
// lossy.Fix, leading and trailing '/' trimmed, runs of '/' collapsed to
// one. A path of only slashes normalizes to "".
func Normalize(s string) string {
	if isNormalASCII(s) {
		return s // the common case, checked eight bytes at a time
	}
	s = lossy.Fix(s)
	if isNormal(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, seg := range strings.Split(s, "/") {
		if seg == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(seg)
	}
	return b.String()
}

const (
	lo7  = 0x7f7f7f7f7f7f7f7f
	hi   = 0x8080808080808080
	ones = 0x0101010101010101
)

// isNormalASCII reports whether s is ASCII and normal. It reads s a word at
// a time: a word with a high bit set has non-ASCII bytes; slashMask marks
// the '/' bytes, and two marks a byte apart, or a mark at a word's end and
// at the next word's start, are a run of slashes.
func isNormalASCII(s string) bool {
	if s == "" {
		return true
	}
	if s[0] == '/' || s[len(s)-1] == '/' {
		return false
	}
	var carry uint64 // the previous word ended in '/'
	for len(s) >= 8 {
		w := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		if w&hi != 0 {
			return false
		}
		m := slashMask(w)
		if m&(m>>8) != 0 || carry&m&0x80 != 0 {
			return false
		}
		carry = m >> 56
		s = s[8:]
	}
	prev := carry != 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || (c == '/' && prev) {
			return false
		}
		prev = c == '/'
	}
	return true
}

// slashMask returns 0x80 in each byte of w (all ASCII) that is '/', and 0
// in the others. (For ASCII bytes, adding 0x7f to each byte of w^'/' sets
// the high bit exactly for the bytes that are not zero.)
func slashMask(w uint64) uint64 {
	v := w ^ ('/' * ones)
	return ^((v & lo7) + lo7 | v) & hi
}

func isNormal(s string) bool {
	if s == "" {
		return true
	}
	if s[0] == '/' || s[len(s)-1] == '/' {
		return false
	}
	return !strings.Contains(s, "//")
}

// HasPrefix reports whether prefix is a leading run of whole segments of
// path. The empty prefix is a prefix of every path.
func HasPrefix(path, prefix string) bool {
	if prefix == "" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

// Join joins normal paths a and b with one '/', skipping empty ones.
func Join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "/" + b
}
