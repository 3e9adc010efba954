package wire

// Range is the part of SUBSCRIBE, SUBSCRIBE_UPDATE and SUBSCRIBE_OK that
// lite-03 added. Start and End are group sequences plus one; 0 means none
// (the latest group, and no end), as on the wire.
type Range struct {
	Ordered    bool
	MaxLatency uint64
	Start, End uint64
}

func appendRange(dst []byte, r Range) []byte {
	dst = appendBool(dst, r.Ordered)
	dst = AppendVarint(dst, r.MaxLatency)
	dst = AppendVarint(dst, r.Start)
	return AppendVarint(dst, r.End)
}

func parseRange(d *decoder, msg string) Range {
	return Range{
		Ordered:    d.bool(msg + " ordered"),
		MaxLatency: d.varint(msg + " max latency"),
		Start:      d.varint(msg + " start group"),
		End:        d.varint(msg + " end group"),
	}
}

// Subscribe is SUBSCRIBE, the first message on a subscribe stream.
type Subscribe struct {
	ID        uint64
	Broadcast string
	Track     string
	Priority  uint8
	Range     Range // lite-03+
}

// AppendSubscribe appends the body of SUBSCRIBE.
func AppendSubscribe(dst []byte, m Subscribe, f Features) []byte {
	dst = AppendVarint(dst, m.ID)
	dst = appendString(dst, m.Broadcast)
	dst = appendString(dst, m.Track)
	dst = append(dst, m.Priority)
	if f.SubscribeRange {
		dst = appendRange(dst, m.Range)
	}
	return dst
}

// ParseSubscribe decodes the body of SUBSCRIBE.
func ParseSubscribe(b []byte, f Features) (Subscribe, error) {
	d := decoder{b: b}
	m := Subscribe{
		ID:        d.varint("SUBSCRIBE id"),
		Broadcast: d.string("SUBSCRIBE broadcast", MaxName),
		Track:     d.string("SUBSCRIBE track", MaxName),
		Priority:  d.u8("SUBSCRIBE priority"),
	}
	if f.SubscribeRange {
		m.Range = parseRange(&d, "SUBSCRIBE")
	}
	return m, d.finish("SUBSCRIBE")
}

// SubscribeUpdate is SUBSCRIBE_UPDATE, later messages on a subscribe
// stream from the subscriber.
type SubscribeUpdate struct {
	Priority uint8
	Range    Range // lite-03+
}

// AppendSubscribeUpdate appends the body of SUBSCRIBE_UPDATE.
func AppendSubscribeUpdate(dst []byte, m SubscribeUpdate, f Features) []byte {
	dst = append(dst, m.Priority)
	if f.SubscribeRange {
		dst = appendRange(dst, m.Range)
	}
	return dst
}

// ParseSubscribeUpdate decodes the body of SUBSCRIBE_UPDATE.
func ParseSubscribeUpdate(b []byte, f Features) (SubscribeUpdate, error) {
	d := decoder{b: b}
	m := SubscribeUpdate{Priority: d.u8("SUBSCRIBE_UPDATE priority")}
	if f.SubscribeRange {
		m.Range = parseRange(&d, "SUBSCRIBE_UPDATE")
	}
	return m, d.finish("SUBSCRIBE_UPDATE")
}

// SubscribeOk is SUBSCRIBE_OK; on lite-02 its body is empty.
type SubscribeOk struct {
	Priority uint8
	Range    Range
}

// Subscribe response types (lite-03+).
const (
	ResponseOk   = 0x0
	ResponseDrop = 0x1
)

// AppendSubscribeOk appends SUBSCRIBE_OK as it goes on the stream: its type
// where the version has one, then the length-prefixed body.
func AppendSubscribeOk(dst []byte, m SubscribeOk, f Features) []byte {
	var body []byte
	if f.SubscribeRange {
		body = append(body, m.Priority)
		body = appendRange(body, m.Range)
	}
	if f.TypedSubscribeResponse {
		dst = AppendVarint(dst, ResponseOk)
	}
	return AppendMessage(dst, body)
}

// ParseSubscribeOk decodes the body of SUBSCRIBE_OK.
func ParseSubscribeOk(b []byte, f Features) (SubscribeOk, error) {
	d := decoder{b: b}
	var m SubscribeOk
	if f.SubscribeRange {
		m.Priority = d.u8("SUBSCRIBE_OK priority")
		m.Range = parseRange(&d, "SUBSCRIBE_OK")
	}
	return m, d.finish("SUBSCRIBE_OK")
}

// SubscribeDrop is SUBSCRIBE_DROP (lite-03+): groups Start..End were
// dropped with an error code.
type SubscribeDrop struct {
	Start, End, Error uint64
}

// AppendSubscribeDrop appends SUBSCRIBE_DROP with its response type.
func AppendSubscribeDrop(dst []byte, m SubscribeDrop) []byte {
	dst = AppendVarint(dst, ResponseDrop)
	var body []byte
	body = AppendVarint(body, m.Start)
	body = AppendVarint(body, m.End)
	body = AppendVarint(body, m.Error)
	return AppendMessage(dst, body)
}

// ParseSubscribeDrop decodes the body of SUBSCRIBE_DROP.
func ParseSubscribeDrop(b []byte) (SubscribeDrop, error) {
	d := decoder{b: b}
	m := SubscribeDrop{
		Start: d.varint("SUBSCRIBE_DROP start"),
		End:   d.varint("SUBSCRIBE_DROP end"),
		Error: d.varint("SUBSCRIBE_DROP error"),
	}
	return m, d.finish("SUBSCRIBE_DROP")
}
