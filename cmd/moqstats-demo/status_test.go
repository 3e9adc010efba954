package main

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
)

// statusRE matches a status line after its time prefix.
var statusRE = regexp.MustCompile(`^(\d+) broadcasts \| viewers (\d+)((?::(?: \S+=\d+)+)?) \| egress (\d+(?:\.\d+)? [kMGTP]?bit/s) \| ingress (\d+(?:\.\d+)? [kMGTP]?bit/s) \| sessions (\d+)((?::(?: \S+=\d+)+)?)$`)

// parsedStatus is a status line read back.
type parsedStatus struct {
	broadcasts       int
	viewers          uint64
	perBroadcast     map[string]uint64
	egress, ingress  string
	sessions         uint64
	perRoot          map[string]uint64
	broadcastsListed []string
}

func parseStatus(t *testing.T, line string) parsedStatus {
	t.Helper()
	m := statusRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("not a status line: %q", line)
	}
	var p parsedStatus
	p.broadcasts, _ = strconv.Atoi(m[1])
	p.viewers, _ = strconv.ParseUint(m[2], 10, 64)
	p.perBroadcast = parseItems(t, strings.TrimPrefix(m[3], ":"))
	p.egress, p.ingress = m[4], m[5]
	p.sessions, _ = strconv.ParseUint(m[6], 10, 64)
	p.perRoot = parseItems(t, strings.TrimPrefix(m[7], ":"))
	for _, item := range strings.Fields(strings.TrimPrefix(m[3], ":")) {
		k, _, _ := strings.Cut(item, "=")
		p.broadcastsListed = append(p.broadcastsListed, k)
	}
	return p
}

func parseItems(t *testing.T, s string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, item := range strings.Fields(s) {
		k, v, _ := strings.Cut(item, "=")
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("item %q: %v", item, err)
		}
		out[k] = n
	}
	return out
}

// statusSeen is one status line with the frame counts of the view it was
// printed from.
type statusSeen struct {
	line                     string
	publisherN, sessionsN    uint64
	publisherEnd, sessionEnd bool
}

