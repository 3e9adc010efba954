#!/usr/bin/env bash
# Runs the benchmarks behind BENCHMARKS.md: every target next to its
# baselines, COUNT times, interleaving the repetitions so a noisy machine
# hurts every benchmark alike, in the default (procpin) build and the
# moqstats_purego build. Writes out/procpin.txt and out/purego.txt, then
# prints benchstat tables and the target table.
#
#   COUNT=10 BENCHTIME=500ms ./run.sh
set -euo pipefail
cd "$(dirname "$0")"
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-300ms}
mkdir -p out
go test -c -o out/bench.test .
go test -c -tags moqstats_purego -o out/bench-purego.test .
: >out/procpin.txt
: >out/purego.txt

run() { # binary, output, then go test flags
	local bin=$1 out=$2
	shift 2
	"./out/$bin" -test.run '^$' -test.count 1 "$@" >>"out/$out"
}

for i in $(seq "$COUNT"); do
	echo "round $i of $COUNT" >&2
	for v in "bench.test procpin.txt" "bench-purego.test purego.txt"; do
		set -- $v
		run "$1" "$2" -test.bench '^Benchmark(Contended|Churn)$' -test.cpu 1,2,8,64 -test.benchtime "$BENCHTIME"
		run "$1" "$2" -test.bench '^Benchmark(Uncontended|GuardOpenClose)$' -test.cpu 2 -test.benchtime "$BENCHTIME"
	done
	run bench.test procpin.txt -test.bench '^Benchmark(EntryMemory|HotEntryMemory)$' -test.cpu 2,64 -test.benchtime 3x
	run bench.test procpin.txt -test.bench '^BenchmarkRetainedMemory$' -test.cpu 2 -test.benchtime 1x
	run bench.test procpin.txt -test.bench '^BenchmarkLeakCheckMechanisms$' -test.cpu 1,2 -test.benchtime "$BENCHTIME"
	run bench.test procpin.txt -test.bench '^Benchmark(Flush|Encode)$' -test.cpu 2 -test.benchtime 20x
	run bench.test procpin.txt -test.bench '^BenchmarkWire$' -test.cpu 2 -test.benchtime 300x
	run bench.test procpin.txt -test.bench '^BenchmarkCompressor$' -test.cpu 2 -test.benchtime 5x
done

benchstat() { go run golang.org/x/perf/cmd/benchstat "$@"; }
echo
echo "== default build (procpin) =="
benchstat out/procpin.txt
echo
echo "== procpin vs purego (hot path) =="
benchstat out/procpin.txt out/purego.txt
echo
echo "== targets =="
go run ./cmd/targets out/procpin.txt out/purego.txt
