package fuzz

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/moqstats/moqstats/internal/lossy"
	"github.com/moqstats/moqstats/internal/moqpath"
)

// completes reports whether p is a proper prefix of some well-formed UTF-8
// sequence, by trying every completion built from boundary bytes of the
// continuation ranges.
func completes(p string) bool {
	edges := []byte{0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF}
	var try func(s string) bool
	try = func(s string) bool {
		if len(s) > len(p) {
			r, size := utf8.DecodeRuneInString(s)
			if size == len(s) && r != utf8.RuneError {
				return true
			}
		}
		if len(s) == utf8.UTFMax {
			return false
		}
		for _, b := range edges {
			if try(s + string([]byte{b})) {
				return true
			}
		}
		return false
	}
	return try(p)
}

// fixByDefinition replaces each maximal subpart of an ill-formed sequence
// with U+FFFD, finding subparts by brute force.
func fixByDefinition(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if r != utf8.RuneError || size > 1 {
			b.WriteString(s[:size])
			s = s[size:]
			continue
		}
		n := 1
		for k := min(3, len(s)); k > 1; k-- {
			if completes(s[:k]) {
				n = k
				break
			}
		}
		b.WriteString("\uFFFD")
		s = s[n:]
	}
	return b.String()
}

func FuzzLossyFix(f *testing.F) {
	for _, s := range []string{"", "a", "\xE2\x82", "a\xF1\x80\x80\xE1\x80\xC2b\x80c\x80\xBFd", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xC0\xAF"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := lossy.Fix(s)
		if want := fixByDefinition(s); got != want {
			t.Fatalf("Fix(%q) = %q, want %q (one U+FFFD per maximal subpart)", s, got, want)
		}
		if lossy.Fix(got) != got {
			t.Fatalf("Fix is not idempotent on %q", got)
		}
	})
}

// normalizeByDefinition is the obvious implementation: split on '/', drop
// empty segments, join.
func normalizeByDefinition(s string) string {
	var segs []string
	for _, seg := range strings.Split(lossy.Fix(s), "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	return strings.Join(segs, "/")
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"", "/", "a//b", "/x/", "\xff/\xfe", "customer-42/live/12345", "abcdefg//hij", "abcdefgh/", "abcdefg//hijklmn"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := moqpath.Normalize(s)
		if want := normalizeByDefinition(s); got != want {
			t.Fatalf("Normalize(%q) = %q, want %q", s, got, want)
		}
		if moqpath.Normalize(got) != got {
			t.Fatalf("Normalize is not idempotent on %q", got)
		}
		if p := moqpath.Normalize(s[:len(s)/2]); p != "" && got != "" && moqpath.HasPrefix(got, p) {
			if got != p && !strings.HasPrefix(got, p+"/") {
				t.Fatalf("HasPrefix(%q, %q) = true for a partial segment", got, p)
			}
		}
	})
}
