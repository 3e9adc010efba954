package httpstats_test

import (
	"bufio"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moqstats/moqstats/httpstats"
)

// liveHeap returns the bytes of heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// Readers that stop reading, each at a different time, hold different
// frames; what they hold together stays within QueueBytes (plus the
// frame each is writing), measured as the live heap after a collection.
// Without the byte budgets each held up to StreamBuffer frames.
func TestSlowReadersHoldBoundedBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MiB")
	}
	const mib = 1 << 20
	const frameSize, readers, every, frames = mib, 8, 4, 60
	o := newOrigin(t, httpstats.Options{QueueBytes: 8 * mib, StreamBytes: 4 * mib, WriteTimeout: time.Minute})
	ts := serve(t, o)
	b := publish(t, o, "p", "t.json")
	base := liveHeap()
	frame := make([]byte, frameSize)
	write := func(i int) {
		copy(frame, fmt.Sprintf(`{"%08d":{"bytes":1},"pad":"`, i))
		for j := 30; j < frameSize-2; j++ {
			frame[j] = 'x'
		}
		copy(frame[frameSize-2:], `"}`)
		if err := b.WriteFrame("t.json", frame); err != nil {
			t.Fatal(err)
		}
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range frames {
		if i%every == 0 && len(conns) < readers {
			// A client that sends its request and never reads a byte.
			c, err := net.Dial("tcp", ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET /stats/t.json HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
			conns = append(conns, c)
			time.Sleep(20 * time.Millisecond) // let its handler subscribe
		}
		write(i)
	}
	time.Sleep(100 * time.Millisecond) // let the handlers block in their writes
	const bound = 8*mib + readers*frameSize + 8*mib
	if grew := liveHeap() - base; grew > bound {
		t.Fatalf("%d readers that stopped reading hold %d bytes (%.1f MiB) of frames, want at most %d (QueueBytes, a frame in flight each, and slack)",
			readers, grew, float64(grew)/mib, bound)
	}
}

// A Range header is ignored: the answer is the whole frame, not a
// multipart body many times its size (a part header per byte asked for).
func TestRangeRequestsGetTheWholeFrame(t *testing.T) {
	o := newOrigin(t, httpstats.Options{})
	ts := serve(t, o)
	b := publish(t, o, "p", "t.json")
	// Larger than the ranges together, or ServeContent ignores them.
	frame := `{"a":{"bytes":1,"pad":"` + strings.Repeat("x", 10000) + `"}}`
	write(t, b, "t.json", frame)
	ranges := "bytes=" + strings.TrimSuffix(strings.Repeat("0-0,", 1000), ",")
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/stats/t.json", nil)
	req.Header.Set("Range", ranges)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(bufio.NewReader(resp.Body))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || string(body) != frame || mt != "application/json" {
		t.Fatalf("a request of 1000 ranges: %s, %s, %d bytes; want 200 application/json with the frame whole", resp.Status, mt, len(body))
	}
}
