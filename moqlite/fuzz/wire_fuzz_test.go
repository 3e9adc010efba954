package fuzz

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"

	"github.com/moqstats/moqstats/moqlite/internal/wire"
)

// parsers decode a body and re-encode what they decoded, so the oracle is
// the codec itself: a body that parses must re-encode to a body that parses
// to the same value.
var parsers = []func(b []byte, f wire.Features) (any, []byte, error){
	func(b []byte, f wire.Features) (any, []byte, error) {
		m, err := wire.ParseSubscribe(b, f)
		return m, wire.AppendSubscribe(nil, m, f), err
	},
	func(b []byte, f wire.Features) (any, []byte, error) {
		m, err := wire.ParseSubscribeUpdate(b, f)
		return m, wire.AppendSubscribeUpdate(nil, m, f), err
	},
	func(b []byte, f wire.Features) (any, []byte, error) {
		m, err := wire.ParseAnnounceInterest(b, f)
		return m, wire.AppendAnnounceInterest(nil, m, f), err
	},
	func(b []byte, f wire.Features) (any, []byte, error) {
		m, err := wire.ParseAnnounce(b, f)
		return m, wire.AppendAnnounce(nil, m, f), err
	},
	func(b []byte, f wire.Features) (any, []byte, error) {
		m, err := wire.ParseAnnounceInit(b)
		return m, wire.AppendAnnounceInit(nil, m), err
	},
	func(b []byte, f wire.Features) (any, []byte, error) {
		m, err := wire.ParseClientSetup(b)
		return m, wire.AppendClientSetup(nil, m), err
	},
	func(b []byte, f wire.Features) (any, []byte, error) {
		m, err := wire.ParseServerSetup(b)
		return m, wire.AppendServerSetup(nil, m), err
	},
	func(b []byte, f wire.Features) (any, []byte, error) {
		m, err := wire.ParseGroup(b)
		return m, wire.AppendGroupStream(nil, m)[2:], err
	},
	func(b []byte, f wire.Features) (any, []byte, error) {
		m, err := wire.ParseProbe(b, f)
		return m, wire.AppendProbe(nil, m, f), err
	},
	func(b []byte, f wire.Features) (any, []byte, error) {
		m, err := wire.ParseFetch(b)
		return m, wire.AppendFetch(nil, m), err
	},
	func(b []byte, f wire.Features) (any, []byte, error) {
		m, err := wire.ParseGoaway(b)
		return m, wire.AppendGoaway(nil, m), err
	},
	func(b []byte, f wire.Features) (any, []byte, error) {
		m, err := wire.ParseSessionInfo(b)
		return m, wire.AppendSessionInfo(nil, m), err
	},
	func(b []byte, f wire.Features) (any, []byte, error) {
		m, err := wire.ParseSubscribeDrop(b)
		return m, wire.AppendSubscribeDrop(nil, m)[2:], err
	},
}

// FuzzParse feeds arbitrary bytes to every message decoder on every
// version, and to the stream reader: none may panic, every error must be a
// protocol error, and what decodes must round-trip.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"00" + "1f070b2e73746174732f6e6f6465107075626c69736865722e6a736f6e2e7a03",
		"10" + "070b2e73746174732f6e6f6465107075626c69736865722e6a736f6e2e7a0300000000",
		"23" + "01046e6f6465020102",
		"04" + "02046e6f646503782f79",
		"05" + "03c0000000ff0dad02c0000000ff0dad01c0000000ff00000e02028000a455070b6d6f712d6c6974652d6a73",
		"07" + "07412c",
		"ff" + "4001",
	} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		sel, body := int(data[0]), data[1:]
		fv := wire.Versions[(sel>>4)%len(wire.Versions)]
		parse := parsers[(sel&0xf)%len(parsers)]
		m, re, err := parse(body, fv)
		if err != nil {
			if !errors.Is(err, wire.ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
		} else {
			m2, _, err := parse(re, fv)
			if err != nil {
				t.Fatalf("re-encoded %x of %+v does not parse: %v", re, m, err)
			}
			if !reflect.DeepEqual(m, m2) {
				t.Fatalf("round trip: %+v became %+v", m, m2)
			}
		}
		// The same bytes as a stream of messages: each read is capped,
		// and the reader ends in io.EOF or a protocol error.
		br := bufio.NewReader(bytes.NewReader(body))
		for range 64 {
			b, err := wire.ReadMessage(br, 256)
			if err != nil {
				break
			}
			if len(b) > 256 {
				t.Fatalf("ReadMessage returned %d bytes past its cap", len(b))
			}
		}
	})
}
