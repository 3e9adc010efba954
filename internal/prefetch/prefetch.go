// Package prefetch asks the CPU to start loading a cache line that code
// will read soon, without waiting for it: a software prefetch. The snapshot
// pass uses it to overlap the cache misses of the rows it will read next
// with the work on the rows at hand, which a plain load cannot do (a load
// that misses holds up every instruction behind it once the reorder window
// fills).
//
// Line is a hint: it never faults, has no effect on program semantics, and
// is a no-op on architectures without an implementation here.
package prefetch
