package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// The environment that makes this test binary a subscriber process for
// BenchmarkMoQSubscriberMemory instead of running tests.
const (
	envMoQClientURL   = "MOQBENCH_CLIENT_URL"
	envMoQClientPath  = "MOQBENCH_CLIENT_PATH"
	envMoQClientTrack = "MOQBENCH_CLIENT_TRACKS"
	envMoQClientN     = "MOQBENCH_CLIENT_SUBSCRIBERS"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(envMoQClientURL); url != "" {
		os.Exit(moqClientProcess(url))
	}
	if url := os.Getenv(envFollowURL); url != "" {
		os.Exit(followProcess(url))
	}
	os.Exit(m.Run())
}

// BenchmarkMoQSubscriberMemory is what one subscriber, a WebSocket session
// subscribed to all twelve tracks, costs each side once it has received
// the latest group of every track: live heap bytes (after runtime.GC) and
// goroutines. The subscribers run in a child process (this test binary,
// started again), so the server's numbers hold nothing of the clients'
// and the other way round. The server side includes what the idle track
// positions hold; the frames themselves are the track's, shared by every
// subscriber, and are in neither number.
func BenchmarkMoQSubscriberMemory(b *testing.B) {
	n := 200
	if testing.Short() {
		n = 10
	}
	var srvHeap, srvG, cliHeap, cliG float64
	for range b.N {
		rig := newMoQRig(b, moqKeys())
		for range 2 {
			rig.step()
			if err := rig.main.Flush(); err != nil {
				b.Fatal(err)
			}
		}
		heap0, g0 := heapInUse(), runtime.NumGoroutine()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			envMoQClientURL+"="+rig.clients.url,
			envMoQClientPath+"="+rig.main.Path(),
			envMoQClientTrack+"="+strings.Join(rig.clients.tracks, ","),
			envMoQClientN+"="+strconv.Itoa(n))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			b.Fatalf("subscriber process: %v", err)
		}
		var heap, goroutines float64
		if _, err := fmt.Sscanf(line, "moqclients heap=%g goroutines=%g", &heap, &goroutines); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			b.Fatalf("subscriber process said %q: %v", line, err)
		}
		cliHeap, cliG = heap/float64(n), goroutines/float64(n)
		srvHeap = float64(int64(heapInUse())-int64(heap0)) / float64(n)
		srvG = float64(runtime.NumGoroutine()-g0) / float64(n)
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Fatalf("subscriber process: %v", err)
		}
		rig.close()
	}
	b.ReportMetric(srvHeap, "srv-B/sub")
	b.ReportMetric(srvG, "srv-goroutines/sub")
	b.ReportMetric(cliHeap, "cli-B/sub")
	b.ReportMetric(cliG, "cli-goroutines/sub")
	b.ReportMetric(0, "ns/op")
}

// moqClientProcess connects the subscribers the environment asks for,
// waits until each has read a frame on every track, prints what they hold
// (heap bytes and goroutines, over what the process held before) and
// stays connected until stdin closes. It returns the exit code.
func moqClientProcess(url string) int {
	n, err := strconv.Atoi(os.Getenv(envMoQClientN))
	if err != nil {
		fmt.Fprintln(os.Stderr, "subscriber process:", err)
		return 2
	}
	c := newMoQClients(url, os.Getenv(envMoQClientPath), strings.Split(os.Getenv(envMoQClientTrack), ","))
	heap0, g0 := heapInUse(), runtime.NumGoroutine()
	if err := c.subscribe(n); err != nil {
		fmt.Fprintln(os.Stderr, "subscriber process:", err)
		return 1
	}
	// A mark is at least 1 once a subscription has read a frame.
	first := make([]uint64, len(c.tracks))
	for i := range first {
		first[i] = 1
	}
	if err := c.reach(first, moqDrainTimeout); err != nil {
		fmt.Fprintln(os.Stderr, "subscriber process:", err)
		return 1
	}
	fmt.Printf("moqclients heap=%d goroutines=%d\n", int64(heapInUse())-int64(heap0), runtime.NumGoroutine()-g0)
	io.Copy(io.Discard, os.Stdin)
	c.close()
	return 0
}
