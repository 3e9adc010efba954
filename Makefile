GO ?= go

.PHONY: test fmt-check vet test-race demo

# The README's test command: formatting, vet, and the race-enabled test
# suite in both shard-selection builds (procPin by default, and the
# moqstats_purego fallback).
test: fmt-check vet test-race

fmt-check:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags moqstats_purego ./...

test-race:
	$(GO) test -race -count=1 ./...
	$(GO) test -race -count=1 -tags moqstats_purego ./...

# A simulated relay printing every frame the stats broadcast writes.
demo:
	$(GO) run ./cmd/moqstats-demo -duration 5s
