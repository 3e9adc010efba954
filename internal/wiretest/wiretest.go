// Package wiretest is the wire format as tests decode it: JSON-tagged
// mirrors of the frame values, written from the wire format's description
// and not from package counters, and the bytes serde_json writes for a
// string, derived from encoding/json. Tests, fuzz targets and benchmarks
// share it as their independent oracle; the library does not use it.
package wiretest

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Snapshot is a per-broadcast frame value.
type Snapshot struct {
	Announced           uint64 `json:"announced"`
	AnnouncedClosed     uint64 `json:"announced_closed"`
	Broadcasts          uint64 `json:"broadcasts"`
	BroadcastsClosed    uint64 `json:"broadcasts_closed"`
	Subscriptions       uint64 `json:"subscriptions"`
	SubscriptionsClosed uint64 `json:"subscriptions_closed"`
	Bytes               uint64 `json:"bytes"`
	Frames              uint64 `json:"frames"`
	Groups              uint64 `json:"groups"`
}

// Live reports whether an open counter exceeds its closed counterpart.
func (s Snapshot) Live() bool {
	return s.Announced != s.AnnouncedClosed || s.Subscriptions != s.SubscriptionsClosed || s.Broadcasts != s.BroadcastsClosed
}

// ClosedAboveOpen reports whether a closed counter exceeds its open
// counterpart, which no frame may show.
func (s Snapshot) ClosedAboveOpen() bool {
	return s.AnnouncedClosed > s.Announced || s.SubscriptionsClosed > s.Subscriptions || s.BroadcastsClosed > s.Broadcasts
}

// SessionSnapshot is a session frame value.
type SessionSnapshot struct {
	Sessions       uint64 `json:"sessions"`
	SessionsClosed uint64 `json:"sessions_closed"`
}

// SerdeString returns the JSON string serde_json writes for s, which must
// be valid UTF-8: encoding/json's encoding with HTML escaping off and its
// escapes of U+2028 and U+2029 undone.
func SerdeString(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err) // a string always encodes
	}
	out := strings.TrimSuffix(buf.String(), "\n")
	return []byte(strings.NewReplacer(`\u2028`, "\u2028", `\u2029`, "\u2029").Replace(out))
}
