package wire

import (
	"bufio"
	"encoding/binary"
	"io"
)

// AppendMessage appends body with its varint length prefix.
func AppendMessage(dst, body []byte) []byte {
	dst = AppendVarint(dst, uint64(len(body)))
	return append(dst, body...)
}

// ReadMessage reads one varint-length-prefixed message body from r, at most
// limit bytes; the length is checked before anything is allocated. A stream
// that ends cleanly before the message gives io.EOF; one that ends inside it
// gives io.ErrUnexpectedEOF.
func ReadMessage(r *bufio.Reader, limit int) ([]byte, error) {
	n, err := ReadVarint(r)
	if err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, violation("message length: %v", err)
		}
		return nil, err
	}
	if n > uint64(limit) {
		return nil, tooLarge("message", n, uint64(limit))
	}
	return readBody(r, int(n))
}

// ReadSetupMessage reads one SETUP message body: IETF framing, a 16-bit
// big-endian length.
func ReadSetupMessage(r *bufio.Reader) ([]byte, error) {
	var p [2]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, violation("SETUP length: %v", io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	return readBody(r, int(binary.BigEndian.Uint16(p[:])))
}

func readBody(r *bufio.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, violation("message of %d bytes: %v", n, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	return b, nil
}

// AppendSetupMessage appends body with the 16-bit length SETUP uses.
func AppendSetupMessage(dst, body []byte) []byte {
	if len(body) > MaxSetup {
		panic("BUG: SETUP body past 65535 bytes")
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(body)))
	return append(dst, body...)
}
