package fanout_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/fanout"
	"github.com/moqstats/moqstats/httpstats"
	"github.com/moqstats/moqstats/memorigin"
)

// One Stats publishes to a relay's origin (here the in-memory one) and to
// HTTP at once.
func Example() {
	relayOrigin := memorigin.New()
	httpOrigin, err := httpstats.New(httpstats.Options{})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/stats", httpOrigin))
	defer srv.Close()

	stats, err := moqstats.New(moqstats.Config{
		Origin: fanout.New(relayOrigin, httpOrigin),
		Node:   "sjc/1",
	})
	if err != nil {
		panic(err)
	}
	defer stats.Close()

	session := stats.Tier(moqstats.External).Session("acme")
	defer session.Close()
	if err := stats.Flush(); err != nil {
		panic(err)
	}

	fromRelay, _ := relayOrigin.Latest(stats.Path(), moqstats.TrackSessions)
	resp, err := http.Get(srv.URL + "/stats/" + moqstats.TrackSessions)
	if err != nil {
		panic(err)
	}
	fromHTTP, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println("relay:", string(fromRelay))
	fmt.Println("http: ", string(fromHTTP))
	// Output:
	// relay: {"acme":{"sessions":1,"sessions_closed":0}}
	// http:  {"acme":{"sessions":1,"sessions_closed":0}}
}
