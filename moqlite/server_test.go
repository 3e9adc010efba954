package moqlite_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/moqstats/moqstats/moqlite"
)

// Every version serves SUBSCRIBE: a group per WriteFrame, frames appended
// in order, and the stream's end after Close.
func TestSubscribeDeliversGroupsAsWrittenOnEveryVersion(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			srv := moqlite.NewServer(moqlite.ServerConfig{EndLinger: quickLinger})
			b, err := srv.PublishBroadcast("/a//b/", []string{"t", "u"})
			if err != nil {
				t.Fatal(err)
			}
			c, _, _ := connect(t, srv, v.protocol)
			if got, want := c.Version(), "moq-lite-0"+v.name[len(v.name)-1:]; got != want {
				t.Fatalf("version %q, want %q", got, want)
			}
			sub, err := c.Subscribe("a/b", "t")
			if err != nil {
				t.Fatal(err)
			}
			want := [][][]byte{}
			for g := range 5 {
				var frames [][]byte
				for f := range g + 1 {
					frames = append(frames, []byte(fmt.Sprintf("g%d f%d", g, f)))
				}
				want = append(want, frames)
				if err := b.WriteFrame("t", frames[0]); err != nil {
					t.Fatal(err)
				}
				for _, f := range frames[1:] {
					if err := b.AppendFrame("t", f); err != nil {
						t.Fatal(err)
					}
				}
			}
			done := make(chan error, 1)
			go func() { done <- b.Close() }()
			ctx := timeout(t, 10*time.Second)
			for i, w := range want {
				g, err := sub.NextGroup(ctx)
				if err != nil {
					t.Fatalf("group %d: %v", i, err)
				}
				if g.Sequence != uint64(i) {
					t.Fatalf("group sequence %d, want %d", g.Sequence, i)
				}
				got, err := readGroup(ctx, g)
				if err != io.EOF {
					t.Fatalf("group %d ended with %v, want io.EOF", i, err)
				}
				if len(got) != len(w) {
					t.Fatalf("group %d: %d frames, want %d", i, len(got), len(w))
				}
				for j := range w {
					if !bytes.Equal(got[j], w[j]) {
						t.Fatalf("group %d frame %d: %q, want %q", i, j, got[j], w[j])
					}
				}
			}
			if _, err := sub.NextGroup(ctx); err != io.EOF {
				t.Fatalf("after the last group: %v, want io.EOF", err)
			}
			if err := <-done; err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, err := c.Subscribe("a/b", "t"); !errors.Is(err, moqlite.ErrNotFound) {
				t.Fatalf("subscribe after Close: %v, want ErrNotFound", err)
			}
		})
	}
}
