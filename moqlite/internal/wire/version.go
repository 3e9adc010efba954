package wire

import "fmt"

// Version is a moq-lite version number as SETUP carries it.
type Version uint64

// The versions this package speaks.
const (
	Lite02 Version = 0xff0dad02
	Lite03 Version = 0xff0dad03
	Lite04 Version = 0xff0dad04
)

// Draft14 is the IETF moq-transport version whose CLIENT_SETUP framing
// moq-lite-02 borrows for its SETUP exchange; a client offers it beside
// Lite02.
const Draft14 Version = 0xff00000e

// ALPNSetup is the application protocol (or none) under which the version
// is chosen by SETUP on a bidi stream.
const ALPNSetup = "moql"

// Features is what a version's wire format contains. Every field that
// differs by version is decided here.
type Features struct {
	Version Version
	// Name is the version's name; for versions chosen by the application
	// protocol it is also that protocol's identifier (ALPN, WebTransport
	// protocol, WebSocket subprotocol).
	Name string
	// ByALPN: the application protocol chooses this version (no SETUP).
	// Otherwise the client sends SETUP on a bidi stream (ALPNSetup or none).
	ByALPN bool
	// AnnounceInit: an announce stream begins with ANNOUNCE_INIT listing
	// the active suffixes; otherwise each is an ANNOUNCE.
	AnnounceInit bool
	// AnnounceHopCount: ANNOUNCE ends with a hop count; AnnounceHopIDs adds
	// one varint per hop after it.
	AnnounceHopCount, AnnounceHopIDs bool
	// ExcludeHop: ANNOUNCE_INTEREST ends with an exclude-hop varint.
	ExcludeHop bool
	// SubscribeRange: SUBSCRIBE, SUBSCRIBE_UPDATE and SUBSCRIBE_OK carry
	// ordered, max latency and start/end group; SUBSCRIBE_OK is otherwise
	// empty, and SUBSCRIBE_UPDATE only a priority.
	SubscribeRange bool
	// TypedSubscribeResponse: each response on a subscribe stream is
	// preceded by a varint type (0 SUBSCRIBE_OK, 1 SUBSCRIBE_DROP).
	TypedSubscribeResponse bool
	// Probe: PROBE streams exist; ProbeRTT: PROBE carries an RTT.
	Probe, ProbeRTT bool
	// SessionInfo: the SETUP stream stays open carrying SESSION_INFO.
	SessionInfo bool
	// Goaway: GOAWAY streams exist.
	Goaway bool
	// Fetch: FETCH streams exist.
	Fetch bool
}

// Versions lists every version spoken, best first.
var Versions = []Features{
	{
		Version: Lite04, Name: "moq-lite-04", ByALPN: true,
		AnnounceHopCount: true, AnnounceHopIDs: true, ExcludeHop: true,
		SubscribeRange: true, TypedSubscribeResponse: true,
		Probe: true, ProbeRTT: true, Goaway: true, Fetch: true,
	},
	{
		Version: Lite03, Name: "moq-lite-03", ByALPN: true,
		AnnounceHopCount: true,
		SubscribeRange:   true, TypedSubscribeResponse: true,
		Probe: true, Fetch: true,
	},
	{
		Version: Lite02, Name: "moq-lite-02",
		AnnounceInit: true, SessionInfo: true,
	},
}

// ByProtocol returns the version an application protocol chooses. ok is
// false for ALPNSetup and "" (SETUP chooses) and for unknown protocols;
// setup tells them apart.
func ByProtocol(proto string) (f Features, ok, setup bool) {
	if proto == ALPNSetup || proto == "" {
		return Features{}, false, true
	}
	for _, v := range Versions {
		if v.ByALPN && v.Name == proto {
			return v, true, false
		}
	}
	return Features{}, false, false
}

// BySetup picks the best version offered in CLIENT_SETUP that SETUP can
// choose.
func BySetup(offered []Version) (Features, bool) {
	for _, v := range Versions {
		if v.ByALPN {
			continue
		}
		for _, o := range offered {
			if o == v.Version {
				return v, true
			}
		}
	}
	return Features{}, false
}

// Lookup returns the features of a version.
func Lookup(v Version) (Features, bool) {
	for _, f := range Versions {
		if f.Version == v {
			return f, true
		}
	}
	return Features{}, false
}

func (v Version) String() string {
	if f, ok := Lookup(v); ok {
		return f.Name
	}
	return fmt.Sprintf("unknown(%#x)", uint64(v))
}
