// Package interop checks the compressed stats tracks against moq's own
// JavaScript packages, @moq/json and @moq/flate, at the versions pinned in
// package-lock.json beside this file. It has no API: it is its tests, and
// the node scripts they drive.
//
// # What it checks
//
// A compressed track is only useful if the readers moq ships can read it,
// and a Go reader is only useful if it reads what moq's writers write. So:
//
//   - Every group moqstats writes on a ".z" track, over a long random run
//     (keys added, changed and removed, entries collected and re-created,
//     both tiers and roles, sessions, group rolls at the delta budget and
//     at the frame cap, failed writes on plain and compressed tracks, the
//     nine and the twelve counter fields), decodes with @moq/json's
//     Snapshot.Decoder and Snapshot.Consumer, compression on, to exactly
//     the value of the plain frame written on the same pass.
//   - Every frame @moq/json's Snapshot.Encoder writes (default and small
//     delta budgets, frames whose write failed and were never committed)
//     decodes in the Go consumer to exactly the value it was given.
//   - @moq/flate alone inflates moqstats' group streams to the same bytes
//     as package zframe, and its size cap and level are zframe's.
//
// Values are compared as parsed JSON with numbers as their digits
// (json.Number), never as floats. The node side reports any number that
// is not a safe integer as an error instead of printing its rounding:
// JSON.parse rounds counters above 2^53 - 1 (see "Where moq's packages
// differ"), and the values compared stay below.
//
// # The Go consumer
//
// The tests decode with one small function, newGoDecoder: today
// zframe.Decoder and an RFC 7396 merge over encoding/json values. A typed
// consumer replaces it without touching the tests.
//
// # Running
//
// The tests run under go test ./... with the rest of the module. They need
// node and the packages installed in node_modules here from the committed
// lockfile, which bash .ci/install-interop does (npm ci, when node_modules
// is missing or was installed from another lockfile). Without node or
// node_modules they skip, saying so, unless the environment variable CI is
// set: then they fail. Each test starts node once, whatever its number of
// frames. They pass on node 18 and 20: the codec the scripts use needs
// nothing newer, though @moq/json's networking side (@moq/net, which they
// never call) uses Promise.withResolvers, new in node 22.
//
// # Where moq's packages differ
//
// Pinned by tests, so that an upgrade that changes them is noticed:
//
//   - @moq/json's merge assigns patch members with obj[key] = v, so a key
//     named __proto__ added by a delta would set the object's prototype
//     instead. moqstats never adds that key in a delta (it sends a
//     snapshot), so JavaScript readers see a broadcast path "__proto__"
//     (TestJSDecoderReadsAProtoKeyBecauseOnlySnapshotsAddIt).
//   - @moq/json's diff tests membership with the in operator, which sees
//     Object.prototype, so its Encoder never deletes a key named like one
//     of its members (constructor, toString, ...): Go readers keep it.
//   - @moq/json parses frames with JSON.parse, into JavaScript numbers:
//     counters above 2^53 - 1 reach JavaScript readers rounded.
package interop
