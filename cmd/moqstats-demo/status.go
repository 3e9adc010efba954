package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moqstats/moqstats/consumer"
)

// printer writes whole lines, each prefixed with the time since start,
// from any goroutine.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *printer) line(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%7.2fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// statusLine is one tick's status, from what the consumer computed out of
// the frames so far:
//
//	3 broadcasts | viewers 9: acme/live/main=5 globex/news/24x7=4 initech/town-hall=0 | egress 31.2 Mbit/s | ingress 9.4 Mbit/s | sessions 11: acme=6 globex=4 initech=1
//
// Broadcasts are those live on any track (some guard open), each with its
// own viewers: broadcasts - broadcasts_closed summed over both egress
// tracks. Egress and ingress sum the byte rates of the publisher and
// subscriber tracks of both tiers. Sessions are external sessions
// connected now, per auth root, for every root seen.
func statusLine(v *consumer.View) string {
	viewers := map[string]uint64{}
	var live []string
	var egress, ingress float64
	for i := range v.Broadcasts {
		r := &v.Broadcasts[i]
		if r.Current.Live() && !slices.Contains(live, r.Broadcast) {
			live = append(live, r.Broadcast)
		}
		rate, _ := r.Rate(consumer.Bytes)
		if r.Track.Kind == consumer.Publisher {
			viewers[r.Broadcast] += r.Viewers()
			egress += rate * 8
		} else {
			ingress += rate * 8
		}
	}
	slices.Sort(live)

	var b strings.Builder
	var total uint64
	var each strings.Builder
	for _, k := range live {
		total += viewers[k]
		fmt.Fprintf(&each, " %s=%d", statusKey(k), viewers[k])
	}
	fmt.Fprintf(&b, "%d broadcasts | viewers %d%s | egress %s | ingress %s", len(live), total, listed(each.String()), formatBitrate(egress), formatBitrate(ingress))

	total = 0
	each.Reset()
	for i := range v.Sessions {
		r := &v.Sessions[i]
		if r.Track.Tier != "" { // external only: customers, not cluster peers
			continue
		}
		total += r.Live()
		fmt.Fprintf(&each, " %s=%d", statusKey(r.Root), r.Live())
	}
	fmt.Fprintf(&b, " | sessions %d%s", total, listed(each.String()))
	return b.String()
}

// listed introduces a non-empty list of " key=value" items with a colon.
func listed(items string) string {
	if items == "" {
		return ""
	}
	return ":" + items
}

// summaryLine is the closing line: lifetime totals over the run.
func summaryLine(elapsed time.Duration, v *consumer.View) string {
	var egress, ingress, joined, sessions uint64
	for i := range v.Broadcasts {
		r := &v.Broadcasts[i]
		if r.Track.Kind == consumer.Publisher {
			egress += r.Total.Bytes
			joined += r.Total.Broadcasts
		} else {
			ingress += r.Total.Bytes
		}
	}
	for i := range v.Sessions {
		if r := &v.Sessions[i]; r.Track.Tier == "" {
			sessions += r.Total.Sessions
		}
	}
	return fmt.Sprintf("stopped after %v: sent %s to %d viewers in %d sessions, ingested %s",
		elapsed.Round(10*time.Millisecond), formatBytes(egress), joined, sessions, formatBytes(ingress))
}

// statusKey writes a key as is when it reads unambiguously in a status
// line, and quoted otherwise: keys come from clients.
func statusKey(k string) string {
	if k == "" || strings.ContainsAny(k, " =:|\"\\") || strconv.Quote(k) != `"`+k+`"` {
		return strconv.Quote(k)
	}
	return k
}

// formatBitrate writes bits per second with an SI unit and three
// significant digits or so: "950 bit/s", "12.3 kbit/s", "4.51 Mbit/s".
func formatBitrate(bps float64) string {
	return formatSI(bps, "bit/s")
}

// formatBytes writes a byte count with an SI unit: "1.23 GB".
func formatBytes(n uint64) string {
	return formatSI(float64(n), "B")
}

func formatSI(v float64, unit string) string {
	prefixes := []string{"", "k", "M", "G", "T", "P"}
	i := 0
	for v >= 999.5 && i < len(prefixes)-1 {
		v /= 1000
		i++
	}
	switch {
	case i == 0:
		return fmt.Sprintf("%.0f %s", v, unit)
	case v < 9.995:
		return fmt.Sprintf("%.2f %s%s", v, prefixes[i], unit)
	case v < 99.95:
		return fmt.Sprintf("%.1f %s%s", v, prefixes[i], unit)
	}
	return fmt.Sprintf("%.0f %s%s", v, prefixes[i], unit)
}
