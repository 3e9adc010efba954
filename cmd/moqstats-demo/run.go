package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/quic-go/quic-go"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/consumer"
	"github.com/moqstats/moqstats/fanout"
	"github.com/moqstats/moqstats/httpstats"
	"github.com/moqstats/moqstats/memorigin"
	"github.com/moqstats/moqstats/moqlite"
	"github.com/moqstats/moqstats/promstats"
)

// options are the demo's settings: the flags, and hooks for tests.
type options struct {
	interval   time.Duration // stats tick, and status line
	node       string
	broadcasts int
	viewers    int // most sessions connected at once
	seed       uint64
	modules    string // node_modules holding @moq/lite, for the dashboard's moq-lite source; "" for none

	// Tests only.
	catalog      []broadcastSpec // replaces specs(broadcasts) when set
	record       moqstats.Origin // one more member of the fanout, the first
	moqAuthorize func(moqlite.ConnInfo, moqlite.Request) error
	onStatus     func(v *consumer.View, line string)
	trafficFor   time.Duration // > 0: traffic stops after it, serving goes on
	trafficHold  bool          // with trafficFor: the sessions stay open, their counts still, until the demo stops
	trafficDone  func(ledger)
}

func (o options) check() error {
	switch {
	case o.interval <= 0:
		return fmt.Errorf("-interval must be positive, not %v", o.interval)
	case o.broadcasts < 1 && o.catalog == nil:
		return fmt.Errorf("-broadcasts must be at least 1, not %d", o.broadcasts)
	case o.viewers < 1:
		return fmt.Errorf("-viewers must be at least 1, not %d", o.viewers)
	}
	return nil
}

// Shutdown bounds: how long the event streams get to deliver their end
// events after the stats close, and how long requests in flight (a CPU
// profile, say) get before their connections are closed.
const (
	streamDrain   = time.Second
	shutdownGrace = time.Second
)

