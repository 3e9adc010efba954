package consumer

import "unsafe"

// Traffic is one entry of a per-broadcast frame: the cumulative counters of
// one broadcast path on one node, tier and role. The first nine fields are
// what moqstats writes; AnnouncedBytes, Fetches and Datagrams are written by
// newer producers and read as 0 when a frame lacks them.
//
// Every field is a uint64 and the struct has no padding, so a Traffic is
// also addressable as an array of counters indexed by TrafficField (see
// Field); a test pins that layout.
type Traffic struct {
	Announced           uint64
	AnnouncedClosed     uint64
	AnnouncedBytes      uint64
	Broadcasts          uint64
	BroadcastsClosed    uint64
	Subscriptions       uint64
	SubscriptionsClosed uint64
	Fetches             uint64
	Bytes               uint64
	Frames              uint64
	Groups              uint64
	Datagrams           uint64
}

// TrafficField names one counter of a Traffic.
type TrafficField uint8

// The counters of a Traffic, in the order newer producers write them.
const (
	Announced TrafficField = iota
	AnnouncedClosed
	AnnouncedBytes
	Broadcasts
	BroadcastsClosed
	Subscriptions
	SubscriptionsClosed
	Fetches
	Bytes
	Frames
	Groups
	Datagrams
	// NumTrafficFields is the number of counters in a Traffic.
	NumTrafficFields = iota
)

// trafficNames are the wire names, indexed by TrafficField.
var trafficNames = [NumTrafficFields]string{
	"announced", "announced_closed", "announced_bytes", "broadcasts", "broadcasts_closed",
	"subscriptions", "subscriptions_closed", "fetches", "bytes", "frames", "groups", "datagrams",
}

// String returns the field's name on the wire ("bytes", "announced_closed").
func (f TrafficField) String() string {
	if int(f) < len(trafficNames) {
		return trafficNames[f]
	}
	return "TrafficField(" + itoa(uint64(f)) + ")"
}

// TrafficFields lists every counter of a Traffic, in wire order.
func TrafficFields() []TrafficField {
	fs := make([]TrafficField, NumTrafficFields)
	for i := range fs {
		fs[i] = TrafficField(i)
	}
	return fs
}

// counters views t as its array of counters.
func (t *Traffic) counters() *[NumTrafficFields]uint64 {
	return (*[NumTrafficFields]uint64)(unsafe.Pointer(t))
}

// Field returns the counter f of t; it panics if f is out of range.
func (t Traffic) Field(f TrafficField) uint64 { return t.counters()[f] }

// Viewers returns broadcasts - broadcasts_closed: on the egress
// (publisher) side, the number of distinct sessions subscribed now. A
// frame never shows a closed counter above its open one; if a hostile
// frame does, Viewers is 0.
func (t Traffic) Viewers() uint64 { return sub(t.Broadcasts, t.BroadcastsClosed) }

// Live reports whether an open counter exceeds its closed counterpart: a
// guard was open when the frame was read, so the entry cannot have been
// collected at that pass.
func (t Traffic) Live() bool {
	return t.Announced != t.AnnouncedClosed || t.Broadcasts != t.BroadcastsClosed || t.Subscriptions != t.SubscriptionsClosed
}

// Presence is one entry of a session frame: the sessions connected and
// disconnected under one auth root on one node and tier.
type Presence struct {
	Sessions       uint64
	SessionsClosed uint64
}

// PresenceField names one counter of a Presence.
type PresenceField uint8

// The counters of a Presence, in wire order.
const (
	Sessions PresenceField = iota
	SessionsClosed
	// NumPresenceFields is the number of counters in a Presence.
	NumPresenceFields = iota
)

var presenceNames = [NumPresenceFields]string{"sessions", "sessions_closed"}

// String returns the field's name on the wire.
func (f PresenceField) String() string {
	if int(f) < len(presenceNames) {
		return presenceNames[f]
	}
	return "PresenceField(" + itoa(uint64(f)) + ")"
}

func (p *Presence) counters() *[NumPresenceFields]uint64 {
	return (*[NumPresenceFields]uint64)(unsafe.Pointer(p))
}

// Field returns the counter f of p; it panics if f is out of range.
func (p Presence) Field(f PresenceField) uint64 { return p.counters()[f] }

// Live returns sessions - sessions_closed: the sessions connected now (0 if
// a hostile frame shows more closed than opened).
func (p Presence) Live() uint64 { return sub(p.Sessions, p.SessionsClosed) }

// TrafficFrame is a decoded per-broadcast frame: broadcast path to counters.
type TrafficFrame map[string]Traffic

// PresenceFrame is a decoded session frame: auth root to counters.
type PresenceFrame map[string]Presence

// sub is a - b, or 0 when b > a.
func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
