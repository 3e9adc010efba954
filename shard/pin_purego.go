//go:build moqstats_purego

package shard

import "runtime"

// Variant names the cell-selection strategy compiled in: "procpin" by
// default, "purego" with the moqstats_purego build tag.
const Variant = "purego"

const procPinned = false

// pid is never called in this build; it exists so both builds share code.
func pid() int { return 0 }

// initialSlots sizes a new table: one slot per CPU that can run a
// goroutine at the same time as another. Lanes take slots round-robin.
func initialSlots() int { return runtime.NumCPU() }
