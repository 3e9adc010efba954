package moqlite

// HeldBytes reports the bytes of frames in groups older than the latest
// that a track keeps reachable: window from its own window (oldest up to
// latest), and worst the most that one subscription holds beyond that
// window from its position (the group it is in, the one it abandoned, and
// what they link to). A writer also holds, in its own variables, the group
// it is writing, which is its position or one it has just left.
func HeldBytes(b *Broadcast, name string) (window, worst int) {
	t := b.tracks[name]
	t.mu.Lock()
	defer t.mu.Unlock()
	walk := func(g *group, seen map[*group]bool) (n int) {
		for ; g != nil && !seen[g]; g = g.next {
			seen[g] = true
			if g != t.latest {
				n += g.size
			}
		}
		return n
	}
	inWindow := map[*group]bool{}
	window = walk(t.oldest, inWindow)
	for _, s := range t.subs {
		seen := map[*group]bool{}
		for g := range inWindow {
			seen[g] = true
		}
		worst = max(worst, walk(s.cur, seen)+walk(s.abandoned, seen))
	}
	return window, worst
}
