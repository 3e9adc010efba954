package wsconn

import (
	"encoding/hex"
	"reflect"
	"testing"
)

// Golden vectors: bytes written by @moq/web-transport-ws 0.3.0 and
// @moq/qmux 0.0.6's own encoders (frame.js), for the frames below.
var golden = []struct {
	name    string
	framing Framing
	hex     string
	want    frame
	enc     func() []byte // our encoder for the same frame
}{
	{"wt stream fin", FramingWebTransport, "090f010203",
		frame{kind: kindStream, id: 15, data: []byte{1, 2, 3}, fin: true},
		func() []byte { return appendStreamFrame(nil, FramingWebTransport, 15, []byte{1, 2, 3}, true) }},
	{"wt reset", FramingWebTransport, "0404412c",
		frame{kind: kindReset, id: 4, code: 300},
		func() []byte { return appendResetFrame(nil, FramingWebTransport, 4, 300, 0) }},
	{"wt stop", FramingWebTransport, "050405",
		frame{kind: kindStop, id: 4, code: 5},
		func() []byte { return appendStopFrame(nil, FramingWebTransport, 4, 5) }},
	{"wt close", FramingWebTransport, "1d07627965",
		frame{kind: kindClose, code: 7, reason: "bye"},
		func() []byte { return appendCloseFrame(nil, FramingWebTransport, 7, "bye") }},
	{"qmux stream fin", FramingQMux, "0b0f03010203",
		frame{kind: kindStream, id: 15, data: []byte{1, 2, 3}, fin: true},
		func() []byte { return appendStreamFrame(nil, FramingQMux, 15, []byte{1, 2, 3}, true) }},
	{"qmux reset", FramingQMux, "0404412c00",
		frame{kind: kindReset, id: 4, code: 300},
		func() []byte { return appendResetFrame(nil, FramingQMux, 4, 300, 0) }},
	{"qmux stop", FramingQMux, "050405",
		frame{kind: kindStop, id: 4, code: 5},
		func() []byte { return appendStopFrame(nil, FramingQMux, 4, 5) }},
	{"qmux close", FramingQMux, "1d070003627965",
		frame{kind: kindClose, code: 7, reason: "bye"},
		func() []byte { return appendCloseFrame(nil, FramingQMux, 7, "bye") }},
	{"qmux params", FramingQMux, "ff5153300d0a0d0a200404801000000504800400000604800400000704800400000802406409024064",
		frame{kind: kindParams, params: transportParams{1 << 20, 256 << 10, 256 << 10, 256 << 10, 100, 100}},
		func() []byte {
			return appendParamsFrame(nil, transportParams{1 << 20, 256 << 10, 256 << 10, 256 << 10, 100, 100})
		}},
	{"qmux max_data", FramingQMux, "1080100000",
		frame{kind: kindMaxData, max: 1 << 20},
		func() []byte { return appendMaxFrame(nil, typeMaxData, 1<<20) }},
	{"qmux max_stream_data", FramingQMux, "110a80011170",
		frame{kind: kindMaxStreamData, id: 10, max: 70000},
		func() []byte { return appendMaxStreamDataFrame(nil, 10, 70000) }},
	{"qmux max_streams bidi", FramingQMux, "124096",
		frame{kind: kindMaxStreamsBidi, max: 150},
		func() []byte { return appendMaxFrame(nil, typeMaxStreamsBidi, 150) }},
	{"qmux max_streams uni", FramingQMux, "134096",
		frame{kind: kindMaxStreamsUni, max: 150},
		func() []byte { return appendMaxFrame(nil, typeMaxStreamsUni, 150) }},
}

func TestFramesMatchTheJavaScriptEncoders(t *testing.T) {
	for _, g := range golden {
		b, _ := hex.DecodeString(g.hex)
		fr, rest, err := parseFrame(g.framing, b)
		if err != nil || len(rest) != 0 {
			t.Errorf("%s: parse: %v, %d bytes left", g.name, err, len(rest))
			continue
		}
		if !reflect.DeepEqual(fr, g.want) {
			t.Errorf("%s: parsed %+v, want %+v", g.name, fr, g.want)
		}
		if got := hex.EncodeToString(g.enc()); got != g.hex {
			t.Errorf("%s: encoded %s, want the JavaScript encoder's %s", g.name, got, g.hex)
		}
	}
}

func TestQMuxMessageWithSeveralFramesParsesEach(t *testing.T) {
	b, _ := hex.DecodeString("1080100000" + "124096" + "0b0f03010203")
	kinds := []frameKind{}
	for len(b) > 0 {
		fr, rest, err := parseFrame(FramingQMux, b)
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, fr.kind)
		b = rest
	}
	if !reflect.DeepEqual(kinds, []frameKind{kindMaxData, kindMaxStreamsBidi, kindStream}) {
		t.Fatalf("got kinds %v", kinds)
	}
}

func TestVarintRoundTripAtEveryLengthBoundary(t *testing.T) {
	for _, v := range []uint64{0, 63, 64, 16383, 16384, 1<<30 - 1, 1 << 30, maxVarint} {
		b := appendVarint(nil, v)
		got, rest, err := readVarint(b)
		if err != nil || got != v || len(rest) != 0 {
			t.Errorf("varint %d: got %d, %v, %d left", v, got, err, len(rest))
		}
	}
}
