package consumer

import (
	"errors"
	"strconv"
	"strings"

	"github.com/moqstats/moqstats/zframe"
)

// CompressedTrack rebuilds the values a compressed track (a ".json.z"
// sibling) carries, frame by frame: the value after each frame is what
// the plain track's frame of the same tick holds. Feed it every frame of
// the track in order with Apply, and read the value with Traffic or
// Presence. See "Compressed tracks" in the package doc.
//
// Frames come off the network: no input makes it panic, a frame it
// rejects changes nothing it has delivered, and the memory it uses is
// bounded by its Decoder's limits (one value of at most MaxEntries keys of
// at most MaxKeyLen bytes, one patch, one inflated frame of at most
// MaxFrameSize bytes and the 32 KiB DEFLATE window). The value's keys are
// copied out of the snapshots and patches, so no frame outlives its Apply;
// a group holds at most MaxGroupFrames frames. A CompressedTrack is owned by one goroutine.
type CompressedTrack struct {
	kind Kind
	dec  Decoder
	z    zframe.Decoder

	// The value as of frame (group, next-1), valid while ok: traffic for
	// a per-broadcast track, presence for a session track.
	traffic  TrafficFrame
	presence PresenceFrame

	// group is the newest group any frame named since the start or the
	// last Reset (valid if started); next is the index of the frame that
	// continues it; ok reports that every frame of it up to next-1 was
	// applied, so that frame can be; applied, that a frame of it was
	// (its values went out: the group cannot start over).
	group   uint64
	next    int
	started bool
	ok      bool
	applied bool
}

// NewCompressedTrack returns a CompressedTrack for a compressed track of
// kind (Publisher or Subscriber: TrafficFrame values; SessionsKind:
// PresenceFrame values), checking snapshots and patches with d's limits.
// A frame that inflates past d's MaxFrameSize is rejected before it is
// inflated further.
func NewCompressedTrack(kind Kind, d Decoder) *CompressedTrack {
	maxSize, _, _ := d.limits()
	return &CompressedTrack{kind: kind, dec: d, z: zframe.Decoder{MaxFrameSize: maxSize}}
}

