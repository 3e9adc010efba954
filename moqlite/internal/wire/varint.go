package wire

import (
	"encoding/binary"
	"io"
)

// MaxVarint is the largest value a QUIC varint holds (RFC 9000 §16).
const MaxVarint = 1<<62 - 1

// VarintLen is the encoded length of v, which must be at most MaxVarint.
func VarintLen(v uint64) int {
	switch {
	case v < 1<<6:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<30:
		return 4
	default:
		return 8
	}
}

// AppendVarint appends v in the shortest QUIC varint encoding and returns
// the extended dst. A v past MaxVarint is a caller bug and panics.
func AppendVarint(dst []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(dst, byte(v))
	case v < 1<<14:
		return binary.BigEndian.AppendUint16(dst, uint16(v)|0x4000)
	case v < 1<<30:
		return binary.BigEndian.AppendUint32(dst, uint32(v)|0x8000_0000)
	case v <= MaxVarint:
		return binary.BigEndian.AppendUint64(dst, v|0xc000_0000_0000_0000)
	}
	panic("BUG: wire.AppendVarint of a value past 2^62-1")
}

// ParseVarint decodes the varint at the start of b and returns it with its
// length. Non-shortest encodings are accepted, as RFC 9000 allows.
func ParseVarint(b []byte) (uint64, int, error) {
	if len(b) == 0 {
		return 0, 0, violation("truncated varint")
	}
	n := 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0, violation("truncated varint: %d of %d bytes", len(b), n)
	}
	v := uint64(b[0] & 0x3f)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n, nil
}

// ReadVarint reads one varint from r. A stream that ends before its first
// byte gives io.EOF; one that ends inside it gives io.ErrUnexpectedEOF.
func ReadVarint(r io.ByteReader) (uint64, error) {
	c, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	n := 1 << (c >> 6)
	v := uint64(c & 0x3f)
	for i := 1; i < n; i++ {
		c, err = r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		v = v<<8 | uint64(c)
	}
	return v, nil
}
