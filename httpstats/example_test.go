package httpstats_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/moqstats/moqstats/httpstats"
)

// A relay mounts the Origin under /stats/; a GET lists the broadcast and
// another reads a track's latest frame.
func Example() {
	origin, err := httpstats.New(httpstats.Options{})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/stats/", http.StripPrefix("/stats", origin))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// moqstats.New does this with its Config.Origin.
	bc, err := origin.Publish(".stats/node/sjc/1", []string{"publisher.json", "internal/publisher.json"})
	if err != nil {
		panic(err)
	}
	defer bc.Close()
	_ = bc.WriteFrame("internal/publisher.json", []byte(`{"acme/live":{"bytes":42}}`))

	for _, path := range []string{"/stats/", "/stats/internal/publisher.json", "/stats/publisher.json"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s: %d %s\n", path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	// Output:
	// /stats/: 200 {"path":".stats/node/sjc/1","tracks":["publisher.json","internal/publisher.json"]}
	// /stats/internal/publisher.json: 200 {"acme/live":{"bytes":42}}
	// /stats/publisher.json: 204
}

// A client asking for text/event-stream gets every frame as a Server-Sent
// Event, then an end event when the broadcast closes. Group numbers start
// from the clock, so this example prints them as G.
func Example_stream() {
	origin, err := httpstats.New(httpstats.Options{})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/stats", origin))
	defer srv.Close()
	defer origin.Shutdown()

	bc, err := origin.Publish(".stats/node", []string{"publisher.json"})
	if err != nil {
		panic(err)
	}
	_ = bc.WriteFrame("publisher.json", []byte(`{"v":1}`))

	req, _ := http.NewRequest("GET", srv.URL+"/stats/publisher.json", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	events := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break // the end of the response, after the end event
		}
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			_, frame, _ := strings.Cut(id, ".")
			line = "id: G." + frame
		}
		fmt.Print(line)
		if strings.HasPrefix(line, "data: ") {
			events++
			switch events {
			case 1:
				_ = bc.WriteFrame("publisher.json", []byte(`{"v":2}`))
			case 2:
				_ = bc.Close()
			}
		}
	}
	// Output:
	// retry: 3000
	//
	// id: G.0
	// data: {"v":1}
	//
	// id: G.0
	// data: {"v":2}
	//
	// event: end
	// data: closed
}
