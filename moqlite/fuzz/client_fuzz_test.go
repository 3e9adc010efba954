package fuzz

import (
	"context"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/moqlite/internal/memconn"
	"github.com/moqstats/moqstats/moqlite/internal/wire"
)

// maxFrame is the Client's frame cap in FuzzClientAgainstAHostileServer.
const maxFrame = 256

// FuzzClientAgainstAHostileServer plays a server that answers a Client's
// SUBSCRIBE with resp, sends group as a group stream, and answers its
// ANNOUNCE_INTEREST with announce, on lite-03 or -04. Whatever the bytes
// (truncated groups, lengths past the caps, unknown types), the Client
// returns errors, never panics, and never hands out a frame past MaxFrame
// or a path past the message cap.
func FuzzClientAgainstAHostileServer(f *testing.F) {
	for _, fe := range []wire.Features{mustFeatures("moq-lite-03"), mustFeatures("moq-lite-04")} {
		ok := wire.AppendSubscribeOk(nil, wire.SubscribeOk{}, fe)
		group := wire.AppendGroupStream(nil, wire.Group{Subscribe: 0, Sequence: 7})
		group = append(wire.AppendFrameHeader(group, 3), "abc"...)
		ann := wire.AppendMessage(nil, wire.AppendAnnounce(nil, wire.Announce{Active: true, Suffix: "node/1"}, fe))
		v := byte(3)
		if fe.Name == "moq-lite-04" {
			v = 4
		}
		f.Add(v, ok, group, ann)
		f.Add(v, ok, group[:len(group)-1], ann[:len(ann)-1])                                         // truncated
		f.Add(v, ok, append(wire.AppendGroupStream(nil, wire.Group{}), 0xbf, 0xff, 0xff, 0xff), ann) // a length past the cap
		big := wire.AppendGroupStream(nil, wire.Group{Subscribe: 0, Sequence: 1})
		f.Add(v, ok, append(wire.AppendFrameHeader(big, maxFrame+1), make([]byte, maxFrame+1)...), ann) // a frame past MaxFrame
		f.Add(v, []byte{0x1, 0x1, 0x0}, []byte{0x5}, []byte{0x40})                                      // a drop, an unknown type
		f.Add(v, []byte{0x7}, group, wire.AppendVarint(nil, 1<<40))
	}
	f.Fuzz(func(t *testing.T, version byte, resp, group, announce []byte) {
		protocol := "moq-lite-03"
		if version%2 == 0 {
			protocol = "moq-lite-04"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		cs, ss := memconn.Pair(ctx, protocol)
		defer ss.CloseWithError(0, "")
		go func() {
			st, err := ss.AcceptBidi(ctx)
			if err != nil {
				return
			}
			st.Write(resp)
			if uni, err := ss.OpenUni(ctx); err == nil {
				uni.Write(group)
				uni.Close()
			}
			st.Close()
			if st, err := ss.AcceptBidi(ctx); err == nil {
				st.Write(announce)
				st.Close()
			}
		}()
		c, err := moqlite.NewClient(ctx, cs, moqlite.ClientConfig{HandshakeTimeout: 200 * time.Millisecond, MaxFrame: maxFrame, EndLinger: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err) // no SETUP on these versions: nothing can fail yet
		}
		defer c.Close()
		if sub, err := c.Subscribe("b", "t"); err == nil {
			rctx, rcancel := context.WithTimeout(ctx, 300*time.Millisecond)
			for {
				g, err := sub.NextGroup(rctx)
				if err != nil {
					break
				}
				for {
					frame, err := g.ReadFrame(rctx)
					if err != nil {
						break
					}
					if len(frame) > maxFrame {
						t.Fatalf("a frame of %d bytes, past MaxFrame %d", len(frame), maxFrame)
					}
				}
			}
			rcancel()
			sub.Close()
		}
		if a, err := c.Announced(""); err == nil {
			rctx, rcancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer rcancel()
			for {
				an, err := a.Next(rctx)
				if err != nil {
					break
				}
				if len(an.Path) > wire.MaxMessage {
					t.Fatalf("an announced path of %d bytes, past the message cap", len(an.Path))
				}
			}
			a.Close()
		}
	})
}

func mustFeatures(protocol string) wire.Features {
	f, ok, _ := wire.ByProtocol(protocol)
	if !ok {
		panic(protocol)
	}
	return f
}
