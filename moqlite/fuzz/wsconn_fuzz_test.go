package fuzz

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/moqstats/moqstats/moqlite/wsconn"
)

// FuzzWSConnFrames feeds arbitrary WebSocket messages to both framings'
// decoder. Oracle: it never panics; an error is always a
// *wsconn.ProtocolError; a webtransport message holds one frame; and in
// qmux-00, where a frame consumes exactly its own bytes, a MAX_DATA frame
// put in front of any message adds exactly one frame and changes neither
// the verdict nor the rest.
func FuzzWSConnFrames(f *testing.F) {
	for _, h := range []string{
		"090f010203", "0404412c", "050405", "1d07627965", "0800",
		"0b0f03010203", "0404412c00", "050405", "1d070003627965", "1080100000", "110a80011170", "124096", "134096",
		"ff5153300d0a0d0a200404801000000504800400000604800400000704800400000802406409024064",
		"0e0205aa", "3104aabbccdd", "15040506", "1d000009aa", "ff5153300d0a0d0a0404020101",
	} {
		b, _ := hex.DecodeString(h)
		f.Add(b)
	}
	maxData, _ := hex.DecodeString("1080100000")
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, fr := range []wsconn.Framing{wsconn.FramingWebTransport, wsconn.FramingQMux} {
			n, err := wsconn.CheckMessage(fr, msg)
			if err != nil {
				var pe *wsconn.ProtocolError
				if !errors.As(err, &pe) {
					t.Fatalf("%v: error %v is not a *wsconn.ProtocolError", fr, err)
				}
				continue
			}
			if fr == wsconn.FramingWebTransport && n != 1 {
				t.Fatalf("webtransport message parsed as %d frames, want 1", n)
			}
		}
		n, err := wsconn.CheckMessage(wsconn.FramingQMux, msg)
		m, err2 := wsconn.CheckMessage(wsconn.FramingQMux, append(append([]byte{}, maxData...), msg...))
		if len(msg) > 0 && ((err == nil) != (err2 == nil) || m != n+1) {
			t.Fatalf("qmux: %d frames (%v), but %d (%v) with MAX_DATA in front", n, err, m, err2)
		}
	})
}