// TestStatusLinesShowEachBroadcastsViewersFromTheFrames runs the demo and
// checks every status line it printed against the frames the stats wrote:
// each broadcast's viewers are that broadcast's broadcasts -
// broadcasts_closed in the publisher.json frame the line was computed
// from (not a total over broadcasts), the total is their sum, sessions per
// root are the sessions.json frame's, and the last lines report
// everything closed and the totals the simulation bumped.
func TestStatusLinesShowEachBroadcastsViewersFromTheFrames(t *testing.T) {
	rec := newRecorder()
	var mu sync.Mutex
	var seen []statusSeen
	var bumped ledger
	o := testOptions()
	o.interval = 50 * time.Millisecond
	o.record = rec
	o.trafficFor = 2500 * time.Millisecond
	trafficOver := make(chan struct{})
	o.trafficDone = func(l ledger) { bumped = l; close(trafficOver) }
	o.onStatus = func(v *consumer.View, line string) {
		s := statusSeen{line: line}
		for _, tr := range v.Tracks {
			switch tr.Track.Name() {
			case moqstats.TrackPublisher:
				s.publisherN, s.publisherEnd = tr.Frames, tr.Ended
			case moqstats.TrackSessions:
				s.sessionsN, s.sessionEnd = tr.Frames, tr.Ended
			}
		}
		mu.Lock()
		seen = append(seen, s)
		mu.Unlock()
	}
	d := startDemo(t, o)
	select {
	case <-trafficOver:
	case <-time.After(hangGuard):
		t.Fatal("traffic did not stop")
	}
	out, err := d.stop(t)
	if err != nil {
		t.Fatal(err)
	}

	printed := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		_, rest, ok := strings.Cut(l, "] ")
		if !ok || !regexp.MustCompile(`^\[ *\d+\.\d\ds\] `).MatchString(l) {
			t.Fatalf("line without a time prefix: %q", l)
		}
		printed[rest] = true
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 10 {
		t.Fatalf("%d status lines; want one per 50 ms tick over 2.5 s at least:\n%s", len(seen), out)
	}
	pub, sess := rec.track(moqstats.TrackPublisher), rec.track(moqstats.TrackSessions)
	severalWatched := false
	for i, s := range seen[:len(seen)-1] {
		if !printed[s.line] {
			t.Errorf("status %q was not printed", s.line)
		}
		p := parseStatus(t, s.line)
		if s.publisherN == 0 || s.publisherN > uint64(len(pub)) || s.sessionsN == 0 || s.sessionsN > uint64(len(sess)) {
			t.Fatalf("status %d was computed from frame %d of %d on publisher.json and %d of %d on sessions.json", i, s.publisherN, len(pub), s.sessionsN, len(sess))
		}
		frame := decodeFrame(t, pub[s.publisherN-1])
		var total uint64
		watched := 0
		for _, b := range p.broadcastsListed {
			want := viewersIn(frame, b)
			if got := p.perBroadcast[b]; got != want {
				t.Errorf("status %d %q: %s has %d viewers; publisher.json frame %d says %d", i, s.line, b, got, s.publisherN, want)
			}
			total += want
			if want > 0 {
				watched++
			}
		}
		severalWatched = severalWatched || watched >= 2
		for k := range frame {
			if viewersIn(frame, k) > 0 && !slices.Contains(p.broadcastsListed, k) {
				t.Errorf("status %d %q leaves out %s, watched by %d", i, s.line, k, viewersIn(frame, k))
			}
		}
		if p.viewers != total {
			t.Errorf("status %d %q: total viewers %d; the broadcasts listed sum to %d", i, s.line, p.viewers, total)
		}
		if p.broadcasts != len(p.broadcastsListed) {
			t.Errorf("status %d %q: %d broadcasts but %d listed", i, s.line, p.broadcasts, len(p.broadcastsListed))
		}
		sf := decodeFrame(t, sess[s.sessionsN-1])
		var live uint64
		for root, n := range p.perRoot {
			want := sf[root]["sessions"] - sf[root]["sessions_closed"]
			if n != want {
				t.Errorf("status %d %q: root %s has %d sessions; sessions.json frame %d says %d", i, s.line, root, n, s.sessionsN, want)
			}
			live += n
		}
		for root, e := range sf {
			if _, ok := p.perRoot[root]; !ok && e["sessions"] > e["sessions_closed"] {
				t.Errorf("status %d %q leaves out root %s", i, s.line, root)
			}
		}
		if p.sessions != live {
			t.Errorf("status %d %q: %d sessions; the roots listed sum to %d", i, s.line, p.sessions, live)
		}
	}
	if !severalWatched {
		t.Errorf("no status line had two broadcasts watched at once, so per-broadcast counts were never told apart from totals:\n%s", out)
	}

	// After Ctrl-C: a last status with everything closed, then the
	// lifetime totals, which are what the simulation bumped.
	last := seen[len(seen)-1]
	if !last.publisherEnd || !last.sessionEnd {
		t.Errorf("the last status was taken before the stats closed (publisher.json ended %v, sessions.json ended %v)", last.publisherEnd, last.sessionEnd)
	}
	p := parseStatus(t, last.line)
	if p.broadcasts != 0 || p.viewers != 0 || p.sessions != 0 || p.egress != "0 bit/s" || p.ingress != "0 bit/s" {
		t.Errorf("last status %q; want nothing live", last.line)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasSuffix(lines[len(lines)-2], "] "+last.line) {
		t.Errorf("the line before the summary is %q; want the last status %q", lines[len(lines)-2], last.line)
	}
	sum := func(m map[string]uint64) uint64 {
		var n uint64
		for _, v := range m {
			n += v
		}
		return n
	}
	want := fmt.Sprintf("sent %s to %d viewers in %d sessions, ingested %s",
		formatBytes(sum(bumped.Egress)), sum(bumped.Joined), sum(bumped.Sessions), formatBytes(sum(bumped.Ingress)))
	if !strings.Contains(lines[len(lines)-1], "stopped after ") || !strings.HasSuffix(lines[len(lines)-1], want) {
		t.Errorf("summary %q; want it to end %q (the bumped totals)", lines[len(lines)-1], want)
	}
	if sum(bumped.Egress) == 0 || len(bumped.Egress) != o.broadcasts || !slices.Equal(slices.Sorted(maps.Keys(bumped.Egress)), slices.Sorted(maps.Keys(bumped.Ingress))) {
		t.Errorf("ledger %+v; want egress on every broadcast", bumped)
	}
}

func TestFormatSI(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{
		{0, "0 bit/s"},
		{999, "999 bit/s"},
		{999.6, "1.00 kbit/s"},
		{1234, "1.23 kbit/s"},
		{12_345, "12.3 kbit/s"},
		{123_456, "123 kbit/s"},
		{4_512_000, "4.51 Mbit/s"},
		{99_960_000, "100 Mbit/s"},
		{2.5e9, "2.50 Gbit/s"},
		{3e18, "3000 Pbit/s"},
	} {
		if got := formatBitrate(c.v); got != c.want {
			t.Errorf("formatBitrate(%v) = %q; want %q", c.v, got, c.want)
		}
	}
}

func TestStatusKeyQuotesWhatWouldReadAmbiguously(t *testing.T) {
	for k, want := range map[string]string{
		"acme/live":    "acme/live",
		"café/live":    "café/live",
		"":             `""`,
		"a b":          `"a b"`,
		"a=1":          `"a=1"`,
		"x|y":          `"x|y"`,
		"tab\there":    `"tab\there"`,
		"new\nline":    `"new\nline"`,
		"q\"uote":      `"q\"uote"`,
		"<script>":     "<script>",
		"end:colon":    `"end:colon"`,
		"\x1b[31mred":  `"\x1b[31mred"`,
		"\u2028separa": `"\u2028separa"`,
	} {
		if got := statusKey(k); got != want {
			t.Errorf("statusKey(%q) = %s; want %s", k, got, want)
		}
	}
}
