package race

import (
	"os"
	"testing"
)

// TestPlantedDataRaceIsReported races on purpose: two goroutines write one
// variable with nothing ordering the writes. Built with -race it must fail,
// with the detector's "WARNING: DATA RACE" report. It is the fixture with
// which the arm64 race harness (.ci/arm64-race.sh selfcheck) proves that a
// race in the guest fails the run, so it runs only when
// MOQSTATS_PLANTED_RACE=1, and a pass with the variable set means the race
// detector, or the harness, is not working.
func TestPlantedDataRaceIsReported(t *testing.T) {
	if os.Getenv("MOQSTATS_PLANTED_RACE") != "1" {
		t.Skip("a deliberate data race; set MOQSTATS_PLANTED_RACE=1 to run it")
	}
	if !Enabled {
		t.Skip("a deliberate data race, which only the race detector reports: build with -race")
	}
	var n int
	done := make(chan struct{})
	go func() {
		n++ // races with the write below
		close(done)
	}()
	n++ // races with the goroutine's write: nothing orders the two
	<-done
	t.Logf("n = %d", n)
}
