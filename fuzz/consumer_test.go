package fuzz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/moqstats/moqstats/consumer"
)

// oracleFrame is what encoding/json makes of a frame, with everything the
// consumer's contract adds checked by hand: ok is false when encoding/json
// rejects the frame, and strict is false when it accepts a frame the
// contract rejects (duplicate keys, nulls, non-integers, unpaired
// surrogates, nesting deeper than the decoder's limit).
func oracleFrame(frame []byte, names []string) (vals map[string][]uint64, ok, strict bool) {
	if !json.Valid(frame) {
		return nil, false, false
	}
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(frame, &raw); err != nil {
		return nil, false, false
	}
	strict = utf8.Valid(frame) && !hasSurrogateEscape(frame) && uniqueAndShallow(frame) &&
		bytes.HasPrefix(bytes.TrimLeft(frame, " \t\r\n"), []byte("{")) && len(raw) <= consumer.DefaultMaxEntries
	vals = map[string][]uint64{}
	for key, members := range raw {
		if members == nil { // null, which encoding/json accepts
			strict = false
			continue
		}
		v := make([]uint64, len(names))
		for i, name := range names {
			m, present := members[name]
			if !present {
				continue
			}
			// encoding/json reads null into a uint64 as "no change", and
			// the contract rejects it; it rejects fractions, exponents,
			// negatives and overflow itself.
			if string(m) == "null" {
				strict = false
			} else if err := json.Unmarshal(m, &v[i]); err != nil {
				return nil, false, false
			}
		}
		vals[key] = v
	}
	return vals, true, strict
}

// hasSurrogateEscape reports a \u escape of any surrogate, paired or not:
// the oracle leaves them to the both-accept comparison.
func hasSurrogateEscape(frame []byte) bool {
	for i := 0; i+5 < len(frame); i++ {
		if frame[i] != '\\' {
			continue
		}
		if frame[i+1] == 'u' && (frame[i+2] == 'd' || frame[i+2] == 'D') && strings.ContainsRune("89abcdefABCDEF", rune(frame[i+3])) {
			return true
		}
		i++ // skip the escaped byte, so \\u is not an escape
	}
	return false
}

// uniqueAndShallow walks the frame's tokens: no key twice in the frame or
// in an entry, and no container deeper than the decoder allows.
func uniqueAndShallow(frame []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(frame))
	dec.UseNumber()
	type level struct {
		object bool
		keys   map[string]bool
		expect bool // the next string in this object is a key
	}
	var stack []level
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].expect = true
				}
				stack = append(stack, level{object: d == '{', keys: map[string]bool{}, expect: true})
				if len(stack) > consumer.DefaultMaxDepth {
					return false
				}
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].expect = true
				}
			}
			continue
		}
		if len(stack) == 0 {
			continue // a scalar frame
		}
		top := &stack[len(stack)-1]
		if top.object && top.expect {
			k := tok.(string)
			if len(stack) <= 2 && top.keys[k] {
				return false
			}
			top.keys[k], top.expect = true, false
			continue
		}
		if top.object {
			top.expect = true
		}
	}
}

var trafficNames = []string{"announced", "announced_closed", "announced_bytes", "broadcasts", "broadcasts_closed",
	"subscriptions", "subscriptions_closed", "fetches", "bytes", "frames", "groups", "datagrams"}

