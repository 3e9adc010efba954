// Package soak holds the soak test: everything at once for a while, and
// nothing lost. It has no code of its own; run it with
//
//	make soak                 # SOAK=60s by default
//	go test -race -run '^TestSoak$' ./internal/soak -soak=20s
//
// # What runs
//
// Workers open, bump and close every guard kind (broadcast guards, track
// guards, fetches, subscriptions, sessions; bytes, frames, groups and
// datagrams) on both tiers and roles, over a few
// hundred paths and roots, hostile ones included (invalid UTF-8, control
// bytes, quotes, slashes to normalize, the empty path, paths under the
// stats prefix, paths longer than MaxPathLen), and drop some guards
// without Close for the garbage collector to reclaim. The Stats publishes
// compressed siblings too. The Origin fails one write in twenty and is slow
// now and then; GOMAXPROCS is raised and lowered; passes run every
// millisecond.
//
// # What is checked
//
// Every frame written, on all six tracks, as it is written: it is valid
// UTF-8 and parses as JSON, its keys are in byte order, no closed counter
// exceeds its open counterpart, and no counter of a key decreases between
// two frames (the run is shorter than the retention window). At the end,
// once every dropped guard was reclaimed and Close ran: the last value of
// every key on every track equals what the workers' ledger says they
// bumped, exactly, and no key is missing or extra; and every compressed
// track, followed frame by frame as a consumer follows it (inflated, deltas
// merged into the group's value), adds up to its plain track's last
// frame. A one-line summary
// gives the operations, frames, failures injected and the largest heap
// seen.
package soak
