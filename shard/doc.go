// Package shard provides Set, a group of Width monotonic counters that many
// goroutines bump at once and one reader sums. A bump through a Lane costs
// what one uncontended atomic add costs, and scales with cores when many
// goroutines bump the same set.
//
// # Design
//
// A hot caller (a guard that bumps bytes and frames once per media frame)
// attaches a Lane to the Set: a pointer to the cell its bumps land in. A
// bump is one pointer load and one atomic add, small enough to inline with
// no call, so the cell is chosen when the lane attaches, not per bump.
// Choosing per bump (procPin, then add) was measured at about twice the
// cost of an atomic add from one goroutine: the calls alone cost more than
// the add.
//
// The set is adaptive, in the spirit of Java's LongAdder (Striped64): it
// starts as one compact base cell, which one lane at a time may hold (the
// set's owner counts its lanes opening and closing in two of the counters,
// and Attach reads them: no lock and no flag). Only when a lane attaches
// while another holds base, so that two goroutines may bump at the same
// instant, is the set inflated: it gets a table of
// per-P slots, and every later lane a padded cell of its own P, allocated
// on first use (an inflated set stops handing out base, so lanes opening
// and closing on a busy set never write a shared line). A set bumped by
// one goroutine at a time, which is most of a relay's broadcasts, never
// allocates a cell. A lane's owner may make one last bump in the cell that
// Detach returns, which keeps a guard's open and close bumps in its own
// cell too.
//
// Which cell a lane takes depends on the build:
//
//   - default: the cell of the P the attaching goroutine runs on, read
//     through runtime.procPin and runtime.procUnpin (linknamed; the
//     runtime keeps them for this use, go.dev/issue/67401). Set.Repin moves
//     a lane to the cell of its current P, for callers that can afford a
//     call now and then (once per group). One-off bumps (Set.Add) also go
//     to the caller's P cell when it exists.
//   - tag moqstats_purego: a cell at random, over four slots per CPU. No
//     runtime internals; kept so the package builds the day the runtime
//     closes that door.
//
// GOMAXPROCS may change at run time (Go follows cgroup limits). A P id
// beyond the table grows the table, under the set's mutex, before it is
// used, so every index is in range. Growth copies the slot pointers into a
// larger table; cells never move and are never dropped, so bumps through
// lanes that hold a cell from the old table are still summed.
//
// No lock, allocation or call is on the bump path. The set's mutex
// serializes only table creation, growth and cell creation, which happen
// when lanes attach.
//
// # Memory
//
// An uninflated Set costs unsafe.Sizeof(Set{}), 128 bytes: Width counters
// plus a few words. It does not pad itself; its owner aligns it (package
// moqstats gives each set a slot of its own, a power-of-two allocation),
// because padding matters beyond the cells: a set header that shared a line
// with a neighbour's hot counters made contended runs several times slower.
// An inflated set adds
//
//	one table:  8 * nextPow2(GOMAXPROCS) bytes of slots (purego: 4*NumCPU)
//	per cell:   Width counters rounded up to whole lines (128 bytes)
//
// with one cell per P that attached a lane. At GOMAXPROCS=64 a set that two
// goroutines bump costs 128 + 512 + 128 bytes; one bumped from all 64 Ps,
// 128 + 512 + 64*128. Pad sizes are computed from unsafe.Sizeof against
// cpu.CacheLinePad and asserted by tests.
//
// # Reading
//
// Sum adds up selected counters over the base cell and every cell. It is
// not an atomic snapshot of the set: bumps that run during Sum may or may
// not be included. What Sum does guarantee comes from Go's memory model,
// under which all sync/atomic operations behave as if executed in one
// sequentially consistent order, and an atomic operation that observes
// another's effect is synchronized after it: if Sum observes a bump B (in
// any cell), then every bump that happened before B is visible to every
// load Sum or a later Sum makes afterwards. A cell is published (stored in
// its slot) before any lane can point at it, so a bump that happened before
// B went to a cell that a later load of the table and its slots reaches:
// each Sum loads the table afresh, and a later table holds every cell of an
// earlier one. Package counters builds its closed-before-open snapshot on
// exactly this.
//
// Counters wrap at 2^64 like any uint64; at 100 Gbit/s a byte counter
// takes 46 years to wrap.
//
// # What the tests show, and what they do not
//
// The tests run under the race detector on amd64 and arm64, natively and
// in an emulated arm64 guest (make test-arm64-race), on a CPU with LSE
// atomics and on one without (load-exclusive/store-exclusive loops). The
// race detector checks the happens-before edges this package relies on,
// whatever the hardware did: a cell or table published without a
// synchronizing store, then used through another goroutine's lane or Sum,
// is reported even where the CPU never reorders. Emulation does not show
// arm64's own reorderings: qemu's TCG performs the guest's memory accesses
// as the host's, so on an amd64 host the guest sees x86-TSO (where loads
// are never reordered with loads, nor stores with stores), and arm64
// hardware shows only the interleavings that occurred. So the guarantees
// under Reading are argued from the Go memory model; the tests check that
// the code keeps to it, not that every ordering was tried.
package shard
