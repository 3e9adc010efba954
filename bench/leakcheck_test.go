package bench

import (
	"runtime"
	"sync/atomic"
	"testing"
	"weak"
)

// What the leak check can cost at best: the runtime mechanisms for noticing
// that an object became unreachable, on a guard-sized object, next to the
// allocation alone. moqstats registers a cleanup (add-stop) only for
// guards still open at the next pass or collection (see young.go), so
// guards that close young pay none of these; add-stop is what the others
// were measured against, for the guards that live long:
//
//   - add-stop: runtime.AddCleanup, Cleanup.Stop at Close. Two
//     allocations (the argument's box and the call record) and two
//     acquisitions of the heap's global specials lock.
//   - add-run: AddCleanup without Stop, the cleanup finding the guard
//     closed: Close is free, but every guard's cleanup then runs on the
//     collector's cleanup goroutines.
//   - finalizer: SetFinalizer at open and SetFinalizer(nil) at Close. No
//     extra allocation, but a finalizer resurrects the guard, runs on one
//     goroutine, and cannot be stopped without the same lock.
//   - weak: weak.Make at open and nothing at Close, for a pass that would
//     poll every open guard's weak pointer. Making the handle costs more
//     than add-stop before any polling, as the collector must clear it.
//
// Run with -cpu 1,2: the specials lock is shared by every P.
func BenchmarkLeakCheckMechanisms(b *testing.B) {
	type guard struct {
		lane    uintptr
		sl      *int
		cleanup runtime.Cleanup
	}
	type leak struct {
		s, sl *int
		cell  *int
	}
	var sink atomic.Pointer[guard]
	var x int
	var closed atomic.Bool
	b.Run("alloc", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sink.Store(&guard{sl: &x})
			}
		})
	})
	b.Run("add-stop", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				g := &guard{sl: &x}
				g.cleanup = runtime.AddCleanup(g, func(leak) {}, leak{&x, &x, &x})
				g.cleanup.Stop()
				sink.Store(g)
			}
		})
	})
	b.Run("add-run", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				g := &guard{sl: &x}
				runtime.AddCleanup(g, func(*atomic.Bool) { _ = closed.Load() }, &closed)
				sink.Store(g)
			}
		})
		runtime.GC() // the cleanups run, and count, inside the benchmark
	})
	b.Run("weak", func(b *testing.B) {
		b.ReportAllocs()
		var wsink atomic.Pointer[weak.Pointer[guard]]
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				g := &guard{sl: &x}
				w := weak.Make(g)
				wsink.Store(&w)
				sink.Store(g)
			}
		})
	})
	b.Run("finalizer", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				g := &guard{sl: &x}
				runtime.SetFinalizer(g, func(*guard) {})
				runtime.SetFinalizer(g, nil)
				sink.Store(g)
			}
		})
	})
}
