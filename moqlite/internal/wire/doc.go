// Package wire encodes and decodes the moq-lite wire format: QUIC
// variable-length integers, length-prefixed strings and messages, and every
// message of moq-lite-02, -03 and -04 a subscriber-facing publisher sends
// or receives.
//
// # Layers
//
// The codecs are pure: Append* functions take dst and return the extended
// slice; Parse* functions take one message body (the bytes inside its
// length prefix) and the version, and consume it exactly. Reading a
// message off a stream (ReadMessage) is the only I/O, and it checks the
// length prefix against a cap before it allocates.
//
// # Invariants
//
//   - No input panics a decoder, and no decoder allocates more than the
//     cap it was given plus a constant: every length and count is checked
//     against what remains in the body (or the cap) before it is used.
//     FuzzParse in moqlite/fuzz feeds arbitrary bodies to every parser.
//   - A body is consumed exactly: trailing bytes are an error, as @moq/lite
//     treats them ("consumed too few bytes").
//   - Every decoding error wraps ErrProtocol and names the rule broken, so
//     the session closes with it.
//
// # Versions
//
// Fields that differ by version are decided by one table (Versions), not
// by comparisons scattered over the codecs: a version is a set of
// features. Adding moq-lite-05 is a new row plus the codecs for what it
// adds.
package wire
