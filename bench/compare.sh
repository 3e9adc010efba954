#!/usr/bin/env bash
# Compares the library at BASE (a git revision) with the working tree on
# the benchmarks behind one change: both binaries are built from the same
# benchmark sources (this tree's bench/), and each round runs every
# benchmark on BASE and then on the tree, so a noisy machine hurts both
# alike. Writes out/compare-base.txt and out/compare-head.txt and prints
# benchstat's comparison.
#
#   COUNT=5 BENCHTIME=300ms ./compare.sh 758ba23
set -euo pipefail
cd "$(dirname "$0")"
BASE=${1:?usage: compare.sh BASE-REVISION}
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-300ms}
mkdir -p out
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git -C .. archive "$BASE" | tar -x -C "$src"
rm -rf "$src/bench"
cp -r . "$src/bench"
rm -rf "$src/bench/out"
(cd "$src/bench" && go test -c -o "$OLDPWD/out/compare-base.test" .)
go test -c -o out/compare-head.test .
: >out/compare-base.txt
: >out/compare-head.txt

for i in $(seq "$COUNT"); do
	echo "round $i of $COUNT" >&2
	for v in base head; do
		run() { "./out/compare-$v.test" -test.run '^$' -test.count 1 "$@" >>"out/compare-$v.txt"; }
		run -test.bench '^Benchmark(Churn|Contended)$' -test.cpu 1,2,8,64 -test.benchtime "$BENCHTIME"
		run -test.bench '^Benchmark(Uncontended|GuardOpenClose)$' -test.cpu 2 -test.benchtime "$BENCHTIME"
		run -test.bench '^Benchmark(EntryMemory|HotEntryMemory)$' -test.cpu 2,64 -test.benchtime 3x
		run -test.bench '^BenchmarkRetainedMemory$' -test.cpu 2 -test.benchtime 1x
		run -test.bench '^BenchmarkFlush$' -test.cpu 2 -test.benchtime 5x
		run -test.bench '^BenchmarkWire$' -test.cpu 2 -test.benchtime 100x
	done
done
go run golang.org/x/perf/cmd/benchstat base=out/compare-base.txt head=out/compare-head.txt
