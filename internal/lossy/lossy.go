// Package lossy turns arbitrary bytes into valid UTF-8 the way Rust's
// String::from_utf8_lossy does: each maximal subpart of an ill-formed
// sequence becomes one U+FFFD (Unicode 16.0, section 3.9, "U+FFFD
// Substitution of Maximal Subparts").
//
// # Invariant
//
// Fix(s) is valid UTF-8, equals s when s is already valid (and then shares
// its memory: no allocation), and is a pure function of s. Paths are
// keys of the counters maps and of the JSON frames, so two inputs that are
// not byte-equal may share a key after Fix, but one input never yields two.
//
// The maximal-subpart rule (rather than Go's one U+FFFD per invalid byte,
// or strings.ToValidUTF8's one per run) is what a Rust peer produces for the
// same bytes, so a path keyed by a Go relay and one keyed by moq-net agree.
package lossy

import (
	"strings"
	"unicode/utf8"
)

// Replacement is U+FFFD encoded as UTF-8.
const Replacement = "\uFFFD"

// Fix returns s with every maximal subpart of an ill-formed sequence
// replaced by U+FFFD. It returns s itself when s is valid UTF-8.
func Fix(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*utf8.UTFMax)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(Replacement)
			i += Subpart(s[i:])
			continue
		}
		b.WriteString(s[i : i+size])
		i += size
	}
	return b.String()
}

// Subpart returns the length, from 1 to 3, of the maximal subpart at the
// start of s: the longest prefix of s that is a proper prefix of some
// well-formed UTF-8 sequence, or 1 when even s[0] starts none.
//
// s must be non-empty and must not start with a well-formed sequence (as
// when utf8.DecodeRuneInString(s) returns RuneError with size 1).
func Subpart(s string) int {
	lo, hi, n := secondByteRange(s[0])
	if n == 0 || len(s) < 2 || s[1] < lo || s[1] > hi {
		return 1
	}
	// From the third byte on, every well-formed sequence takes 80..BF.
	i := 2
	for i < n && i < len(s) && s[i] >= 0x80 && s[i] <= 0xBF {
		i++
	}
	return i
}

// secondByteRange gives, for a lead byte, the range its second byte must
// fall in and the sequence length (Unicode Table 3-7). n is 0 for bytes
// that start no multi-byte sequence (ASCII, continuation bytes, C0, C1,
// F5..FF).
func secondByteRange(lead byte) (lo, hi byte, n int) {
	switch {
	case lead >= 0xC2 && lead <= 0xDF:
		return 0x80, 0xBF, 2
	case lead == 0xE0:
		return 0xA0, 0xBF, 3 // excludes overlong forms
	case lead == 0xED:
		return 0x80, 0x9F, 3 // excludes surrogates
	case lead >= 0xE1 && lead <= 0xEF:
		return 0x80, 0xBF, 3
	case lead == 0xF0:
		return 0x90, 0xBF, 4 // excludes overlong forms
	case lead >= 0xF1 && lead <= 0xF3:
		return 0x80, 0xBF, 4
	case lead == 0xF4:
		return 0x80, 0x8F, 4 // excludes code points above U+10FFFF
	}
	return 0, 0, 0
}
