package bench

import "sync/atomic"

// The reference design translated literally: per (broadcast, role, tier)
// a struct of nine atomics shared by every guard, one atomic add per bump.

// SeedCounters mirrors the reference's Counters.
type SeedCounters struct {
	Announced, AnnouncedClosed         atomic.Uint64
	Subscriptions, SubscriptionsClosed atomic.Uint64
	Broadcasts, BroadcastsClosed       atomic.Uint64
	Bytes, Frames, Groups              atomic.Uint64
}

// SeedEntry mirrors the reference's BroadcastEntry.
type SeedEntry struct {
	Publisher, Subscriber [2]SeedCounters
}

// SeedTrack mirrors the reference's PublisherTrack: an optional entry and
// a tier.
type SeedTrack struct {
	Entry *SeedEntry
	Tier  int
}

// NewSeedTrack opens a publisher track on e, as the reference does.
func NewSeedTrack(e *SeedEntry, tier int) *SeedTrack {
	e.Publisher[tier].Subscriptions.Add(1)
	return &SeedTrack{Entry: e, Tier: tier}
}

// Bytes bumps bytes by n.
func (t *SeedTrack) Bytes(n uint64) {
	if t.Entry != nil {
		t.Entry.Publisher[t.Tier].Bytes.Add(n)
	}
}

// Frame bumps frames once.
func (t *SeedTrack) Frame() {
	if t.Entry != nil {
		t.Entry.Publisher[t.Tier].Frames.Add(1)
	}
}

// Close bumps subscriptions_closed.
func (t *SeedTrack) Close() {
	if t.Entry != nil {
		t.Entry.Publisher[t.Tier].SubscriptionsClosed.Add(1)
	}
}
