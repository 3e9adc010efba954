// Command moqstats-demo is a simulated MoQ relay you can watch. It counts
// its traffic with moqstats, publishes the stats broadcast over HTTP and
// over moq-lite (WebSocket and WebTransport), and serves a live dashboard
// computed from those frames, Prometheus metrics, and the Go runtime's
// profiles:
//
//	cd cmd/moqstats-demo && go run .   # or make demo, from the repository
//
// It runs until Ctrl-C (or -duration), printing one status line per tick.
//
// # Endpoints
//
// On http://127.0.0.1:8080 by default (-listen):
//
//	/               the dashboard: one page, its script and style sheet
//	                embedded, no build step, no request beyond this server
//	/stats/         the stats broadcast (package httpstats): the index,
//	                /stats/<track> the latest frame, or every frame as
//	                Server-Sent Events with Accept: text/event-stream
//	/metrics        Prometheus metrics (package promstats), with the Go
//	                runtime's and the process's
//	/debug/pprof/   the runtime profiles (net/http/pprof), on the demo's own
//	                mux: go tool pprof http://127.0.0.1:8080/debug/pprof/profile
//	/moq            the stats broadcast over moq-lite (package moqlite) on
//	                WebSocket: ws://127.0.0.1:8080/moq
//	/certificate.sha256
//	                the WebTransport certificate's SHA-256, in hex
//
// and on UDP, the same port: https://127.0.0.1:8080/moq, moq-lite over
// WebTransport on HTTP/3, with a self-signed ECDSA P-256 certificate made
// at start and valid for 14 days, the longest browsers accept by hash
// (serverCertificateHashes). @moq/lite, given http://127.0.0.1:8080/moq,
// fetches the hash and connects to the https URL itself.
//
// # Security
//
// The stats name customers' broadcasts and auth roots, and nothing here
// asks who is asking, profiles included. The demo listens on loopback by
// default, and warns when -listen reaches beyond this machine. A browser
// page may open a moq-lite session (and read the certificate hash across
// origins) only when it is served by this machine: its Origin is
// localhost or a loopback IP literal, on any port; other pages get 403
// (WebSocket) or a refused CONNECT (WebTransport), so a site a visitor
// opens cannot read the stats through the visitor's browser, even by
// rebinding its name to 127.0.0.1. Clients that send no Origin (not
// browsers) are served.
//
// # Flags
//
//	-listen      address to serve on, TCP and UDP (127.0.0.1:8080)
//	-duration    stop after this long; 0, the default, runs until Ctrl-C
//	-interval    the stats tick and status line (1s)
//	-node        node name; the stats broadcast is .stats/node/<node> (demo/1)
//	-broadcasts  simulated broadcasts (4)
//	-viewers     most sessions connected at once, watching or not (40)
//	-seed        random seed: the same seed gives the same traffic (1)
//
// # Traffic
//
// A few broadcasts under three customers (auth roots acme, globex,
// initech) are ingested from a cluster peer over one internal session:
// video at 1.2 to 6 Mbit/s, 30 frames a second, a keyframe starting a
// group every 2 s; audio at 128 kbit/s in 20 ms frames, a group a second.
// Viewers connect under the broadcast's customer and watch for 45 s on
// average; about every 30 s a burst brings a crowd to one broadcast; some
// sessions connect and watch nothing; viewers now and then switch to
// another broadcast of the same customer. A viewer that joins is sent the
// current groups from their start, as a relay serves the latest group.
// Time advances in 20 ms steps drawn from the seed, so a seed gives the
// same traffic at any speed.
//
// # Wiring
//
// One moqstats.Stats, with compressed tracks, publishes through
// consumer.NewOrigin (which feeds a consumer.Aggregator) to a fanout of
// an in-memory origin, standing in for the relay's own, an
// httpstats.Origin mounted at /stats/, and a moqlite.Server, whose
// WebSocket handler is mounted at /moq and whose WebTransport server
// runs on the UDP port. The Aggregator feeds /metrics through a
// promstats.Collector and the status line; the dashboard computes its
// numbers in the browser from the Server-Sent Events of the tracks.
//
// # Terminal
//
// One line per tick, half a tick after the stats pass, from the
// Aggregator:
//
//	4 broadcasts | viewers 20: acme/live/backstage=4 acme/live/main=11 globex/news/24x7=3 initech/town-hall=2 | egress 77.6 Mbit/s | ingress 12.9 Mbit/s | sessions 21: acme=16 globex=3 initech=2
//
// Each broadcast's viewers are its own: broadcasts - broadcasts_closed on
// its egress tracks. Egress and ingress are byte rates over the last
// frames; sessions are the customers' sessions connected now, per root.
//
// # Stopping
//
// Ctrl-C or SIGTERM stops the traffic (every viewer leaves), closes the
// Stats, whose final pass writes the closing counts and ends the event
// streams and moq-lite subscriptions with them (a subscriber gets a
// second to take them), prints a last status line and a summary of lifetime
// totals, and shuts the server down, giving requests in flight a second;
// the process then exits 0. A second Ctrl-C ends the process at once.
// make demo builds the binary and runs it as a job of its own on the
// terminal, so that Ctrl-C reaches the demo and not make, which exits 0
// with it (go run would exit 1 when interrupted).
//
// # Tests
//
// Besides unit tests of the traffic and the status line, the tests drive
// the dashboard in headless Chromium (Debian's chromium package,
// .ci/install-chromium) and check what it shows against the frames it was
// sent; load a page in Chromium that subscribes with @moq/lite 0.2.2
// (moqlite/interop/node_modules, .ci/install-interop) over WebTransport
// and check every frame it received against the frames written; run the
// README's Node snippet against /moq; and run a real Prometheus server
// (.ci/install-prometheus) against /metrics. Each skips when its program
// or modules are missing, unless CI is set.
// MOQSTATS_SCREENSHOT=docs/dashboard.png also saves the dashboard's
// screenshot there.
package main
