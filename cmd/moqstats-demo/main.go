package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var o options
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve the dashboard, stats, metrics, profiles and moq-lite on (TCP, and UDP on the same port for WebTransport); keep it on loopback: there is no authentication")
	duration := flag.Duration("duration", 0, "stop after this long; 0 runs until Ctrl-C")
	flag.DurationVar(&o.interval, "interval", time.Second, "stats tick, and status line")
	flag.StringVar(&o.node, "node", "demo/1", "node name: the stats broadcast is .stats/node/<node>")
	flag.IntVar(&o.broadcasts, "broadcasts", 4, "number of simulated broadcasts")
	flag.IntVar(&o.viewers, "viewers", 40, "most sessions connected at once, watching or not")
	flag.Uint64Var(&o.seed, "seed", 1, "random seed: the same seed gives the same traffic")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "moqstats-demo: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "moqstats-demo:", err)
		os.Exit(2)
	}

	// The first Ctrl-C (or SIGTERM) stops the demo cleanly; stop restores
	// the default handling, so a second one ends it at once.
	signalled, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-signalled.Done()
		stop()
	}()
	ctx := signalled
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	ln, pc, err := listenBoth(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "moqstats-demo:", err)
		os.Exit(1)
	}
	if err := run(ctx, o, ln, pc, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "moqstats-demo:", err)
		os.Exit(1)
	}
}
