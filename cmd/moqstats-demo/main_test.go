package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDemoPrintsValidChangedFrames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	o := options{interval: 50 * time.Millisecond, node: "test", broadcasts: 2, viewers: 4, seed: 7}
	if err := run(ctx, &out, o); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		_, rest, _ := strings.Cut(line, "] ")
		track, frame, ok := strings.Cut(rest, " ")
		if !ok || !strings.HasSuffix(track, ".json") {
			continue
		}
		frame = strings.TrimSpace(frame)
		var m map[string]map[string]uint64
		if err := json.Unmarshal([]byte(frame), &m); err != nil {
			t.Fatalf("%s frame is not a JSON frame: %v: %s", track, err, frame)
		}
		seen[track]++
	}
	// Every track prints its baseline; ingest and the peer session make
	// internal/subscriber.json and internal/sessions.json change too.
	for _, track := range []string{"publisher.json", "subscriber.json", "internal/publisher.json", "internal/subscriber.json", "sessions.json", "internal/sessions.json"} {
		if seen[track] == 0 {
			t.Errorf("no frame printed for %s", track)
		}
	}
	if seen["internal/subscriber.json"] < 3 {
		t.Errorf("internal/subscriber.json printed %d frames; want the baseline and changes per tick", seen["internal/subscriber.json"])
	}
	if !strings.Contains(out.String(), "closed after") {
		t.Errorf("demo did not report closing:\n%s", out.String())
	}
}

func TestDemoRejectsBadOptions(t *testing.T) {
	if err := run(context.Background(), &bytes.Buffer{}, options{interval: time.Second}); err == nil {
		t.Fatal("run accepted zero broadcasts and viewers")
	}
}
