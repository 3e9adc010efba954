package moqpath

import (
	"testing"
	"unicode/utf8"
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

func FuzzNormalizeIsNormalAndIdempotent(f *testing.F) {
	for _, s := range []string{"", "/", "a//b", "/x/", "\xff/\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := Normalize(s)
		if !utf8.ValidString(n) || !isNormal(n) {
			t.Fatalf("Normalize(%q) = %q is not normal", s, n)
		}
		if again := Normalize(n); again != n {
			t.Fatalf("Normalize not idempotent: Normalize(%q) = %q", n, again)
		}
	})
}
