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
