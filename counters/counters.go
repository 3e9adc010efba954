package counters

import (
	"math/bits"

	"github.com/moqstats/moqstats/shard"
)

// Indexes of the counters of a slot: the nine frames carry by default, in
// wire order, then the three newer ones moq-net writes today.
const (
	Announced = iota
	AnnouncedClosed
	Broadcasts
	BroadcastsClosed
	Subscriptions
	SubscriptionsClosed
	Bytes
	Frames
	Groups
	AnnouncedBytes // the broadcast name's length, at announce and at unannounce
	Fetches        // one-shot fetches requested
	Datagrams      // groups sent as datagrams (each also a group, a frame and bytes)

	numCounters // the twelve a frame may carry

	// Pins counts the guards open on the slot: each adds 1 when it opens
	// and subtracts 1 (adds 2^64-1) when it closes, so only the sum over
	// all cells means anything. It decides when an entry may be
	// collected; frames never carry it.
	Pins = numCounters
)

// The slot's counters and pins must fit a shard.Set exactly.
var _ [shard.Width - numCounters - 1]struct{}
var _ [numCounters + 1 - shard.Width]struct{}

// closedMask selects the closed counters, which Read sums first; openMask
// selects the other counters of the default nine, and newerMask the three
// newer ones.
const (
	closedMask uint16 = 1<<AnnouncedClosed | 1<<BroadcastsClosed | 1<<SubscriptionsClosed
	newerMask  uint16 = 1<<AnnouncedBytes | 1<<Fetches | 1<<Datagrams
	openMask   uint16 = (1<<numCounters - 1) &^ closedMask &^ newerMask
)

// Unpin is the increment that undoes a pin: Add(Pins, Unpin).
const Unpin = ^uint64(0)

// Counters are the nine counters of one (broadcast, role, tier) slot. The
// zero value is ready to use; Counters must not be copied after first use.
// Bumps and Read are safe for concurrent use.
type Counters struct{ set shard.Set }

// Add adds n to counter i for a one-off bump: a guard opening or closing.
// Hot callers bump through an attached lane instead.
func (c *Counters) Add(i int, n uint64) { c.set.Add(i, n) }

// Attach attaches lane l to these counters and returns its cell; see
// shard.Set.Attach. A lane counts Subscriptions as it opens and
// SubscriptionsClosed as it closes (a fetch's lane counts neither), which
// is what tells the set whether a lane holds its base cell.
func (c *Counters) Attach(l *shard.Lane) *shard.Cell {
	return c.set.Attach(l, Subscriptions, SubscriptionsClosed)
}

// Detach detaches l and returns the cell it was attached to (nil if it
// was not), for the guard's closing bump.
func (c *Counters) Detach(l *shard.Lane) *shard.Cell { return c.set.Detach(l) }

// Repin moves l to the cell of the P it runs on now.
func (c *Counters) Repin(l *shard.Lane) { c.set.Repin(l) }

// Continue adds from's counts to c: for counters that continue those of a
// collected slot. Open counters are added before closed ones, so a
// concurrent Read, which sums closed counters first, still never sees
// closed > open.
func (c *Counters) Continue(from Snapshot) {
	v := from.Array()
	addMasked(&c.set, &v, openMask|newerMask)
	addMasked(&c.set, &v, closedMask)
}

// addMasked adds v[i] to counter i of s for every bit i set in mask.
func addMasked(s *shard.Set, v *[shard.Width]uint64, mask uint16) {
	for m := mask; m != 0; m &= m - 1 {
		if i := bits.TrailingZeros16(m); v[i] != 0 {
			s.Add(i, v[i])
		}
	}
}

// Pinned reports whether any guard pins the slot: whether the pin
// counters sum to nonzero over all cells.
func (c *Counters) Pinned() bool { return pinned(&c.set, Pins) }

func pinned(s *shard.Set, i int) bool { return s.Total(i) != 0 }

// Shards reports the number of per-P cells allocated beyond the base cell
// (0 for counters only one goroutine bumps at a time).
func (c *Counters) Shards() int { return c.set.Cells() }

// Read returns the counters' current values: the default nine, with the
// newer three left zero. Closed counters are summed before open ones, so
// the result never shows closed > open: see "Snapshot atomicity" in the
// package doc.
func (c *Counters) Read() Snapshot { return c.read(openMask) }

// ReadAll is Read with the newer three counters too.
func (c *Counters) ReadAll() Snapshot { return c.read(openMask | newerMask) }

