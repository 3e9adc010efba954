package procid

import (
	"runtime"
	"testing"
)

// Pin returns a usable index: never negative, and in the default build
// below GOMAXPROCS.
func TestPinReturnsAnIndex(t *testing.T) {
	for range 1000 {
		p := Pin()
		Unpin()
		if p < 0 {
			t.Fatalf("Pin() = %d, want >= 0", p)
		}
		if Pinned && p >= runtime.GOMAXPROCS(0) {
			t.Fatalf("Pin() = %d, want < GOMAXPROCS (%d)", p, runtime.GOMAXPROCS(0))
		}
	}
}