// FuzzDecodeFrame checks the consumer's decoder against encoding/json:
// whatever it accepts encoding/json accepts into the same typed shape,
// with the same values; whatever encoding/json accepts that is also
// free of duplicate keys, nulls, surrogate escapes and deep nesting, it
// accepts. It must never panic.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":{}}`, `{"a/b":{"announced":1,"announced_closed":0,"broadcasts":2,"broadcasts_closed":1,"subscriptions":3,"subscriptions_closed":2,"bytes":42,"frames":5,"groups":1}}`,
		`{"x":{"bytes":18446744073709551615,"datagrams":1,"new":[1,{"y":"z"}]}}`, `{"a":{"sessions":2,"sessions_closed":1}}`,
		`{"a":{},"a":{}}`, `{"a":{"bytes":1,"bytes":1}}`, `{"a":null}`, `{"a":{"bytes":null}}`, `{"a":{"bytes":-1}}`,
		`{"a":{"bytes":1.5}}`, `{"a":{"bytes":1e2}}`, `{"a":{"bytes":18446744073709551616}}`, `{"\udc00":{}}`,
		`{"\ud83d\ude00":{"Bytes":1}}`, "{\"\xff\":{}}", `{"a":{}} {}`, `[1]`, `null`, ` {"a" : { "frames" : 3 } } `,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, frame []byte, sessions bool) {
		names := trafficNames
		var got map[string][]uint64
		var err error
		if sessions {
			names = []string{"sessions", "sessions_closed"}
			var p consumer.PresenceFrame
			if p, err = consumer.DecodePresence(frame); err == nil {
				got = map[string][]uint64{}
				for k, v := range p {
					got[k] = []uint64{v.Sessions, v.SessionsClosed}
				}
			}
		} else {
			var tf consumer.TrafficFrame
			if tf, err = consumer.DecodeTraffic(frame); err == nil {
				got = map[string][]uint64{}
				for k, v := range tf {
					vals := make([]uint64, consumer.NumTrafficFields)
					for i := range vals {
						vals[i] = v.Field(consumer.TrafficField(i))
					}
					got[k] = vals
				}
			}
		}
		if err != nil && !errors.Is(err, consumer.ErrInvalidFrame) {
			t.Fatalf("error %v does not match ErrInvalidFrame", err)
		}
		want, ok, strict := oracleFrame(frame, names)
		switch {
		case err == nil && !ok:
			t.Fatalf("decoder accepts %q, encoding/json rejects it", frame)
		case err != nil && strict:
			t.Fatalf("decoder rejects %q (%v), a frame encoding/json accepts with no duplicate, null, surrogate escape or deep nesting", frame, err)
		case err == nil && fmt.Sprint(got) != fmt.Sprint(want):
			t.Fatalf("frame %q: decoder gives %v, encoding/json %v", frame, got, want)
		}
	})
}

