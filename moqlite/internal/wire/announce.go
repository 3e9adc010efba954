package wire

// AnnounceInterest is ANNOUNCE_INTEREST: the first message on an announce
// stream, asking for the broadcasts under Prefix.
type AnnounceInterest struct {
	Prefix     string
	ExcludeHop uint64 // lite-04
}

// AppendAnnounceInterest appends the body of ANNOUNCE_INTEREST.
func AppendAnnounceInterest(dst []byte, m AnnounceInterest, f Features) []byte {
	dst = appendString(dst, m.Prefix)
	if f.ExcludeHop {
		dst = AppendVarint(dst, m.ExcludeHop)
	}
	return dst
}

// ParseAnnounceInterest decodes the body of ANNOUNCE_INTEREST.
func ParseAnnounceInterest(b []byte, f Features) (AnnounceInterest, error) {
	d := decoder{b: b}
	m := AnnounceInterest{Prefix: d.string("ANNOUNCE_INTEREST prefix", MaxName)}
	if f.ExcludeHop {
		m.ExcludeHop = d.varint("ANNOUNCE_INTEREST exclude hop")
	}
	return m, d.finish("ANNOUNCE_INTEREST")
}

// Announce is ANNOUNCE: a broadcast under the interest's prefix became
// active or ended. Suffix is relative to the prefix.
type Announce struct {
	Active bool
	Suffix string
	// Hops is the hop count (lite-03, -04); HopIDs the hops themselves
	// (lite-04), len(HopIDs) == Hops when sent.
	Hops   uint64
	HopIDs []uint64
}

// AppendAnnounce appends the body of ANNOUNCE.
func AppendAnnounce(dst []byte, m Announce, f Features) []byte {
	dst = appendBool(dst, m.Active)
	dst = appendString(dst, m.Suffix)
	switch {
	case f.AnnounceHopIDs:
		dst = AppendVarint(dst, uint64(len(m.HopIDs)))
		for _, h := range m.HopIDs {
			dst = AppendVarint(dst, h)
		}
	case f.AnnounceHopCount:
		dst = AppendVarint(dst, m.Hops)
	}
	return dst
}

// ParseAnnounce decodes the body of ANNOUNCE.
func ParseAnnounce(b []byte, f Features) (Announce, error) {
	d := decoder{b: b}
	m := Announce{Active: d.bool("ANNOUNCE active"), Suffix: d.string("ANNOUNCE suffix", MaxName)}
	switch {
	case f.AnnounceHopIDs:
		n := d.count("ANNOUNCE hop count", MaxHops)
		m.Hops = uint64(n)
		m.HopIDs = make([]uint64, 0, n)
		for range n {
			m.HopIDs = append(m.HopIDs, d.varint("ANNOUNCE hop"))
		}
	case f.AnnounceHopCount:
		m.Hops = d.varint("ANNOUNCE hop count")
		if m.Hops > MaxHops {
			d.fail(violation("ANNOUNCE hop count %d past the cap of %d", m.Hops, MaxHops))
		}
	}
	return m, d.finish("ANNOUNCE")
}

// AnnounceInit is ANNOUNCE_INIT (lite-02): the suffixes active when the
// interest arrived.
type AnnounceInit struct{ Suffixes []string }

// AppendAnnounceInit appends the body of ANNOUNCE_INIT.
func AppendAnnounceInit(dst []byte, m AnnounceInit) []byte {
	dst = AppendVarint(dst, uint64(len(m.Suffixes)))
	for _, s := range m.Suffixes {
		dst = appendString(dst, s)
	}
	return dst
}

// ParseAnnounceInit decodes the body of ANNOUNCE_INIT; the message cap
// bounds the count, since each suffix takes at least a byte.
func ParseAnnounceInit(b []byte) (AnnounceInit, error) {
	d := decoder{b: b}
	n := d.count("ANNOUNCE_INIT count", len(b))
	m := AnnounceInit{Suffixes: make([]string, 0, n)}
	for range n {
		m.Suffixes = append(m.Suffixes, d.string("ANNOUNCE_INIT suffix", MaxName))
	}
	return m, d.finish("ANNOUNCE_INIT")
}
