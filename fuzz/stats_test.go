package fuzz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/internal/wiretest"
	"github.com/moqstats/moqstats/memorigin"
)

type snap = wiretest.Snapshot

var fuzzKeys = []string{"a", "b/c", "d"}

var errInjected = errors.New("injected write failure")

type openTrack struct {
	g    *moqstats.TrackGuard
	key  string
	slot int
}

type openSub struct {
	g      *moqstats.SubscriptionGuard
	viewer int
	key    string
}

// FuzzStats drives the aggregator with an arbitrary sequence of guard
// opens and closes, bumps, passes and failed writes, against a model of
// the counts. Each key is pinned by a broadcast guard, and each root by a
// session, for the whole run, so no entry is collected and every count is
// exact: every frame written
// must be valid, sorted and closed <= open, and after each fully written
// pass every key the model says is live, or changed, must carry exactly
// the model's counts. At the end everything closes and the frames must
// empty out.
func FuzzStats(f *testing.F) {
	f.Add([]byte{0, 0, 2, 200, 3, 0, 5, 0, 1, 0, 5, 0})
	f.Add([]byte{0, 5, 0, 6, 7, 0, 7, 1, 6, 1, 2, 9, 5, 0, 8, 0, 9, 0, 5, 0, 10, 0, 5, 0})
	f.Add([]byte{0, 12, 4, 0, 4, 1, 6, 3, 6, 0, 5, 0, 1, 0, 5, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 400 {
			ops = ops[:400]
		}
		origin := memorigin.New()
		s, err := moqstats.New(moqstats.Config{Origin: origin, Interval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := origin.Lookup(s.Path())
		var failing string
		b.SetWriteHook(func(track string, _ []byte) error {
			if track == failing {
				return errInjected
			}
			return nil
		})
		tracks := moqstats.Tracks()
		handles := []moqstats.Handle{s.Tier(moqstats.External), s.Tier(moqstats.Internal)}
		viewers := []*moqstats.SessionBroadcasts{handles[0].PublisherBroadcasts(), handles[0].PublisherBroadcasts()}

		model := map[string]*[4]snap{}
		viewerSubs := [2]map[string]int{{}, {}}
		sessions := map[string]*[2]uint64{}
		var pins []*moqstats.BroadcastGuard
		for _, k := range fuzzKeys {
			model[k] = new([4]snap)
			model[k][0].Announced = 1
			pins = append(pins, handles[0].Broadcast(k).Publisher())
		}
		var rootPins []*moqstats.SessionGuard
		for _, root := range []string{"r0", "r1"} {
			sessions[root] = &[2]uint64{1, 0}
			rootPins = append(rootPins, handles[0].Session(root))
		}
		var trs []openTrack
		var subs []openSub
		var sess []*moqstats.SessionGuard
		var sessRoots []string

		check := func(exact bool) {
			t.Helper()
			for i, name := range tracks {
				raw, ok := b.Latest(name)
				if !ok {
					t.Fatalf("no frame on %s", name)
				}
				if i >= 4 {
					var m map[string]wiretest.SessionSnapshot
					if err := json.Unmarshal(raw, &m); err != nil {
						t.Fatalf("%s: %v: %s", name, err, raw)
					}
					for root, v := range m {
						if v.SessionsClosed > v.Sessions {
							t.Fatalf("%s %s: closed > open: %+v", name, root, v)
						}
						if exact && i == 4 {
							if w := sessions[root]; w == nil || w[0] != v.Sessions || w[1] != v.SessionsClosed {
								t.Fatalf("%s %s = %+v, model %v", name, root, v, w)
							}
						}
					}
					continue
				}
				var m map[string]snap
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatalf("%s: %v: %s", name, err, raw)
				}
				var order []string
				dec := json.NewDecoder(bytes.NewReader(raw))
				dec.Token()
				for dec.More() {
					k, _ := dec.Token()
					order = append(order, k.(string))
					var skip json.RawMessage
					dec.Decode(&skip)
				}
				if !slices.IsSorted(order) {
					t.Fatalf("%s keys not in byte order: %q", name, order)
				}
				for k, v := range m {
					if v.ClosedAboveOpen() {
						t.Fatalf("%s %s shows closed > open: %+v", name, k, v)
					}
					if exact && v != model[k][i] {
						t.Fatalf("%s %s = %+v, model %+v", name, k, v, model[k][i])
					}
				}
				if exact {
					for k, w := range model {
						if _, ok := m[k]; w[i].Live() && !ok {
							t.Fatalf("%s lacks live key %s (model %+v)", name, k, w[i])
						}
					}
				}
			}
		}

		for len(ops) >= 2 {
			op, arg := ops[0]%11, int(ops[1])
			ops = ops[2:]
			switch op {
			case 0:
				k := fuzzKeys[arg%len(fuzzKeys)]
				slot := (arg >> 2) % 4
				bs := handles[slot/2].Broadcast(k)
				var g *moqstats.TrackGuard
				if slot%2 == 0 {
					g = bs.PublisherTrack("v")
				} else {
					g = bs.SubscriberTrack("v")
				}
				model[k][slot].Subscriptions++
				trs = append(trs, openTrack{g, k, slot})
			case 1, 2, 3, 4:
				if len(trs) == 0 {
					continue
				}
				i := arg % len(trs)
				tr := trs[i]
				m := &model[tr.key][tr.slot]
				switch op {
				case 1:
					tr.g.Close()
					m.SubscriptionsClosed++
					trs = slices.Delete(trs, i, i+1)
				case 2:
					tr.g.Bytes(uint64(arg))
					m.Bytes += uint64(arg)
				case 3:
					tr.g.Frame()
					m.Frames++
				case 4:
					tr.g.Group()
					m.Groups++
				}
			case 5, 6:
				failing = ""
				if op == 6 {
					failing = tracks[arg%len(tracks)]
				}
				// A failing track errs only if its frame changed.
				if err := s.Flush(); err != nil && (op == 5 || !errors.Is(err, errInjected)) {
					t.Fatalf("Flush = %v with failing track %q", err, failing)
				}
				check(op == 5)
			case 7:
				v := arg % 2
				k := fuzzKeys[(arg/2)%len(fuzzKeys)]
				subs = append(subs, openSub{viewers[v].Subscribe(k), v, k})
				if viewerSubs[v][k]++; viewerSubs[v][k] == 1 {
					model[k][0].Broadcasts++
				}
			case 8:
				if len(subs) == 0 {
					continue
				}
				i := arg % len(subs)
				sb := subs[i]
				sb.g.Close()
				if viewerSubs[sb.viewer][sb.key]--; viewerSubs[sb.viewer][sb.key] == 0 {
					model[sb.key][0].BroadcastsClosed++
				}
				subs = slices.Delete(subs, i, i+1)
			case 9:
				root := fmt.Sprint("r", arg%2)
				sess = append(sess, handles[0].Session(root))
				sessRoots = append(sessRoots, root)
				sessions[root][0]++
			case 10:
				if len(sess) == 0 {
					continue
				}
				i := arg % len(sess)
				sess[i].Close()
				sessions[sessRoots[i]][1]++
				sess = slices.Delete(sess, i, i+1)
				sessRoots = slices.Delete(sessRoots, i, i+1)
			}
		}
		failing = ""
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		check(true)

		// Close everything: the final counts go out once, then the frames
		// empty out.
		for _, tr := range trs {
			tr.g.Close()
		}
		for _, sb := range subs {
			sb.g.Close()
		}
		for _, g := range sess {
			g.Close()
		}
		for _, g := range pins {
			g.Close()
		}
		for _, g := range rootPins {
			g.Close()
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		for _, name := range tracks {
			if raw, _ := b.Latest(name); string(raw) != "{}" {
				t.Fatalf("%s = %s after everything closed, want {}", name, raw)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
