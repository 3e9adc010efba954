//go:build race

// Package race reports whether the race detector is compiled in, so that
// tests can skip what the detector distorts (allocation counts, timing).
//
// Enabled is a constant, so branches on it compile away.
package race

// Enabled is true when the binary was built with -race.
const Enabled = true
