package wsconn

import "fmt"

// Framing is how streams are carried in WebSocket messages.
type Framing uint8

const (
	// FramingWebTransport is the "webtransport" subprotocol of
	// @moq/web-transport-ws: a one-byte frame type, and a STREAM frame's
	// data runs to the end of the message. No flow control.
	FramingWebTransport Framing = iota + 1
	// FramingQMux is "qmux-00" (@moq/qmux): QUIC frames with varint types,
	// transport parameters first, and QUIC's stream and connection credit.
	FramingQMux
)

// String is the framing's WebSocket subprotocol name.
func (f Framing) String() string {
	switch f {
	case FramingWebTransport:
		return "webtransport"
	case FramingQMux:
		return "qmux-00"
	}
	return fmt.Sprintf("Framing(%d)", uint8(f))
}

// Frame type codes. The webtransport framing uses the low byte of the same
// QUIC codes for the four frames it knows.
const (
	typeResetStream      = 0x04
	typeStopSending      = 0x05
	typeStream           = 0x08 // 0x08..0x0f: OFF 0x04, LEN 0x02, FIN 0x01
	typeMaxData          = 0x10
	typeMaxStreamData    = 0x11
	typeMaxStreamsBidi   = 0x12
	typeMaxStreamsUni    = 0x13
	typeDataBlocked      = 0x14
	typeStreamDataBlock  = 0x15
	typeStreamsBlockedBi = 0x16
	typeStreamsBlockedUn = 0x17
	typeConnectionClose  = 0x1c
	typeApplicationClose = 0x1d
	typeDatagram         = 0x30
	typeDatagramLen      = 0x31
	typeTransportParams  = 0x3f5153300d0a0d0a // QX_TRANSPORT_PARAMETERS
)

// Transport parameter ids (RFC 9000 §18.2) that qmux-00 carries.
const (
	paramMaxData            = 0x04
	paramMaxStreamDataBidiL = 0x05
	paramMaxStreamDataBidiR = 0x06
	paramMaxStreamDataUni   = 0x07
	paramMaxStreamsBidi     = 0x08
	paramMaxStreamsUni      = 0x09
)

// MaxFramePayload is the most stream data one STREAM frame carries: the
// JavaScript qmux session closes on a larger one (16 KiB less 24 bytes of
// frame overhead), in either framing, so every sender here splits at it.
const MaxFramePayload = 16384 - 24

// maxReason caps a close reason a peer may send and that we keep.
const maxReason = 1024

// ProtocolError is a rule of the framing that the peer broke. The session
// ends with it, and the WebSocket closes with status 1002.
type ProtocolError struct {
	Rule string
}

func (e *ProtocolError) Error() string { return "wsconn: peer broke the framing: " + e.Rule }

func protoErr(rule string) error { return &ProtocolError{Rule: rule} }

var errTruncated = protoErr("frame truncated")

type frameKind uint8

const (
	kindStream frameKind = iota + 1
	kindReset
	kindStop
	kindClose
	kindMaxData
	kindMaxStreamData
	kindMaxStreamsBidi
	kindMaxStreamsUni
	kindParams
	kindIgnored // blocked signals and datagrams: nothing to do
)

// frame is one decoded frame. data aliases the message it came from.
type frame struct {
	kind      frameKind
	id        uint64
	data      []byte
	fin       bool
	hasOffset bool
	offset    uint64
	code      uint64 // reset, stop and close
	reason    string // close
	max       uint64 // MAX_* frames
	params    transportParams
}

// transportParams are the qmux-00 transport parameters; absent ones are 0,
// which means no credit.
type transportParams struct {
	maxData            uint64
	maxStreamDataBidiL uint64 // for streams the sender of the parameters opens
	maxStreamDataBidiR uint64 // for streams its peer opens
	maxStreamDataUni   uint64
	maxStreamsBidi     uint64
	maxStreamsUni      uint64
}

// --- varints (RFC 9000 §16) ---

const maxVarint = 1<<62 - 1

func readVarint(b []byte) (uint64, []byte, error) {
	if len(b) == 0 {
		return 0, b, errTruncated
	}
	n := 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, b, errTruncated
	}
	v := uint64(b[0] & 0x3f)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(b[i])
	}
	return v, b[n:], nil
}

