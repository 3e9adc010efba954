//go:build !linux

package bench

import "time"

// threadCPU reports no thread CPU time off Linux: the benchmarks then
// leave out their CPU metrics.
func threadCPU() (time.Duration, bool) { return 0, false }

// processCPU reports no process CPU time off Linux.
func processCPU() (time.Duration, bool) { return 0, false }