// Apply applies one frame of the track: data, frame index of the group
// numbered group. Index 0 is a snapshot, which starts its group and
// replaces the value; any other index is a delta, a merge patch applied
// to the value the frames before it in its group built. Every error is a
// *FrameError placed at (group, index):
//
//   - a snapshot of a group older than the newest one seen, or of the
//     newest once a frame of it applied, or a delta at or before the last
//     frame applied, is ErrFrameOrder and changes nothing: transports
//     deliver groups in order, so it is a replay (a transport that
//     delivers the current group again from its start, after a reconnect,
//     say, sees the frames it already applied refused and the next ones
//     applied; a track that joined the group too late to apply any of it
//     takes it from its snapshot);
//   - a delta the frames before it in its group did not all precede (a
//     follower that joined mid-group, frames lost, or one of them
//     rejected) is ErrMissingSnapshot: the track waits for the next
//     group's snapshot, and every delta until then fails the same way;
//   - a delta at index MaxGroupFrames (of the Decoder) or beyond is
//     ErrGroupTooLong, and the track waits for the next group;
//   - a frame that does not inflate is ErrCompression, one that inflates
//     past MaxFrameSize ErrFrameTooLarge, and a snapshot or patch the
//     Decoder rejects fails as Decoder.Traffic (Presence) or
//     PatchTraffic (PatchPresence) would. The value stays as the last
//     frame applied left it, and the track waits for the next group.
//
// After an error the value is still the last one built, but no longer
// current: Current reports false until a frame applies.
func (c *CompressedTrack) Apply(group uint64, index int, data []byte) error {
	fail := func(kind error, detail string) error {
		return &FrameError{Kind: kind, Detail: detail, Group: group, Index: index, placed: true}
	}
	placed := func(err error) error {
		if fe, ok := err.(*FrameError); ok {
			fe.Group, fe.Index, fe.placed = group, index, true
		}
		return err
	}
	switch {
	case index < 0:
		return fail(ErrFrameOrder, "negative index")
	case index == 0 && c.started && (group < c.group || group == c.group && c.applied):
		return fail(ErrFrameOrder, "a snapshot of a group not after group "+strconv.FormatUint(c.group, 10)+", of which frames were applied")
	case index == 0:
		c.started, c.group, c.next, c.ok, c.applied = true, group, 1, false, false
		raw, err := c.z.Snapshot(data)
		if err != nil {
			return placed(inflateError(err))
		}
		if c.kind == SessionsKind {
			p, err := c.dec.Presence(raw)
			if err != nil {
				return placed(err)
			}
			c.presence = cloneKeys(p)
		} else {
			t, err := c.dec.Traffic(raw)
			if err != nil {
				return placed(err)
			}
			c.traffic = cloneKeys(t)
		}
		c.ok, c.applied = true, true
		return nil
	case c.started && (group < c.group || group == c.group && index < c.next):
		return fail(ErrFrameOrder, "at or before frame "+strconv.FormatUint(c.group, 10)+"."+strconv.Itoa(c.next-1))
	case index >= c.dec.groupLimit():
		// Producers start a new group well before this; a group without
		// end would make the track's value depend on ever more frames.
		if !c.started || group > c.group {
			c.started, c.group, c.applied = true, group, false
		}
		c.ok = false
		return fail(ErrGroupTooLong, "index "+strconv.Itoa(index)+", at most "+strconv.Itoa(c.dec.groupLimit())+" frames a group")
	case !c.ok || group != c.group || index != c.next:
		detail := "no snapshot of the group was applied"
		if c.started && group == c.group {
			if c.ok {
				detail = "frames " + strconv.Itoa(c.next) + " to " + strconv.Itoa(index-1) + " of the group are missing"
			} else {
				detail = "an earlier frame of the group was not applied"
			}
		}
		if !c.started || group > c.group {
			c.started, c.group, c.applied = true, group, false
		}
		c.ok = false
		return fail(ErrMissingSnapshot, detail)
	}
	c.ok = false // until this delta applies: a failed one breaks the group
	raw, err := c.z.Delta(data)
	if err != nil {
		return placed(inflateError(err))
	}
	if c.kind == SessionsKind {
		err = c.dec.PatchPresence(c.presence, raw)
	} else {
		err = c.dec.PatchTraffic(c.traffic, raw)
	}
	if err != nil {
		return placed(err)
	}
	c.next++
	c.ok = true
	return nil
}

// cloneKeys gives every key of f its own memory: a decoded frame's keys
// share the text of the whole frame, which the value, kept for a whole
// group, would otherwise hold. Assigning to a key already in a map stores
// the key given, so no entry is added and no second map is built.
func cloneKeys[M ~map[string]V, V any](f M) M {
	for k, v := range f {
		f[strings.Clone(k)] = v
	}
	return f
}

// inflateError turns a zframe error into a *FrameError.
func inflateError(err error) error {
	kind := ErrCompression
	if errors.Is(err, zframe.ErrFrameTooLarge) {
		kind = ErrFrameTooLarge
	}
	return &FrameError{Kind: kind, Detail: strings.TrimPrefix(err.Error(), "zframe: ")}
}

// Current reports whether the value is the one the last frame applied
// built, and where that frame was: false before the first snapshot and
// after a frame failed, until the next group's snapshot applies.
func (c *CompressedTrack) Current() (group uint64, index int, ok bool) {
	if !c.ok {
		return 0, 0, false
	}
	return c.group, c.next - 1, true
}

// Traffic returns the value of a per-broadcast track: the frame the plain
// track carries as of the last frame applied, nil before the first
// snapshot (and on a session track). It belongs to c: read it before the
// next Apply or Reset, and do not modify it (maps.Clone keeps a copy).
func (c *CompressedTrack) Traffic() TrafficFrame { return c.traffic }

// Presence returns the value of a session track, as Traffic does.
func (c *CompressedTrack) Presence() PresenceFrame { return c.presence }

// Reset forgets the track: its value, and the groups it saw. Call it when
// the track ends or a new broadcast replaces it, whose groups may be
// numbered from anywhere.
func (c *CompressedTrack) Reset() {
	*c = CompressedTrack{kind: c.kind, dec: c.dec, z: zframe.Decoder{MaxFrameSize: c.z.MaxFrameSize}}
}
