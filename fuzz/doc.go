// Package fuzz holds moqstats' fuzz targets, each feeding arbitrary input
// straight to risky code and checking it against an independent oracle:
// encoding/json for the JSON escaper and frames, a brute-force search of
// UTF-8 completions for lossy decoding, a naive split-and-join for path
// normalization, and a model of the counts for the aggregator itself.
//
// Run one with go test -fuzz=FuzzAppendString ./fuzz/ (one target at a
// time); plain go test runs every seed, including the committed corpus in
// testdata/fuzz.
package fuzz
