//go:build !moqstats_purego

package procid

import (
	_ "unsafe" // for go:linkname
)

// Pinned reports whether Pin keeps the caller on its P until Unpin.
const Pinned = true

//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

// Pin disables preemption and returns the id of the caller's P, in
// [0, GOMAXPROCS). Unpin must follow, on the same goroutine, with no
// blocking call in between.
func Pin() int { return procPin() }

// Unpin undoes Pin.
func Unpin() { procUnpin() }