func (c *Counters) read(open uint16) Snapshot {
	var v [shard.Width]uint64
	c.set.Sum(&v, closedMask) // first: the closed counters
	c.set.Sum(&v, open)       // second: the open and payload counters
	return Snapshot{
		Announced:           v[Announced],
		AnnouncedClosed:     v[AnnouncedClosed],
		Broadcasts:          v[Broadcasts],
		BroadcastsClosed:    v[BroadcastsClosed],
		Subscriptions:       v[Subscriptions],
		SubscriptionsClosed: v[SubscriptionsClosed],
		Bytes:               v[Bytes],
		Frames:              v[Frames],
		Groups:              v[Groups],
		AnnouncedBytes:      v[AnnouncedBytes],
		Fetches:             v[Fetches],
		Datagrams:           v[Datagrams],
	}
}

// Snapshot is one read of a slot's Counters: the value a per-broadcast
// frame carries for one broadcast. The zero Snapshot is what a slot that
// never saw a bump reads.
type Snapshot struct {
	Announced           uint64
	AnnouncedClosed     uint64
	Broadcasts          uint64
	BroadcastsClosed    uint64
	Subscriptions       uint64
	SubscriptionsClosed uint64
	Bytes               uint64
	Frames              uint64
	Groups              uint64
	// The newer three, zero unless read with ReadAll.
	AnnouncedBytes uint64
	Fetches        uint64
	Datagrams      uint64
}

// Array returns s's counters indexed as the counters of a slot (Announced,
// AnnouncedClosed, ...), Pins left zero.
func (s *Snapshot) Array() [shard.Width]uint64 {
	return [shard.Width]uint64{
		Announced:           s.Announced,
		AnnouncedClosed:     s.AnnouncedClosed,
		Broadcasts:          s.Broadcasts,
		BroadcastsClosed:    s.BroadcastsClosed,
		Subscriptions:       s.Subscriptions,
		SubscriptionsClosed: s.SubscriptionsClosed,
		Bytes:               s.Bytes,
		Frames:              s.Frames,
		Groups:              s.Groups,
		AnnouncedBytes:      s.AnnouncedBytes,
		Fetches:             s.Fetches,
		Datagrams:           s.Datagrams,
	}
}

// Live reports whether any open counter exceeds its closed counterpart: a
// guard is open, so traffic may flow at any moment.
func (s Snapshot) Live() bool {
	return s.Announced != s.AnnouncedClosed ||
		s.Subscriptions != s.SubscriptionsClosed ||
		s.Broadcasts != s.BroadcastsClosed
}

// Indexes of a session gauge's counters, and its pin count (see Pins).
const (
	Sessions = iota
	SessionsClosed
	SessionPins
)

// Gauge counts the sessions connected under one auth root on one tier:
// Sessions on connect, SessionsClosed on disconnect. The zero value is
// ready to use; a Gauge must not be copied after first use.
type Gauge struct{ set shard.Set }

// Add adds n to counter i (Sessions, SessionsClosed or SessionPins).
func (g *Gauge) Add(i int, n uint64) { g.set.Add(i, n) }

// Continue adds from's counts to g, Sessions before SessionsClosed: see
// Counters.Continue.
func (g *Gauge) Continue(from SessionSnapshot) {
	v := [shard.Width]uint64{Sessions: from.Sessions, SessionsClosed: from.SessionsClosed}
	addMasked(&g.set, &v, 1<<Sessions)
	addMasked(&g.set, &v, 1<<SessionsClosed)
}

// Pinned reports whether any session guard pins the gauge.
func (g *Gauge) Pinned() bool { return pinned(&g.set, SessionPins) }

// Read returns the gauge's current values, SessionsClosed summed before
// Sessions for the reason given in the package doc.
func (g *Gauge) Read() SessionSnapshot {
	var v [shard.Width]uint64
	g.set.Sum(&v, 1<<SessionsClosed) // first: the closed counter
	g.set.Sum(&v, 1<<Sessions)       // second: the open counter
	return SessionSnapshot{Sessions: v[Sessions], SessionsClosed: v[SessionsClosed]}
}

// SessionSnapshot is one read of a Gauge: the value a session frame
// carries for one root.
type SessionSnapshot struct {
	Sessions       uint64
	SessionsClosed uint64
}

// Live reports whether a session is connected under the root.
func (s SessionSnapshot) Live() bool { return s.Sessions != s.SessionsClosed }
