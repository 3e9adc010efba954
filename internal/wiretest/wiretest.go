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

// SnapshotAll is a per-broadcast frame value with the twelve fields
// moq-net writes today, in its order.
type SnapshotAll struct {
	Announced           uint64 `json:"announced"`
	AnnouncedClosed     uint64 `json:"announced_closed"`
	AnnouncedBytes      uint64 `json:"announced_bytes"`
	Broadcasts          uint64 `json:"broadcasts"`
	BroadcastsClosed    uint64 `json:"broadcasts_closed"`
	Subscriptions       uint64 `json:"subscriptions"`
	SubscriptionsClosed uint64 `json:"subscriptions_closed"`
	Fetches             uint64 `json:"fetches"`
	Bytes               uint64 `json:"bytes"`
	Frames              uint64 `json:"frames"`
	Groups              uint64 `json:"groups"`
	Datagrams           uint64 `json:"datagrams"`
}

// MergePatch applies an RFC 7396 JSON merge patch to target, both as
// encoding/json decodes into any, following the RFC's pseudocode: a patch
// that is not an object replaces the target; an object's null members
// delete, and its other members are merged in recursively. A target that
// is an object is merged into in place.
func MergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = MergePatch(t[k], v)
	}
	return t
}
