// Package bench measures moqstats against the baselines it has to beat:
// the reference design translated literally (one shared atomic per
// counter), xsync.Counter, the Prometheus and VictoriaMetrics counters, a
// mutex-guarded map of entries, encoding/json and sonic; and what serving
// the stats broadcast over moq-lite (package moqlite) costs the pass and
// each subscriber.
//
// It is a module of its own so that the comparison-only dependencies stay
// out of the library's go.mod. The benchmarks are in the _test.go files;
// this package holds the baselines they run. BENCHMARKS.md at the
// repository root records what they measured and how to run them
// (make bench, make profile).
package bench
