package wiretest

import "testing"

func TestSerdeStringEscapesLikeSerdeJSON(t *testing.T) {
	for in, want := range map[string]string{
		"a/b":          `"a/b"`,
		"<&>":          `"<&>"`,
		"\u2028\u2029": "\"\u2028\u2029\"",
		"\x01\n\"":     `"\u0001\n\""`,
	} {
		if got := string(SerdeString(in)); got != want {
			t.Errorf("SerdeString(%q) = %s, want %s", in, got, want)
		}
	}
}
