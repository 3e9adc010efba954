//go:build moqstats_purego

package procid

import "math/rand/v2"

// Pinned reports whether Pin keeps the caller on its P until Unpin.
const Pinned = false

// Pin returns a random index; the caller may be preempted at any time.
func Pin() int { return int(rand.Uint32() >> 1) }

// Unpin undoes Pin (nothing, in this build).
func Unpin() {}
