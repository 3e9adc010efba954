package wire

// Group is the header of a group stream: which subscription it serves and
// the group's sequence. Frames follow it, each a varint length and the
// payload, until the stream ends.
type Group struct {
	Subscribe uint64
	Sequence  uint64
}

// AppendGroupStream appends what opens a group stream: its type byte and
// the length-prefixed GROUP header.
func AppendGroupStream(dst []byte, m Group) []byte {
	dst = append(dst, UniGroup)
	dst = AppendVarint(dst, uint64(VarintLen(m.Subscribe)+VarintLen(m.Sequence)))
	dst = AppendVarint(dst, m.Subscribe)
	return AppendVarint(dst, m.Sequence)
}

// ParseGroup decodes the body of a GROUP header.
func ParseGroup(b []byte) (Group, error) {
	d := decoder{b: b}
	m := Group{Subscribe: d.varint("GROUP subscribe"), Sequence: d.varint("GROUP sequence")}
	return m, d.finish("GROUP")
}

// AppendFrameHeader appends the length that precedes a frame's payload.
func AppendFrameHeader(dst []byte, size int) []byte {
	return AppendVarint(dst, uint64(size))
}

// Probe is PROBE (lite-03+): the publisher's estimate of the bitrate it
// can send, and (lite-04) the RTT in milliseconds, 0 for unknown.
type Probe struct {
	Bitrate uint64
	RTT     uint64
}

// AppendProbe appends the body of PROBE.
func AppendProbe(dst []byte, m Probe, f Features) []byte {
	dst = AppendVarint(dst, m.Bitrate)
	if f.ProbeRTT {
		dst = AppendVarint(dst, m.RTT)
	}
	return dst
}

// ParseProbe decodes the body of PROBE.
func ParseProbe(b []byte, f Features) (Probe, error) {
	d := decoder{b: b}
	m := Probe{Bitrate: d.varint("PROBE bitrate")}
	if f.ProbeRTT {
		m.RTT = d.varint("PROBE rtt")
	}
	return m, d.finish("PROBE")
}

// Goaway is GOAWAY (lite-04): the peer is going away, try URI.
type Goaway struct{ URI string }

// AppendGoaway appends the body of GOAWAY.
func AppendGoaway(dst []byte, m Goaway) []byte { return appendString(dst, m.URI) }

// ParseGoaway decodes the body of GOAWAY.
func ParseGoaway(b []byte) (Goaway, error) {
	d := decoder{b: b}
	m := Goaway{URI: d.string("GOAWAY uri", MaxName)}
	return m, d.finish("GOAWAY")
}

// Fetch is FETCH (lite-03+): one group of a track.
type Fetch struct {
	Broadcast string
	Track     string
	Priority  uint8
	Group     uint64
}

// AppendFetch appends the body of FETCH.
func AppendFetch(dst []byte, m Fetch) []byte {
	dst = appendString(dst, m.Broadcast)
	dst = appendString(dst, m.Track)
	dst = append(dst, m.Priority)
	return AppendVarint(dst, m.Group)
}

// ParseFetch decodes the body of FETCH.
func ParseFetch(b []byte) (Fetch, error) {
	d := decoder{b: b}
	m := Fetch{
		Broadcast: d.string("FETCH broadcast", MaxName),
		Track:     d.string("FETCH track", MaxName),
		Priority:  d.u8("FETCH priority"),
		Group:     d.varint("FETCH group"),
	}
	return m, d.finish("FETCH")
}