// run serves the demo on ln (HTTP, and moq-lite over WebSocket) and pc
// (moq-lite over WebTransport), and simulates the relay until ctx is
// done, printing a status line per interval to w. Then it stops the
// traffic, closes the stats (the final pass writes the closing counts,
// and the event streams and moq-lite subscriptions end with them), prints
// the last status and a summary, and shuts the servers down. ln and pc
// are closed when run returns.
func run(ctx context.Context, o options, ln net.Listener, pc net.PacketConn, w io.Writer) error {
	closeAll := func(err error) error {
		return errors.Join(err, ln.Close(), pc.Close())
	}
	if err := o.check(); err != nil {
		return closeAll(err)
	}
	start := time.Now()
	out := &printer{w: w, start: start}

	// Every frame the Stats writes goes to the relay's own origin (here
	// the in-memory one, where a relay announces its stats to peers), to
	// HTTP, to moq-lite, and into the Aggregator behind /metrics and the
	// status line.
	agg, err := consumer.New(consumer.Config{StaleAfter: 3 * o.interval, Retention: moqstats.DefaultRetention})
	if err != nil {
		return closeAll(err)
	}
	httpOrigin, err := httpstats.New(httpstats.Options{})
	if err != nil {
		return closeAll(err)
	}
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	// A subscriber gets streamDrain to take the final frames, as the
	// event streams do; the subscribe stream ends moqEndLinger after the
	// last group's (on loopback, ample for the group to arrive first),
	// well within it, so @moq/lite sees the end before Shutdown closes
	// the session.
	moq, err := newMoqServer(moqlite.ServerConfig{CloseTimeout: streamDrain, EndLinger: moqEndLinger, Authorize: o.moqAuthorize}, host)
	if err != nil {
		return closeAll(err)
	}
	mods, err := loadModules(o.modules)
	if err != nil {
		return closeAll(err)
	}
	late := lateSubscribers{origin: moq.srv, report: func(err error) { out.line("moq-lite: %v", err) }}
	members := []moqstats.Origin{memorigin.New(), httpOrigin, late}
	if o.record != nil {
		// First: the fanout writes its members in order, so a frame is
		// recorded before any client can receive it.
		members = append([]moqstats.Origin{o.record}, members...)
	}
	stats, err := moqstats.New(moqstats.Config{
		Origin:     consumer.NewOrigin(fanout.New(members...), agg, consumer.OriginOptions{}),
		Node:       o.node,
		Interval:   o.interval,
		Compressed: true,
	})
	if err != nil {
		return closeAll(err)
	}
	collector, err := promstats.New(promstats.Config{Aggregator: agg})
	if err != nil {
		return closeAll(errors.Join(err, stats.Close()))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// No WriteTimeout: it would cut every stream (httpstats sets a
	// deadline per write).
	srv := &http.Server{Handler: newMux(httpOrigin, reg, moq, mods), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	srv.RegisterOnShutdown(httpOrigin.Shutdown)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var serveErr, wtErr error
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("serve: %w", err)
			cancel()
		}
	}()
	wtServed := make(chan struct{})
	go func() {
		defer close(wtServed)
		if err := moq.wt.Serve(pc); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, quic.ErrServerClosed) && ctx.Err() == nil {
			wtErr = fmt.Errorf("serve WebTransport: %w", err)
			cancel()
		}
	}()

	bs := o.catalog
	if bs == nil {
		bs = specs(o.broadcasts)
	}
	addr := ln.Addr().String()
	base := "http://" + addr
	out.line("moqstats-demo: a simulated relay with %d broadcasts and up to %d viewers, tick %v", len(bs), o.viewers, o.interval)
	if mods != nil {
		out.line("dashboard  %s/ (from Server-Sent Events; from moq-lite over WebTransport: %s/?source=moq)", base, base)
	} else {
		out.line("dashboard  %s/ (its moq-lite source is off: no @moq/lite; bash .ci/install-interop installs it)", base)
	}
	out.line("stats      %s/stats/ (broadcast %s)", base, stats.Path())
	out.line("moq-lite   ws://%s%s (WebSocket), https://%s%s (WebTransport; HTTP/3 on UDP)", addr, moqPath, addr, moqPath)
	out.line("cert hash  %s/certificate.sha256 (self-signed, for serverCertificateHashes)", base)
	out.line("metrics    %s/metrics", base)
	out.line("pprof      %s/debug/pprof/", base)
	if !isLoopback(ln.Addr()) {
		out.line("warning: serving beyond this machine; the stats name customers and the demo has no authentication")
	}
	out.line("Ctrl-C stops")

	var status sync.WaitGroup
	stopStatus := make(chan struct{})
	printStatus := func(now time.Time) {
		v := agg.View(now)
		line := statusLine(v)
		out.line("%s", line)
		if o.onStatus != nil {
			o.onStatus(v, line)
		}
	}
	status.Go(func() {
		// Half an interval after the passes, so each line shows the
		// pass before it rather than racing the next one.
		select {
		case <-stopStatus:
			return
		case <-time.After(o.interval / 2):
		}
		t := time.NewTicker(o.interval)
		defer t.Stop()
		for {
			select {
			case <-stopStatus:
				return
			case now := <-t.C:
				printStatus(now)
			}
		}
	})

	s := newSim(stats, bs, o.viewers, o.seed)
	simCtx := ctx
	if o.trafficFor > 0 {
		var stop context.CancelFunc
		simCtx, stop = context.WithTimeout(ctx, o.trafficFor)
		defer stop()
	}
	s.run(simCtx)
	if !o.trafficHold {
		s.close()
	}
	if o.trafficDone != nil {
		o.trafficDone(s.ledger())
	}
	<-ctx.Done()
	if o.trafficHold {
		s.close()
	}

	close(stopStatus)
	status.Wait()
	closeErr := stats.Close()
	printStatus(time.Now())
	out.line("%s", summaryLine(time.Since(start), agg.View(time.Now())))

	// Close queued each stream's last frames and its end event; give the
	// handlers a moment to write them before Shutdown ends the streams.
	for deadline := time.Now().Add(streamDrain); httpOrigin.Streams() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	grace, done := context.WithTimeout(context.Background(), shutdownGrace)
	defer done()
	// The moq-lite sessions first: WebSocket ones live on hijacked
	// connections, which the HTTP server's Shutdown does not see.
	moqErr := moq.srv.Shutdown(grace)
	moq.wt.Close()
	if err := srv.Shutdown(grace); err != nil {
		srv.Close()
	}
	<-served
	<-wtServed
	pc.Close()
	if moqErr != nil {
		// Sessions still subscribed at the deadline were cut off; that
		// is the peers' doing, not a failure of the demo.
		out.line("moq-lite: %v", moqErr)
	}
	return errors.Join(closeErr, serveErr, wtErr)
}

// newMux routes the demo's endpoints: the dashboard at /, the stats
// tracks under /stats/, Prometheus metrics at /metrics and the runtime
// profiles under /debug/pprof/, on a mux of its own rather than
// http.DefaultServeMux, which anything imported may register on.
func newMux(stats *httpstats.Origin, reg *prometheus.Registry, moq *moqServer, mods *jsModules) *http.ServeMux {
	mux := http.NewServeMux()
	handleDashboard(mux, mods)
	mux.Handle(moqPath, moq.webSocket())
	mux.Handle("GET /certificate.sha256", moq.certificate())
	mux.Handle("/stats/", http.StripPrefix("/stats", stats))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// isLoopback reports whether addr only accepts connections from this
// machine.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
