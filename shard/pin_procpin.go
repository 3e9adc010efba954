//go:build !moqstats_purego

package shard

import (
	_ "unsafe" // for go:linkname
)

// Variant names the cell-selection strategy compiled in: "procpin" by
// default, "purego" with the moqstats_purego build tag.
const Variant = "procpin"

const procPinned = true

//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

// pid returns the id of the P the caller runs on, in [0, GOMAXPROCS). The
// caller may be moved to another P right after; every use here only needs
// a good guess, and every cell is bumped atomically.
func pid() int {
	p := procPin()
	procUnpin()
	return p
}

// initialSlots sizes a new table: one slot per P.
func initialSlots() int { return procs() }
