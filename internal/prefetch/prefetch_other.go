//go:build !amd64 && !arm64

package prefetch

// Line hints that the cache line holding addr will be read soon. It does
// nothing on this architecture.
func Line(addr uintptr) {}
