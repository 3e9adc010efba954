package bench

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
)

const memoryEntries = 20000

// heapInUse returns live heap bytes after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkEntryMemory is target 4: heap bytes per live entry holding one
// broadcast guard and one track guard bumped by one goroutine. "opened"
// counts the entry, its map slot and the guards; "steady" adds what the
// passes keep per entry once it has been emitted (sorted rows, frame
// scratch). Run with -cpu 2,64: the result must not depend on GOMAXPROCS.
func BenchmarkEntryMemory(b *testing.B) {
	paths := make([]string, memoryEntries)
	for i := range paths {
		paths[i] = fmt.Sprintf("customer-%d/live/%d", i%97, i)
	}
	var opened, steady float64
	// A b.N loop, not b.Loop: the testing package reports the first -cpu
	// value of a b.Loop benchmark from its probe run, at the default
	// GOMAXPROCS.
	for range b.N {
		s, err := moqstats.New(moqstats.Config{Origin: &Discard{}, Interval: 1 << 62})
		if err != nil {
			b.Fatal(err)
		}
		before := heapInUse()
		guards := make([]*moqstats.BroadcastGuard, 0, memoryEntries)
		tracks := make([]*moqstats.TrackGuard, 0, memoryEntries)
		h := s.Tier(moqstats.External)
		for _, p := range paths {
			g := h.Broadcast(p).Publisher()
			t := g.Track("video")
			t.Bytes(1200)
			t.Frame()
			guards = append(guards, g)
			tracks = append(tracks, t)
		}
		slices := uint64(cap(guards)+cap(tracks)) * 8 // the benchmark's own bookkeeping
		opened = float64(heapInUse()-before-slices) / memoryEntries
		// Three passes with every entry changed: the third reuses the
		// frame buffers of the first two, as every later one does.
		for range 3 {
			s.Flush()
			for _, t := range tracks {
				t.Frame()
			}
		}
		steady = float64(heapInUse()-before-slices) / memoryEntries
		for i := range tracks {
			tracks[i].Close()
			guards[i].Close()
		}
		s.Close()
	}
	b.ReportMetric(opened, "B/entry-opened")
	b.ReportMetric(steady, "B/entry-steady")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkHotEntryMemory reports what a broadcast bumped from every P
// costs, guards included: its publisher counters inflate to per-P cells.
// Informational: it grows with GOMAXPROCS by design (see package shard).
// One goroutine per P opens a guard on each of hotEntries broadcasts, all
// open at once; the goroutines start before the first heap reading so
// their descriptors are not counted.
func BenchmarkHotEntryMemory(b *testing.B) {
	const hotEntries = 200
	var perEntry float64
	for range b.N { // not b.Loop: see BenchmarkEntryMemory

		s, err := moqstats.New(moqstats.Config{Origin: &Discard{}, Interval: 1 << 62})
		if err != nil {
			b.Fatal(err)
		}
		procs := runtime.GOMAXPROCS(0)
		tracks := make([][]*moqstats.TrackGuard, procs)
		for i := range tracks {
			tracks[i] = make([]*moqstats.TrackGuard, hotEntries)
		}
		start := make(chan struct{})
		var opened, done sync.WaitGroup
		opened.Add(procs)
		for i := range tracks {
			done.Go(func() {
				<-start
				h := s.Tier(moqstats.External)
				for e := range hotEntries {
					tracks[i][e] = h.Broadcast(fmt.Sprint("hot/", e)).PublisherTrack("video")
				}
				opened.Done()
				opened.Wait() // every guard open at once: the sets inflate
				for _, t := range tracks[i] {
					t.Bytes(1200)
				}
			})
		}
		before := heapInUse()
		close(start)
		done.Wait()
		perEntry = float64(heapInUse()-before) / hotEntries
		for _, ts := range tracks {
			for _, t := range ts {
				t.Close()
			}
		}
		s.Close()
	}
	b.ReportMetric(perEntry, "B/hot-entry")
	// The GOMAXPROCS the figure was measured at: with -benchtime 1x the
	// testing package reports the first -cpu value from its probe run,
	// made at whatever GOMAXPROCS the benchmark before left, so that
	// "-2" can be a 64-P figure. Use 2x or more.
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "procs")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRetainedMemory reports what a collected broadcast costs while it
// is retained (Config.Retention): its final counts, key and bookkeeping,
// with no shards or padding. The same churn runs with retention and
// without, and the difference in live heap, per key, is what retention
// keeps. Each key used one slot.
func BenchmarkRetainedMemory(b *testing.B) {
	paths := make([]string, memoryEntries)
	for i := range paths {
		paths[i] = fmt.Sprintf("customer-%d/live/%d", i%97, i)
	}
	churn := func(retention time.Duration) (*moqstats.Stats, uint64) {
		s, err := moqstats.New(moqstats.Config{Origin: &Discard{}, Interval: 1 << 62, Retention: retention})
		if err != nil {
			b.Fatal(err)
		}
		s.Flush()
		before := heapInUse()
		h := s.Tier(moqstats.External)
		for _, p := range paths {
			t := h.Broadcast(p).PublisherTrack("video")
			t.Bytes(1200)
			t.Close()
		}
		s.Flush() // final counts out: collected, and retained or not
		s.Flush() // the frame without them
		return s, heapInUse() - before
	}
	var perKey float64
	for range b.N { // not b.Loop: see BenchmarkEntryMemory
		on, kept := churn(0)
		off, notKept := churn(moqstats.NoRetention)
		perKey = (float64(kept) - float64(notKept)) / memoryEntries
		on.Close()
		off.Close()
	}
	b.ReportMetric(perKey, "B/retained-key")
	b.ReportMetric(0, "ns/op")
}
