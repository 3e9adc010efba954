package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
)

// Varints round-trip at every length boundary, and a truncated one is a
// protocol error, never a panic or a short value.
func TestVarintRoundTripsAndTruncationIsAnError(t *testing.T) {
	for _, v := range []uint64{0, 63, 64, 16383, 16384, 1<<30 - 1, 1 << 30, MaxVarint} {
		b := AppendVarint(nil, v)
		if len(b) != VarintLen(v) {
			t.Fatalf("%d: %d bytes, VarintLen says %d", v, len(b), VarintLen(v))
		}
		got, n, err := ParseVarint(b)
		if err != nil || got != v || n != len(b) {
			t.Fatalf("ParseVarint(%x) = %d, %d, %v; want %d, %d, nil", b, got, n, err, v, len(b))
		}
		r, err := ReadVarint(bytes.NewReader(b))
		if err != nil || r != v {
			t.Fatalf("ReadVarint(%x) = %d, %v", b, r, err)
		}
		for cut := range len(b) {
			if _, _, err := ParseVarint(b[:cut]); !errors.Is(err, ErrProtocol) {
				t.Fatalf("ParseVarint of %d of %d bytes: %v, want ErrProtocol", cut, len(b), err)
			}
			_, err := ReadVarint(bytes.NewReader(b[:cut]))
			if want := io.ErrUnexpectedEOF; cut == 0 {
				if err != io.EOF {
					t.Fatalf("ReadVarint of nothing: %v, want io.EOF", err)
				}
			} else if err != want {
				t.Fatalf("ReadVarint of %d of %d bytes: %v, want %v", cut, len(b), err, want)
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("AppendVarint past 2^62-1 did not panic")
		}
	}()
	AppendVarint(nil, math.MaxUint64)
}

// ReadMessage checks the length against the cap before it allocates, and a
// stream that ends inside a message is a protocol error.
func TestReadMessageCapsLengthBeforeAllocating(t *testing.T) {
	huge := AppendVarint(nil, MaxVarint)
	_, err := ReadMessage(bufio.NewReader(bytes.NewReader(huge)), MaxMessage)
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrProtocol) {
		t.Fatalf("a 2^62-byte length: %v, want ErrTooLarge and ErrProtocol", err)
	}
	over := AppendMessage(nil, make([]byte, MaxMessage+1))
	if _, err := ReadMessage(bufio.NewReader(bytes.NewReader(over)), MaxMessage); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a message one past the cap: %v, want ErrTooLarge", err)
	}
	short := AppendVarint(nil, 10)
	short = append(short, 1, 2, 3)
	if _, err := ReadMessage(bufio.NewReader(bytes.NewReader(short)), MaxMessage); !errors.Is(err, ErrProtocol) {
		t.Fatalf("a stream ending inside a message: %v, want ErrProtocol", err)
	}
	if _, err := ReadMessage(bufio.NewReader(bytes.NewReader(nil)), MaxMessage); err != io.EOF {
		t.Fatalf("a stream ending between messages: %v, want io.EOF", err)
	}
	if _, err := ReadSetupMessage(bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 1}))); !errors.Is(err, ErrProtocol) {
		t.Fatalf("a SETUP cut short: %v, want ErrProtocol", err)
	}
}

// Every parser rejects what @moq/lite rejects: trailing bytes, a bool byte
// past 1, strings past their cap or the body, invalid UTF-8, too many hops
// or versions, repeated SETUP parameters.
func TestParsersRejectMalformedBodies(t *testing.T) {
	f4, _ := Lookup(Lite04)
	f3, _ := Lookup(Lite03)
	long := appendString(nil, string(bytes.Repeat([]byte("x"), MaxName+1)))
	cases := []struct {
		name  string
		parse func([]byte) error
		body  []byte
	}{
		{"trailing byte", func(b []byte) error { _, err := ParseGoaway(b); return err }, append(appendString(nil, "u"), 0)},
		{"bool 2", func(b []byte) error { _, err := ParseAnnounce(b, f4); return err }, []byte{2, 0, 0}},
		{"string past body", func(b []byte) error { _, err := ParseAnnounceInterest(b, f3); return err }, []byte{5, 'a'}},
		{"string past cap", func(b []byte) error { _, err := ParseAnnounceInterest(b, f3); return err }, long},
		{"invalid UTF-8", func(b []byte) error { _, err := ParseAnnounceInterest(b, f3); return err }, []byte{1, 0xff}},
		{"hops past cap (04)", func(b []byte) error { _, err := ParseAnnounce(b, f4); return err }, append([]byte{1, 0}, AppendVarint(nil, MaxHops+1)...)},
		{"hops past cap (03)", func(b []byte) error { _, err := ParseAnnounce(b, f3); return err }, append([]byte{1, 0}, AppendVarint(nil, MaxHops+1)...)},
		{"hop count past body", func(b []byte) error { _, err := ParseAnnounce(b, f4); return err }, []byte{1, 0, 5, 1}},
		{"versions past cap", func(b []byte) error { _, err := ParseClientSetup(b); return err }, AppendVarint(nil, MaxVersions+1)},
		{"repeated parameter", func(b []byte) error { _, err := ParseClientSetup(b); return err }, []byte{0, 2, 2, 1, 2, 1}},
		{"truncated subscribe", func(b []byte) error { _, err := ParseSubscribe(b, f4); return err }, []byte{7, 0, 0}},
		{"empty group", func(b []byte) error { _, err := ParseGroup(b); return err }, nil},
		{"announce init count past body", func(b []byte) error { _, err := ParseAnnounceInit(b); return err }, []byte{9, 0}},
	}
	for _, c := range cases {
		if err := c.parse(c.body); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want ErrProtocol", c.name, err)
		}
	}
}
