//go:build tools

package bench

// Pins benchstat's version for run.sh (go run golang.org/x/perf/cmd/benchstat).
import _ "golang.org/x/perf/cmd/benchstat"