// FuzzAggregator feeds an Aggregator random sequences of frames (mostly
// well-formed, some raw fuzz bytes), track ends, gaps, expiry sweeps and
// views, from two nodes on all six tracks, with key expiry on or off (the
// input's first byte), and checks that it never panics, that no
// lifetime total summed over a track's keys and its expired keys ever
// goes down, and that no row's total goes down or its row disappears
// unless its track expired a key meanwhile.
func FuzzAggregator(f *testing.F) {
	f.Add([]byte("\x00\x02\x01\x05\x10\x03\x00\x02\x01\x02\x01\x07\x00\x02\x01\x09"))
	f.Add([]byte("\x08\x01\x00\x04\x04\x0f\x08\x01\x00\x01\x01\x17\x08\x01\x00\x05\x05"))
	f.Add([]byte("\x06{\"a\":{\"bytes\":1}}"))
	// Expiry on: a key idle, time passing, a gap, a sweep, the key back.
	f.Add([]byte("\x80\x02\x00\x01\x01\x00\xf0\xf2\x00\xfc\xf0\x0a\xf0\x02\x00\x01\x01\x01\xf0\x0a\x00\x02\x00\x01\x01\x01"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		cfg := consumer.Config{MaxKeys: 8, Retention: 3 * time.Second, RetentionSlack: time.Second}
		if len(ops) > 0 && ops[0]&0x80 != 0 {
			cfg.ExpireAfter = 5 * time.Second
		}
		agg, err := consumer.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		prevExpired := map[string]int{}
		tracks := []string{"publisher.json", "subscriber.json", "internal/publisher.json", "internal/subscriber.json", "sessions.json", "internal/sessions.json"}
		keys := []string{"a", "b/c", ""}
		clock := time.Unix(0, 0)
		prev := map[string]uint64{}
		next := func() byte {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return b
		}
		for len(ops) > 0 {
			op := next()
			node := fmt.Sprint("n", op&1)
			track := tracks[int(op>>1)%len(tracks)]
			clock = clock.Add(time.Duration(op>>4) * 500 * time.Millisecond)
			switch {
			case op&0x0e == 0x0e && op&0x10 != 0:
				agg.EndNode(node, clock)
			case op&0x0e == 0x0e:
				agg.EndTrack(node, track, clock)
			case op&0x0f == 0x0c:
				if err := agg.Gap(node, tracks[int(op>>4)%len(tracks)], clock); err != nil {
					t.Fatal(err)
				}
			case op == 0x0a && cfg.ExpireAfter > 0:
				agg.Expire(clock)
			case op == 6:
				// The rest of the input, raw: hostile frames must be
				// rejected cleanly.
				_ = agg.Observe(node, track, clock, ops)
				ops = nil
			default:
				var parts []string
				for range int(next() % 4) {
					k := keys[int(next())%len(keys)]
					if strings.Contains(track, "sessions") {
						parts = append(parts, fmt.Sprintf("%q:{\"sessions\":%d,\"sessions_closed\":%d}", k, next(), next()))
					} else {
						parts = append(parts, fmt.Sprintf("%q:{\"announced\":%d,\"announced_closed\":%d,\"broadcasts\":%d,\"subscriptions\":%d,\"bytes\":%d}", k, next(), next(), next(), next(), uint64(next())<<56))
					}
				}
				frame := "{" + strings.Join(parts, ",") + "}"
				if err := agg.Observe(node, track, clock, []byte(frame)); err != nil &&
					!errors.Is(err, consumer.ErrDuplicateKey) && !errors.Is(err, consumer.ErrKeyLimit) {
					t.Fatalf("frame %s: %v", frame, err)
				}
			}
			v := agg.View(clock)
			cur := map[string]uint64{}
			for _, r := range v.Broadcasts {
				for _, fld := range consumer.TrafficFields() {
					cur[r.Node+"|"+r.Track.Name()+"|"+r.Broadcast+"|"+fld.String()] = r.Total.Field(fld)
				}
				if x, ok := r.Rate(consumer.Bytes); ok && (x < 0 || x != x) {
					t.Fatalf("rate %v", x)
				}
			}
			for _, r := range v.Sessions {
				cur[r.Node+"|"+r.Track.Name()+"|"+r.Root+"|s"] = r.Total.Sessions
				cur[r.Node+"|"+r.Track.Name()+"|"+r.Root+"|sc"] = r.Total.SessionsClosed
			}
			cur["sum"] = v.Total("", consumer.Publisher).Bytes
			cur["sessions"] = v.SessionsTotal("").Sessions
			expired := map[string]int{}
			for _, tr := range v.Tracks {
				id := tr.Node + "|" + tr.Track.Name()
				expired[id] = tr.ExpiredKeys
				if tr.ExpiredKeys > 0 && cfg.ExpireAfter == 0 {
					t.Fatalf("track %s expired %d keys without ExpireAfter", id, tr.ExpiredKeys)
				}
				var sum consumer.Traffic
				for _, r := range v.Broadcasts {
					if r.Node == tr.Node && r.Track == tr.Track {
						sum = addTraffic(sum, r.Total)
					}
				}
				sum = addTraffic(sum, tr.Expired)
				sum.Announced = satAdd(sum.Announced, tr.ExpiredSessions.Sessions)
				for _, r := range v.Sessions {
					if r.Node == tr.Node && r.Track == tr.Track {
						sum.Announced = satAdd(sum.Announced, r.Total.Sessions)
					}
				}
				for _, fld := range consumer.TrafficFields() {
					cur["track|"+id+"|"+fld.String()] = sum.Field(fld)
				}
			}
			for k, was := range prev {
				now, ok := cur[k]
				if ok && now >= was {
					continue
				}
				// A row may go, or come back lower, only if its track
				// expired a key meanwhile.
				parts := strings.SplitN(k, "|", 3)
				if len(parts) == 3 && parts[0] != "track" {
					id := parts[0] + "|" + parts[1]
					if expired[id] > prevExpired[id] {
						continue
					}
				}
				t.Fatalf("total %s went from %d to %d (present %v)", k, was, now, ok)
			}
			prev, prevExpired = cur, expired
		}
	})
}

func addTraffic(a, b consumer.Traffic) consumer.Traffic {
	return consumer.Traffic{
		Announced: satAdd(a.Announced, b.Announced), AnnouncedClosed: satAdd(a.AnnouncedClosed, b.AnnouncedClosed),
		AnnouncedBytes: satAdd(a.AnnouncedBytes, b.AnnouncedBytes), Broadcasts: satAdd(a.Broadcasts, b.Broadcasts),
		BroadcastsClosed: satAdd(a.BroadcastsClosed, b.BroadcastsClosed), Subscriptions: satAdd(a.Subscriptions, b.Subscriptions),
		SubscriptionsClosed: satAdd(a.SubscriptionsClosed, b.SubscriptionsClosed), Fetches: satAdd(a.Fetches, b.Fetches),
		Bytes: satAdd(a.Bytes, b.Bytes), Frames: satAdd(a.Frames, b.Frames), Groups: satAdd(a.Groups, b.Groups),
		Datagrams: satAdd(a.Datagrams, b.Datagrams),
	}
}

func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<64 - 1
}
