package lossy

import (
	"strings"
	"testing"
	"unsafe"
)

func TestFixReplacesEachMaximalSubpartOnce(t *testing.T) {
	const R = Replacement
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"foo/bar", "foo/bar"},
		{"caf\u00e9 \u2028 \U0001F600", "caf\u00e9 \u2028 \U0001F600"},
		// The worked example of Unicode section 3.9 (Table 3-8's neighbour):
		// 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
		{"a\xF1\x80\x80\xE1\x80\xC2b\x80c\x80\xBFd", "a" + R + R + R + "b" + R + "c" + R + R + "d"},
		{"\xE2\x82", R},                     // truncated 3-byte sequence: one subpart
		{"\xE2\x82x", R + "x"},              // truncated, then ASCII
		{"\xF0\x9F\x98", R},                 // truncated 4-byte sequence
		{"\xC0\xAF", R + R},                 // overlong lead C0 starts nothing
		{"\xE0\x80\x80", R + R + R},         // E0 needs A0..BF next
		{"\xED\xA0\x80", R + R + R},         // surrogate D800
		{"\xF4\x90\x80\x80", R + R + R + R}, // above U+10FFFF
		{"\xF5", R},
		{"\xFF\xFE", R + R},
		{"a\x80", "a" + R},
		{"/\xE2\x82/", "/" + R + "/"},
	} {
		if got := Fix(tc.in); got != tc.want {
			t.Errorf("Fix(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFixKeepsValidInputWithoutCopy(t *testing.T) {
	s := strings.Repeat("valid/päth/", 4)
	if got := Fix(s); unsafe.StringData(got) != unsafe.StringData(s) || got != s {
		t.Fatalf("Fix(%q) = %q, want the same string, not a copy", s, got)
	}
	allocs := testing.AllocsPerRun(100, func() { sink = Fix(s) })
	if allocs != 0 {
		t.Fatalf("Fix on valid input allocated %v times, want 0", allocs)
	}
}

var sink string
