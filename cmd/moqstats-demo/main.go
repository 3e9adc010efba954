// Command moqstats-demo runs a simulated relay on the in-memory origin and
// prints every frame the stats broadcast writes: broadcasts are ingested
// from a cluster peer, viewers join and leave, bytes flow, and once per
// tick each track whose counts changed gets a new frame.
//
//	go run ./cmd/moqstats-demo -duration 10s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/memorigin"
)

type options struct {
	duration   time.Duration
	interval   time.Duration
	node       string
	broadcasts int
	viewers    int
	seed       uint64
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "how long to run")
	flag.DurationVar(&o.interval, "interval", time.Second, "stats tick")
	flag.StringVar(&o.node, "node", "demo/1", "node suffix of the stats path")
	flag.IntVar(&o.broadcasts, "broadcasts", 3, "number of simulated broadcasts")
	flag.IntVar(&o.viewers, "viewers", 6, "most viewers at once")
	flag.Uint64Var(&o.seed, "seed", 1, "random seed")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	if err := run(ctx, os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "moqstats-demo:", err)
		os.Exit(1)
	}
}

// run simulates until ctx is done, then closes the stats (its final pass
// prints the closing counts) and waits for the printers to drain.
func run(ctx context.Context, w io.Writer, o options) error {
	if o.broadcasts < 1 || o.viewers < 1 || o.interval <= 0 {
		return fmt.Errorf("need -broadcasts >= 1, -viewers >= 1 and -interval > 0")
	}
	origin := memorigin.New()
	stats, err := moqstats.New(moqstats.Config{Origin: origin, Node: o.node, Interval: o.interval})
	if err != nil {
		return err
	}
	start := time.Now()
	out := &printer{w: w, start: start}
	out.line("stats broadcast announced at %s, tick %v", stats.Path(), o.interval)

	var printers sync.WaitGroup
	for _, track := range moqstats.Tracks() {
		sub, err := origin.Subscribe(stats.Path(), track)
		if err != nil {
			return err
		}
		printers.Go(func() {
			for {
				frame, err := sub.Next(context.Background())
				if err != nil {
					return // io.EOF once the stats broadcast closes
				}
				out.line("%-24s %s", track, frame)
			}
		})
	}

	simulate(ctx, stats, o, out)
	err = stats.Close()
	printers.Wait()
	out.line("closed after %v", time.Since(start).Round(time.Millisecond))
	return err
}

// printer serializes lines from the track goroutines.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *printer) line(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%6.2fs] "+format+"\n", append([]any{time.Since(p.start).Seconds()}, args...)...)
}

// viewer is one downstream session watching one broadcast: its presence
// under an auth root, the broadcast announced to it, its subscription
// sentinel, and its two tracks.
type viewer struct {
	broadcast    int
	session      *moqstats.SessionGuard
	announce     *moqstats.BroadcastGuard
	sub          *moqstats.SubscriptionGuard
	video, audio *moqstats.TrackGuard
}

func (v *viewer) close() {
	v.video.Close()
	v.audio.Close()
	v.sub.Close()
	v.announce.Close()
	v.session.Close()
}

// simulate runs the relay: every 33 ms (30 fps) each broadcast's ingest
// track receives a frame from the cluster peer and forwards it to each of
// the broadcast's viewers; a group starts every 30 frames; viewers join
// and leave at random.
func simulate(ctx context.Context, stats *moqstats.Stats, o options, out *printer) {
	rng := rand.New(rand.NewPCG(o.seed, 42))
	ext, internal := stats.Tier(moqstats.External), stats.Tier(moqstats.Internal)
	roots := []string{"acme", "globex", "initech"}

	// The node ingests every broadcast from a cluster peer (internal tier,
	// subscriber role), over one peer session.
	peer := internal.Session("cluster")
	defer peer.Close()
	peerSubs := internal.SubscriberBroadcasts()
	paths := make([]string, o.broadcasts)
	ingest := make([]*moqstats.TrackGuard, o.broadcasts)
	for i := range paths {
		paths[i] = fmt.Sprintf("%s/live/%d", roots[i%len(roots)], i)
		bs := internal.Broadcast(paths[i])
		announce := bs.Subscriber()
		defer announce.Close()
		sub := peerSubs.Subscribe(paths[i])
		defer sub.Close()
		ingest[i] = announce.Track("video")
		defer ingest[i].Close()
	}

	var viewers []*viewer
	defer func() {
		for _, v := range viewers {
			v.close()
		}
	}()
	join := func() {
		b := rng.IntN(o.broadcasts)
		announce := ext.Broadcast(paths[b]).Publisher()
		v := &viewer{
			broadcast: b,
			session:   ext.Session(roots[rng.IntN(len(roots))]),
			announce:  announce,
			sub:       ext.PublisherBroadcasts().Subscribe(paths[b]),
			video:     announce.Track("video"),
			audio:     announce.Track("audio"),
		}
		viewers = append(viewers, v)
		out.line("viewer joins %s (%d watching)", paths[b], len(viewers))
	}
	leave := func() {
		i := rng.IntN(len(viewers))
		v := viewers[i]
		v.close()
		viewers = append(viewers[:i], viewers[i+1:]...)
		out.line("viewer leaves %s (%d watching)", paths[v.broadcast], len(viewers))
	}

	tick := time.NewTicker(33 * time.Millisecond)
	defer tick.Stop()
	for frame := 0; ; frame++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		switch r := rng.IntN(16); {
		case r == 0 && len(viewers) < o.viewers:
			join()
		case r == 1 && len(viewers) > 0:
			leave()
		}
		for b, in := range ingest {
			size := uint64(800 + rng.IntN(1200))
			if frame%30 == 0 {
				size *= 8 // keyframe
				in.Group()
			}
			in.Frame()
			in.Bytes(size)
			for _, v := range viewers {
				if v.broadcast != b {
					continue
				}
				if frame%30 == 0 {
					v.video.Group()
					v.audio.Group()
				}
				v.video.Frame()
				v.video.Bytes(size)
				v.audio.Frame()
				v.audio.Bytes(160)
			}
		}
	}
}
