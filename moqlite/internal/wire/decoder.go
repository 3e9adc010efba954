package wire

import "unicode/utf8"

// decoder reads fields from one message body. Its first error sticks: later
// reads return zero values, and finish reports the error, so a parser reads
// its fields straight through and checks once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) varint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n, err := ParseVarint(d.b)
	if err != nil {
		d.fail(violation("%s: %v", field, err))
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8(field string) uint8 {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail(violation("%s: truncated", field))
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bool(field string) bool {
	switch v := d.u8(field); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail(violation("%s: bool byte %d is neither 0 nor 1", field, v))
		return false
	}
}

// bytes returns the next n bytes, aliasing the body.
func (d *decoder) bytes(field string, n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(violation("%s: length %d past the %d bytes left in the message", field, n, len(d.b)))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// string reads a varint length and that many bytes of UTF-8, at most limit.
func (d *decoder) string(field string, limit int) string {
	n := d.varint(field)
	if d.err != nil {
		return ""
	}
	if n > uint64(limit) {
		d.fail(tooLarge(field, n, uint64(limit)))
		return ""
	}
	b := d.bytes(field, n)
	if d.err != nil {
		return ""
	}
	if !utf8.Valid(b) {
		d.fail(violation("%s: not UTF-8", field))
		return ""
	}
	return string(b)
}

// count reads a varint count of items, each at least one byte, at most limit.
func (d *decoder) count(field string, limit int) int {
	n := d.varint(field)
	if d.err != nil {
		return 0
	}
	if n > uint64(limit) {
		d.fail(violation("%s: %d past the cap of %d", field, n, limit))
		return 0
	}
	if n > uint64(len(d.b)) {
		d.fail(violation("%s: %d items cannot fit in the %d bytes left", field, n, len(d.b)))
		return 0
	}
	return int(n)
}

func (d *decoder) finish(msg string) error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return violation("%s: %d bytes left after the last field", msg, len(d.b))
	}
	return nil
}

func appendString(dst []byte, s string) []byte {
	dst = AppendVarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}
