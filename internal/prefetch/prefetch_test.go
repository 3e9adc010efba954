package prefetch

import (
	"testing"
	"unsafe"
)

// Line must accept any address, mapped or not, without faulting.
func TestLineNeverFaults(t *testing.T) {
	var x [64]byte
	Line(uintptr(unsafe.Pointer(&x[0])))
	Line(0)
	Line(^uintptr(0) - 64)
}
