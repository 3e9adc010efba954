package moqpath

import (
	"strings"
	"testing"
	"unsafe"
)

func TestNormalizeTrimsAndCollapsesSlashes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"/", ""},
		{"///", ""},
		{"foo", "foo"},
		{"/foo/", "foo"},
		{"foo//bar", "foo/bar"},
		{"//sjc///1//", "sjc/1"},
		{"a/b/c", "a/b/c"},
		{" a / b ", " a / b "}, // spaces are ordinary bytes, as in moq Path
		{".stats", ".stats"},
		{"/\xffx//", "\uFFFDx"},
		{"a\xE2\x82/b", "a\uFFFD/b"},
	} {
		if got := Normalize(tc.in); got != tc.want {
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNormalizeReturnsNormalInputUnchanged(t *testing.T) {
	for _, s := range []string{"", "foo", "demo/bbb", "sjc/1/x"} {
		got := Normalize(s)
		if got != s || (s != "" && unsafe.StringData(got) != unsafe.StringData(s)) {
			t.Errorf("Normalize(%q) = %q, want the same string, not a copy", s, got)
		}
	}
}

func TestHasPrefixMatchesWholeSegments(t *testing.T) {
	for _, tc := range []struct {
		path, prefix string
		want         bool
	}{
		{".stats", ".stats", true},
		{".stats/node/x", ".stats", true},
		{".stats/node", ".stats/node", true},
		{".statsfoo", ".stats", false},
		{".stat", ".stats", false},
		{"foo/.stats", ".stats", false},
		{"", ".stats", false},
		{"anything", "", true},
		{"", "", true},
		{"a/b", "a/b/c", false},
	} {
		if got := HasPrefix(tc.path, tc.prefix); got != tc.want {
			t.Errorf("HasPrefix(%q, %q) = %v, want %v", tc.path, tc.prefix, got, tc.want)
		}
	}
}

func TestJoinSkipsEmptySides(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{".stats", "node", ".stats/node"},
		{"", "node", "node"},
		{"a", "", "a"},
		{"", "", ""},
		{".stats/node", "sjc/1", ".stats/node/sjc/1"},
	} {
		if got := Join(tc.a, tc.b); got != tc.want {
			t.Errorf("Join(%q, %q) = %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestNormalASCIIFastPathAgreesWithDefinition checks the word-at-a-time
// check against the definition on every string of up to 11 bytes over an
// alphabet of a letter, a slash and a non-ASCII byte, which covers slash
// runs inside a word, across words and in the tail.
func TestNormalASCIIFastPathAgreesWithDefinition(t *testing.T) {
	var check func(s string, depth int)
	check = func(s string, depth int) {
		if got, want := isNormalASCII(s), isNormal(s) && isASCII(s); got != want {
			t.Fatalf("isNormalASCII(%q) = %v, want %v", s, got, want)
		}
		if depth > 0 {
			for _, c := range []string{"a", "/", "\x80"} {
				check(s+c, depth-1)
			}
		}
	}
	check("", 11)
	for _, s := range []string{"customer-42/live/12345", "abcdefg//hij", "abcdefgh/ijklmnop", "abcdefgh//", "abcdefg/h/ijklmno/q"} {
		if got, want := isNormalASCII(s), isNormal(s) && isASCII(s); got != want {
			t.Fatalf("isNormalASCII(%q) = %v, want %v", s, got, want)
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// normalizeByDefinition is Normalize for valid UTF-8, spelled out:
// non-empty segments joined by one '/'.
func normalizeByDefinition(s string) string {
	var segs []string
	for _, seg := range strings.Split(s, "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	return strings.Join(segs, "/")
}

// A "//" that straddles two 8-byte words is seen by the word-at-a-time
// check, including when both words are whole.
func TestNormalizeCatchesDoubleSlashAcrossWords(t *testing.T) {
	for _, s := range []string{"abcdefg//hijklmn", "abcdefg//hij", "abcdefghijklmno//pqrstuvw"} {
		if got, want := Normalize(s), normalizeByDefinition(s); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", s, got, want)
		}
	}
}

// Every string of 'a' and '/' up to 17 bytes (two whole words and one
// byte more) normalizes as the definition says.
func TestNormalizeEveryShortSlashPattern(t *testing.T) {
	buf := make([]byte, 0, 17)
	for n := 0; n <= 17; n++ {
		for bits := 0; bits < 1<<n; bits++ {
			buf = buf[:0]
			for i := range n {
				if bits&(1<<i) != 0 {
					buf = append(buf, '/')
				} else {
					buf = append(buf, 'a')
				}
			}
			s := string(buf)
			if got, want := Normalize(s), normalizeByDefinition(s); got != want {
				t.Fatalf("Normalize(%q) = %q, want %q", s, got, want)
			}
		}
	}
}
