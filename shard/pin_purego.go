//go:build moqstats_purego

package shard

import "runtime"

// Variant names the cell-selection strategy compiled in: "procpin" by
// default, "purego" with the moqstats_purego build tag.
const Variant = "purego"

const procPinned = false

// pid is never called in this build; it exists so both builds share code.
func pid() int { return 0 }

// initialSlots sizes a new table: four slots per CPU that can run a
// goroutine at the same time as another. Lanes take slots at random, so
// two lanes bumping at once share a cell with odds of about one in four
// times the number of CPUs; cells are made on first use, so unused slots
// cost a pointer each.
func initialSlots() int { return 4 * runtime.NumCPU() }
