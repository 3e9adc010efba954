package moqstats_test

import (
	"fmt"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/internal/race"
)

// TestHotPathAllocations pins the allocation budget: nothing per bump, one
// (the guard) per guard open+close on a live entry with the leak check off,
// two for a session's first subscription to a broadcast, and two more with
// the leak check on (runtime.AddCleanup's argument and call record);
// nothing at all when disabled.
func TestHotPathAllocations(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates")
	}
	for _, leakCheck := range []bool{false, true} {
		t.Run(fmt.Sprint("leakCheck=", leakCheck), func(t *testing.T) {
			extra := 0.0
			if leakCheck {
				extra = 2
			}
			s, _ := setupConfig(t, moqstats.Config{Interval: time.Hour, DisableLeakCheck: !leakCheck})
			h := s.Tier(moqstats.External)
			bs := h.Broadcast("live")
			pin := bs.Publisher() // keeps the entry live
			defer pin.Close()
			tr := pin.Track("video")
			defer tr.Close()
			other := pin.Track("audio") // a second lane: the set is inflated
			defer other.Close()
			viewer := h.PublisherBroadcasts()
			keep := viewer.Subscribe("live")
			defer keep.Close()
			sess := h.Session("acme")
			defer sess.Close()
			viewer2 := h.PublisherBroadcasts() // a session with no subscription yet

			off, _ := moqstats.New(moqstats.Config{})
			offH := off.Tier(moqstats.External)

			for _, tc := range []struct {
				name string
				max  float64
				f    func()
			}{
				{"TrackGuard bumps", 0, func() { tr.Bytes(1200); tr.Frame(); tr.Group() }},
				{"Broadcast lookup", 0, func() { h.Broadcast("live") }},
				{"track guard open+close", 1 + extra, func() { pin.Track("v").Close() }},
				{"PublisherTrack open+close", 1 + extra, func() { bs.PublisherTrack("v").Close() }},
				{"broadcast guard open+close", 1 + extra, func() { bs.Publisher().Close() }},
				{"first subscription open+close", 2 + extra, func() { viewer2.Subscribe("live").Close() }},
				{"second subscription open+close", 1 + extra, func() { viewer.Subscribe("live").Close() }},
				{"session open+close", 1 + extra, func() { h.Session("acme").Close() }},
				{"disabled everything", 0, func() {
					b := offH.Broadcast("x")
					g := b.Publisher()
					t := g.Track("v")
					t.Bytes(1)
					t.Frame()
					t.Close()
					g.Close()
					offH.PublisherBroadcasts().Subscribe("x").Close()
					offH.Session("r").Close()
				}},
			} {
				if n := testing.AllocsPerRun(200, tc.f); n > tc.max {
					t.Errorf("%s: %v allocations, want at most %v", tc.name, n, tc.max)
				}
			}
		})
	}
}

// TestBumpsInline checks with the compiler's own report that the bump
// methods inline into callers, and that the shard add inlines into them:
// a bump is then a nil check, a load and an atomic add, with no call.
func TestBumpsInline(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	out, err := exec.Command(goTool, "build", "-gcflags=-m", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -gcflags=-m: %v\n%s", err, out)
	}
	for _, want := range []string{
		`can inline \(\*TrackGuard\)\.Bytes`,
		`can inline \(\*TrackGuard\)\.Frame`,
		`guards\.go:\d+:\d+: inlining call to shard\.\(\*Lane\)\.Add`,
	} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("compiler output lacks %q:\n%s", want, out)
		}
	}
}

// TestSlotsAndEntriesAreLineAligned pins the layout that keeps every
// slot's counters on cache lines of their own: slots have a power-of-two
// size, which Go's allocator aligns to; broadcast entries hold their first
// slot at offset 0 and are exactly 384 bytes, a size class that is a
// multiple of 128 and served without a header before the object, so they
// are allocated aligned too (checked on real entries below).
func TestSlotsAndEntriesAreLineAligned(t *testing.T) {
	if size := moqstats.SlotSize; size&(size-1) != 0 || size%moqstats.LineSize != 0 {
		t.Errorf("slot size %d: want a power of two and a multiple of the %d-byte line", size, moqstats.LineSize)
	}
	if moqstats.EntrySize != 384 {
		t.Errorf("entry size %d, want 384", moqstats.EntrySize)
	}
	if moqstats.FirstSlotOffset != 0 {
		t.Errorf("an entry's own slot is at offset %d, want 0", moqstats.FirstSlotOffset)
	}
	s, _ := setup(t)
	h := s.Tier(moqstats.External)
	for i := range 200 {
		path := fmt.Sprint("aligned/", i)
		g := h.Broadcast(path).Publisher()
		defer g.Close()
		if addr := moqstats.EntryAddr(s, path); addr%moqstats.LineSize != 0 {
			t.Fatalf("entry %d at %#x, not aligned to the %d-byte line", i, addr, moqstats.LineSize)
		}
	}
}

// Guards are what churn allocates: each stays in the smallest size class
// its fields allow, the leak check's state included (one word, no cleanup
// handle until a guard is registered; a track guard keeps it in its slot
// pointer's word, so it is the same with the check on or off).
func TestGuardsStayInTheirSizeClasses(t *testing.T) {
	want := map[string]uintptr{
		"TrackGuard":        16,
		"BroadcastGuard":    32,
		"SubscriptionGuard": 24,
		"SessionGuard":      16,
	}
	for name, size := range moqstats.GuardSizes {
		if size != want[name] {
			t.Errorf("%s is %d bytes, want %d", name, size, want[name])
		}
	}
	// A power of two from 1 KiB up is a size class whose objects are
	// aligned to their size, so no two Ps' rings share a line.
	if size := moqstats.YoungRingSize; size < 1024 || size&(size-1) != 0 {
		t.Errorf("a young ring is %d bytes, want a power of two of at least 1024", size)
	}
}