// appendVarint appends v in the shortest encoding; v must be <= maxVarint.
func appendVarint(dst []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(dst, byte(v))
	case v < 1<<14:
		return append(dst, byte(v>>8)|0x40, byte(v))
	case v < 1<<30:
		return append(dst, byte(v>>24)|0x80, byte(v>>16), byte(v>>8), byte(v))
	case v <= maxVarint:
		return append(dst, byte(v>>56)|0xc0, byte(v>>48), byte(v>>40), byte(v>>32),
			byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	panic(fmt.Sprintf("BUG: wsconn: varint %d out of range", v))
}

// --- decoding ---

// parseFrame decodes the first frame of msg and returns the rest. The
// webtransport framing has one frame per message, so its rest is empty.
func parseFrame(f Framing, msg []byte) (frame, []byte, error) {
	if len(msg) == 0 {
		return frame{}, nil, protoErr("empty message")
	}
	if f == FramingWebTransport {
		fr, err := parseWebTransport(msg)
		return fr, nil, err
	}
	return parseQMux(msg)
}

func parseWebTransport(b []byte) (frame, error) {
	t := b[0]
	b = b[1:]
	var fr frame
	var err error
	switch t {
	case typeStream, typeStream | 1:
		fr.kind, fr.fin = kindStream, t&1 == 1
		if fr.id, b, err = readVarint(b); err != nil {
			return fr, err
		}
		fr.data = b
	case typeResetStream, typeStopSending:
		fr.kind = kindReset
		if t == typeStopSending {
			fr.kind = kindStop
		}
		if fr.id, b, err = readVarint(b); err != nil {
			return fr, err
		}
		if fr.code, b, err = readVarint(b); err != nil {
			return fr, err
		}
		if len(b) != 0 {
			return fr, protoErr("trailing bytes after a frame")
		}
	case typeApplicationClose:
		fr.kind = kindClose
		if fr.code, b, err = readVarint(b); err != nil {
			return fr, err
		}
		if len(b) > maxReason {
			return fr, protoErr("close reason too long")
		}
		fr.reason = string(b)
	default:
		return fr, protoErr(fmt.Sprintf("unknown frame type 0x%02x", t))
	}
	return fr, nil
}

func parseQMux(b []byte) (frame, []byte, error) {
	var fr frame
	t, b, err := readVarint(b)
	if err != nil {
		return fr, b, err
	}
	v := func() uint64 {
		var x uint64
		if err == nil {
			x, b, err = readVarint(b)
		}
		return x
	}
	switch {
	case t >= typeStream && t <= typeStream|7:
		fr.kind, fr.fin = kindStream, t&1 == 1
		fr.id = v()
		if t&4 != 0 {
			fr.hasOffset, fr.offset = true, v()
		}
		if t&2 != 0 {
			n := v()
			if err != nil {
				return fr, b, err
			}
			if n > uint64(len(b)) {
				return fr, b, errTruncated
			}
			fr.data, b = b[:n], b[n:]
		} else if err == nil {
			fr.data, b = b, nil
		}
	case t == typeResetStream:
		fr.kind, fr.id, fr.code = kindReset, v(), v()
		fr.offset = v() // final size
	case t == typeStopSending:
		fr.kind, fr.id, fr.code = kindStop, v(), v()
	case t == typeConnectionClose || t == typeApplicationClose:
		// As @moq/qmux writes it: code, frame type, reason length, reason.
		fr.kind, fr.code = kindClose, v()
		_ = v()
		n := v()
		if err != nil {
			return fr, b, err
		}
		if n > uint64(len(b)) {
			return fr, b, errTruncated
		}
		if n > maxReason {
			return fr, b, protoErr("close reason too long")
		}
		fr.reason, b = string(b[:n]), b[n:]
	case t == typeMaxData:
		fr.kind, fr.max = kindMaxData, v()
	case t == typeMaxStreamData:
		fr.kind, fr.id, fr.max = kindMaxStreamData, v(), v()
	case t == typeMaxStreamsBidi:
		fr.kind, fr.max = kindMaxStreamsBidi, v()
	case t == typeMaxStreamsUni:
		fr.kind, fr.max = kindMaxStreamsUni, v()
	case t == typeDataBlocked, t == typeStreamsBlockedBi, t == typeStreamsBlockedUn:
		fr.kind = kindIgnored
		_ = v()
	case t == typeStreamDataBlock:
		fr.kind = kindIgnored
		_, _ = v(), v()
	case t == typeDatagram:
		// No datagrams here: the datagram runs to the end of the message.
		fr.kind, b = kindIgnored, nil
	case t == typeDatagramLen:
		fr.kind = kindIgnored
		n := v()
		if err != nil {
			return fr, b, err
		}
		if n > uint64(len(b)) {
			return fr, b, errTruncated
		}
		b = b[n:]
	case t == typeTransportParams:
		fr.kind = kindParams
		n := v()
		if err != nil {
			return fr, b, err
		}
		if n > uint64(len(b)) {
			return fr, b, errTruncated
		}
		fr.params, err = parseParams(b[:n])
		b = b[n:]
	default:
		return fr, b, protoErr(fmt.Sprintf("unknown frame type 0x%x", t))
	}
	return fr, b, err
}

func parseParams(b []byte) (transportParams, error) {
	var p transportParams
	for len(b) > 0 {
		id, rest, err := readVarint(b)
		if err != nil {
			return p, err
		}
		n, rest, err := readVarint(rest)
		if err != nil {
			return p, err
		}
		if n > uint64(len(rest)) {
			return p, errTruncated
		}
		val := rest[:n]
		b = rest[n:]
		var x uint64
		switch id {
		case paramMaxData, paramMaxStreamDataBidiL, paramMaxStreamDataBidiR,
			paramMaxStreamDataUni, paramMaxStreamsBidi, paramMaxStreamsUni:
			var tail []byte
			if x, tail, err = readVarint(val); err != nil {
				return p, err
			}
			if len(tail) != 0 {
				return p, protoErr("transport parameter longer than its varint")
			}
		default:
			continue // unknown parameters are ignored, as QUIC says
		}
		switch id {
		case paramMaxData:
			p.maxData = x
		case paramMaxStreamDataBidiL:
			p.maxStreamDataBidiL = x
		case paramMaxStreamDataBidiR:
			p.maxStreamDataBidiR = x
		case paramMaxStreamDataUni:
			p.maxStreamDataUni = x
		case paramMaxStreamsBidi:
			p.maxStreamsBidi = x
		case paramMaxStreamsUni:
			p.maxStreamsUni = x
		}
	}
	return p, nil
}

// --- encoding: append-style, each returns dst extended by one frame ---

func appendStreamFrame(dst []byte, f Framing, id uint64, data []byte, fin bool) []byte {
	if f == FramingWebTransport {
		t := byte(typeStream)
		if fin {
			t |= 1
		}
		dst = appendVarint(append(dst, t), id)
		return append(dst, data...)
	}
	t := uint64(typeStream | 2) // LEN always set, no offset: WebSocket is in order
	if fin {
		t |= 1
	}
	dst = appendVarint(appendVarint(dst, t), id)
	dst = appendVarint(dst, uint64(len(data)))
	return append(dst, data...)
}

func appendResetFrame(dst []byte, f Framing, id, code, finalSize uint64) []byte {
	if f == FramingWebTransport {
		return appendVarint(appendVarint(append(dst, typeResetStream), id), code)
	}
	dst = appendVarint(appendVarint(appendVarint(dst, typeResetStream), id), code)
	return appendVarint(dst, finalSize)
}

func appendStopFrame(dst []byte, f Framing, id, code uint64) []byte {
	if f == FramingWebTransport {
		return appendVarint(appendVarint(append(dst, typeStopSending), id), code)
	}
	return appendVarint(appendVarint(appendVarint(dst, typeStopSending), id), code)
}

func appendCloseFrame(dst []byte, f Framing, code uint64, reason string) []byte {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	if f == FramingWebTransport {
		dst = appendVarint(append(dst, typeApplicationClose), code)
		return append(dst, reason...)
	}
	dst = appendVarint(appendVarint(dst, typeApplicationClose), code)
	dst = appendVarint(appendVarint(dst, 0), uint64(len(reason)))
	return append(dst, reason...)
}

// appendMaxFrame appends MAX_DATA or MAX_STREAMS (one varint argument).
func appendMaxFrame(dst []byte, typ, max uint64) []byte {
	return appendVarint(appendVarint(dst, typ), max)
}

func appendMaxStreamDataFrame(dst []byte, id, max uint64) []byte {
	return appendVarint(appendVarint(appendVarint(dst, typeMaxStreamData), id), max)
}

func appendParamsFrame(dst []byte, p transportParams) []byte {
	var body []byte
	put := func(id, v uint64) {
		if v == 0 {
			return
		}
		var tmp [8]byte
		enc := appendVarint(tmp[:0], v)
		body = appendVarint(appendVarint(body, id), uint64(len(enc)))
		body = append(body, enc...)
	}
	put(paramMaxData, p.maxData)
	put(paramMaxStreamDataBidiL, p.maxStreamDataBidiL)
	put(paramMaxStreamDataBidiR, p.maxStreamDataBidiR)
	put(paramMaxStreamDataUni, p.maxStreamDataUni)
	put(paramMaxStreamsBidi, p.maxStreamsBidi)
	put(paramMaxStreamsUni, p.maxStreamsUni)
	dst = appendVarint(appendVarint(dst, typeTransportParams), uint64(len(body)))
	return append(dst, body...)
}

// CheckMessage parses every frame of one WebSocket message under framing f
// exactly as a session does before applying them, and returns how many
// frames it held, or the rule the message broke. It applies nothing; a
// proxy or a test may use it to vet peer input.
func CheckMessage(f Framing, msg []byte) (frames int, err error) {
	if f != FramingWebTransport && f != FramingQMux {
		return 0, fmt.Errorf("wsconn: unknown framing %v", f)
	}
	if len(msg) == 0 {
		return 0, protoErr("empty message")
	}
	for len(msg) > 0 {
		if _, msg, err = parseFrame(f, msg); err != nil {
			return frames, err
		}
		frames++
	}
	return frames, nil
}
