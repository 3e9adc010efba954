// Package fuzz holds moqstats' fuzz targets, each feeding arbitrary input
// straight to risky code and checking it against an independent oracle:
//
//   - FuzzAppendString, FuzzFrame: the JSON escaper and frames, against
//     encoding/json.
//   - FuzzLossyFix, FuzzNormalize: lossy UTF-8 decoding against a
//     brute-force search of completions, path normalization against a
//     naive split-and-join.
//   - FuzzStats, FuzzRetention, FuzzCaps, FuzzLeaks, FuzzCompressed: the
//     aggregator against a model of the counts, with keys pinned, collected
//     and re-created under retention, folded under caps, guards dropped for
//     the garbage collector, and compressed siblings followed frame by
//     frame.
//   - FuzzHTTPRequest: the HTTP handler's request parsing and stream
//     framing, against the documented rules.
//   - FuzzDecodeFrame, FuzzAggregator: the consumer's decoder against
//     encoding/json, and its aggregator's totals, which never go down.
//   - FuzzCompressedTrackHostile, FuzzCompressedTrackOracle: the
//     consumer's compressed-track reader on hostile group and index
//     sequences and frame bytes, and on compressed value sequences (failed,
//     lost, mutated and corrupted frames) against encoding/json and an RFC
//     7396 merge.
//   - FuzzCompressedTrackKeepsWithinLimits, FuzzSSEReader: what the
//     consumer keeps from a hostile node, within its limits: a compressed
//     track's keys, their length and its groups' frames; the event-stream
//     reader's events, their data and ids (against a reader that holds
//     every line), with long lines and events the common case.
//   - FuzzZframeDecoder, FuzzZframeRoundTrip: the compressed tracks'
//     inflater on hostile frames against compress/flate, within its size
//     cap, and the writer's groups decoded back exactly.
//
// make fuzz runs every target for FUZZTIME (30s) each; go test -fuzz=NAME
// ./fuzz runs one. Plain go test runs every seed, including the committed
// corpus in testdata/fuzz.
package fuzz
