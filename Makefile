GO ?= go

.PHONY: test fmt-check vet actionlint test-race bench-smoke test-arm64 test-arm64-race test-arm64-race-ci test-arm64-race-selfcheck soak fuzz demo bench bench-wire bench-moq bench-follow profile

# The README's test command: formatting, vet, the CI workflow's lint, the
# race-enabled test suite in both shard-selection builds (procPin by
# default, and the moqstats_purego fallback), and every benchmark once so
# none rots.
test: fmt-check vet actionlint test-race bench-smoke

fmt-check:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags moqstats_purego ./...
	cd bench && $(GO) vet ./...
	cd promstats && $(GO) vet ./...
	cd moqlite && $(GO) vet ./...
	cd cmd/moqstats-demo && $(GO) vet ./...

# The CI workflow, checked by actionlint from the tools module (built on
# first use). Its shellcheck and pyflakes passes are off, so the result does
# not depend on what else the machine has installed.
actionlint:
	cd tools && $(GO) tool actionlint -shellcheck= -pyflakes= ../.github/workflows/*.yml

test-race:
	$(GO) test -race -count=1 ./...
	$(GO) test -race -count=1 -tags moqstats_purego ./...
	cd promstats && $(GO) test -race -count=1 ./...
	cd moqlite && $(GO) test -race -count=1 ./...
	cd cmd/moqstats-demo && $(GO) test -race -count=1 ./...

bench-smoke:
	cd bench && $(GO) test -short -run '^$$' -bench . -benchtime 1x -cpu 2,64 .
	$(GO) test -run '^$$' -bench . -benchtime 1x ./httpstats ./consumer

# The test suite built for arm64 (128-byte cache lines, a weaker memory
# model) and run under qemu-user, in both builds. Installs qemu-user-static
# from Debian when it is missing (as root). No -race: the race runtime needs
# a 48-bit address space, which qemu-user lacks; test-arm64-race runs it.
test-arm64:
	@command -v qemu-aarch64-static >/dev/null || { \
		echo "installing qemu-user-static"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null; }
	GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64-static ./...
	GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64-static -tags moqstats_purego ./...

# Every package's tests and the soak, built with -race for arm64 in both
# builds, run in a full-system arm64 guest (qemu-system-aarch64, whose 48-bit
# address space the race runtime needs), booted once on a CPU with LSE
# atomics (max) and once without (cortex-a72). Fails when a test fails, the
# race detector reports, or a guest does not finish in time. Installs what
# it needs from Debian (as root); see .ci/arm64-race.sh for its settings.
# The CI workflow runs it; .ci/run runs test-arm64-race-ci.
ARM64_RACE_SOAK ?= 5s
test-arm64-race:
	ARM64_RACE_SOAK=$(ARM64_RACE_SOAK) GO=$(GO) .ci/arm64-race.sh

# The part of test-arm64-race that .ci/run runs on every landing: one boot
# on cortex-a72 (ARMv8.0, so Go's atomics are LL/SC loops, the weaker of
# the two models), running with -test.short the race build of the packages
# whose memory-model arguments matter, in both builds, without the soak.
ARM64_RACE_CI_PKGS ?= . ./shard ./counters ./internal/registry ./snapshot
ARM64_RACE_CI_BOOT_TIMEOUT ?= 900
test-arm64-race-ci:
	ARM64_RACE_PKGS='$(ARM64_RACE_CI_PKGS)' ARM64_RACE_CPUS=cortex-a72 ARM64_RACE_SHORT=1 ARM64_RACE_SOAK=0 \
		ARM64_RACE_BOOT_TIMEOUT=$(ARM64_RACE_CI_BOOT_TIMEOUT) GO=$(GO) .ci/arm64-race.sh

# Proves that test-arm64-race can fail: one boot running a planted data race
# (internal/race), which passes only if the run fails with the race report.
test-arm64-race-selfcheck:
	GO=$(GO) .ci/arm64-race.sh selfcheck

# Everything at once for SOAK (default 60s) under the race detector: guard
# churn on hostile paths, failing writes, GOMAXPROCS changes, leaked guards;
# every frame checked, and every count at the end (see internal/soak).
SOAK ?= 60s
soak:
	$(GO) test -race -count=1 -v -run '^TestSoak$$' ./internal/soak -soak=$(SOAK)

# Every fuzz target for FUZZTIME each (default 30s), in ./fuzz and in the
# moqlite module's fuzz package; new crashers land in that package's
# testdata, which make test then runs as regression tests.
FUZZTIME ?= 30s
fuzz:
	@set -e; for dir in . moqlite; do \
		for target in $$(cd $$dir && $(GO) test -list '^Fuzz' ./fuzz | grep '^Fuzz'); do \
			echo "== $$dir: $$target"; \
			(cd $$dir && $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./fuzz); \
		done; \
	done

# A simulated relay with a live dashboard at http://127.0.0.1:8080, and its
# stats over moq-lite at ws://127.0.0.1:8080/moq and (WebTransport, UDP)
# https://127.0.0.1:8080/moq, until Ctrl-C; flags in DEMOFLAGS (see
# cmd/moqstats-demo). Ctrl-C must end it
# cleanly: the demo prints its last status line and exits 0, and so must
# make. So the demo is built and run itself (go run exits 1 when
# interrupted), and, on a terminal, as a job of its own (bash's job
# control, set -m), which gets the terminal: Ctrl-C reaches the demo alone,
# not make, which would die of it. Ctrl-Z stops the demo; the loop then
# stops make too, as the shell expects, and puts the demo back in the
# foreground when the shell continues make.
DEMOFLAGS ?=
demo: SHELL := /bin/bash
demo:
	cd cmd/moqstats-demo && $(GO) build -o moqstats-demo .
	@if [ -t 0 ]; then set -m; fi; \
	cmd/moqstats-demo/moqstats-demo $(DEMOFLAGS); status=$$?; \
	while [ -n "$$(jobs -ps)" ]; do kill -STOP 0; fg >/dev/null; status=$$?; done; \
	exit $$status

# Every performance target next to its baselines, COUNT times (default 5),
# with benchstat tables and the target table; see BENCHMARKS.md.
bench:
	bench/run.sh

# The compressed tracks against the plain ones (targets 11 and 12): bytes
# and pass time at 10k and 100k broadcasts with 0.1%, 1% and 100% changing,
# 300 passes each, COUNT times (default 3).
bench-wire:
	mkdir -p bench/out
	cd bench && $(GO) test -run '^$$' -bench '^BenchmarkWire$$' -cpu 2 -benchtime 300x -count $${COUNT:-3} . | tee out/wire.txt
	cd bench && $(GO) run ./cmd/targets -measured out/wire.txt

# What serving the stats broadcast over moq-lite costs: the pass with 0 to
# 1,000 loopback WebSocket subscribers on all twelve tracks against a twin
# with none, and heap and goroutines per subscriber on each side, COUNT
# times (default 6); see BenchmarkMoQPass and BENCHMARKS.md.
bench-moq:
	mkdir -p bench/out
	cd bench && $(GO) test -run '^$$' -bench '^BenchmarkMoQPass$$' -cpu 2 -benchtime 8x -count $${COUNT:-6} -timeout 60m . | tee out/moq.txt
	cd bench && $(GO) test -run '^$$' -bench '^BenchmarkMoQSubscriberMemory$$' -cpu 2 -benchtime 1x -count $${COUNT:-6} . | tee -a out/moq.txt
	cd bench && $(GO) run golang.org/x/perf/cmd/benchstat out/moq.txt

# What following a cluster over moq-lite costs: one follow.Cluster, in a
# child process, following 10 to 1,000 nodes on one loopback WebSocket
# server, plain and compressed, COUNT times (default 5); see
# BenchmarkFollowCluster and BENCHMARKS.md.
bench-follow:
	mkdir -p bench/out
	cd bench && $(GO) test -run '^$$' -bench '^BenchmarkFollowCluster$$' -cpu 2 -benchtime 10x -count $${COUNT:-5} -timeout 60m . | tee out/follow.txt
	cd bench && $(GO) run golang.org/x/perf/cmd/benchstat out/follow.txt

# CPU and heap profiles of the hot path and of a tick, in bench/out; open
# one with: go tool pprof -http=:8080 bench/out/bench.test bench/out/tick.cpu.prof
profile:
	mkdir -p bench/out
	cd bench && $(GO) test -c -o out/bench.test .
	cd bench && ./out/bench.test -test.run '^$$' -test.bench '^BenchmarkContended$$/^moqstats$$' -test.cpu 2 -test.benchtime 3s \
		-test.cpuprofile out/hotpath.cpu.prof -test.memprofile out/hotpath.mem.prof
	cd bench && ./out/bench.test -test.run '^$$' -test.bench '^BenchmarkFlush$$/^changed$$/^N=100000$$/^moqstats$$' -test.benchtime 40x \
		-test.cpuprofile out/tick.cpu.prof -test.memprofile out/tick.mem.prof
	@echo "profiles in bench/out; open with: go tool pprof -http=:8080 bench/out/bench.test bench/out/<name>.prof"
