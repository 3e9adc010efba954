// Package fanout publishes one broadcast on several origins at once, so
// one moqstats.Stats can publish to a relay's own origin and to HTTP (see
// package httpstats) together:
//
//	origin := fanout.New(relayOrigin, httpOrigin)
//	stats, err := moqstats.New(moqstats.Config{Origin: origin})
//
// # Members
//
// An Origin has a fixed list of members, named in errors by their index
// in New's arguments ("member 1"). Publish publishes on every member, in
// order; if any fails, the broadcasts that succeeded are closed again and
// Publish returns every failure, joined, so nothing stays half announced.
// WriteFrame, AppendFrame and Close go to every member in order: a
// failing member does not stop the others, and the failures are joined,
// each naming its member, so errors.Is sees each member's error.
//
// A frame a member rejected is reported even though other members took
// it. A Stats then writes it again on its next pass, so the members that
// took it see it twice: harmless for a track that keeps its latest frame.
// An appended delta is different: a writer whose AppendFrame failed
// should start a new group with WriteFrame rather than append the frame
// again, which members that took it would apply twice.
//
// # Appending
//
// Publish returns a *Broadcast, or an *AppendBroadcast, which adds
// AppendFrame, when every member's broadcast implements Appender. A writer
// probing for AppendFrame with a type assertion so finds it exactly when
// every member can take it.
//
// Everything is safe for concurrent use as far as the members are: the
// package adds no state of its own after Publish.
package fanout

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/moqstats/moqstats"
)

// Appender is moqstats.Appender: a broadcast whose tracks hold several
// frames per group.
type Appender = moqstats.Appender

var (
	_ moqstats.Origin    = (*Origin)(nil)
	_ moqstats.Broadcast = (*Broadcast)(nil)
	_ moqstats.Broadcast = (*AppendBroadcast)(nil)
	_ Appender           = (*AppendBroadcast)(nil)
)

// ErrNoMembers is returned by Publish on an Origin made with no members.
var ErrNoMembers = errors.New("fanout: no members")

// Origin is a moqstats.Origin that publishes on each of its members.
type Origin struct {
	members []moqstats.Origin // immutable
}

// New returns an Origin publishing on members, in this order. Members are
// checked by Publish: an empty list or a nil member is an error there,
// which a Stats reports from moqstats.New.
func New(members ...moqstats.Origin) *Origin {
	return &Origin{members: slices.Clone(members)}
}

// Publish publishes path with tracks on every member, each with its own
// copy of tracks. If every member succeeds it returns a *Broadcast, or an
// *AppendBroadcast when every member's broadcast implements Appender.
// Otherwise it closes the broadcasts that were published and returns the
// failures joined, each naming its member, with any error from those
// closes.
func (o *Origin) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	if len(o.members) == 0 {
		return nil, fmt.Errorf("%w: cannot publish %q", ErrNoMembers, path)
	}
	var errs []error
	for i, m := range o.members {
		if isNil(m) {
			errs = append(errs, fmt.Errorf("fanout: publish %q: member %d is nil", path, i))
		}
	}
	if errs != nil {
		return nil, errors.Join(errs...)
	}

	bcs := make([]moqstats.Broadcast, len(o.members))
	failed := false
	for i, m := range o.members {
		bc, err := m.Publish(path, slices.Clone(tracks))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("fanout: publish %q: member %d: %w", path, i, err))
			failed = true
		case isNil(bc):
			errs = append(errs, fmt.Errorf("fanout: publish %q: member %d returned a nil Broadcast", path, i))
			failed = true
		default:
			bcs[i] = bc
		}
	}
	if failed {
		for i, bc := range bcs {
			if bc == nil {
				continue
			}
			if err := bc.Close(); err != nil {
				errs = append(errs, fmt.Errorf("fanout: publish %q: member %d: closing again: %w", path, i, err))
			}
		}
		return nil, errors.Join(errs...)
	}

	b := Broadcast{members: bcs}
	for _, bc := range bcs {
		if _, ok := bc.(Appender); !ok {
			return &b, nil
		}
	}
	return &AppendBroadcast{b}, nil
}

// isNil reports whether v is nil or a nil pointer in an interface, which
// would panic when called.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// memberErr names member i in err.
func memberErr(i int, err error) error {
	return fmt.Errorf("fanout: member %d: %w", i, err)
}

// Broadcast is a broadcast published on every member of an Origin. It
// implements moqstats.Broadcast.
type Broadcast struct {
	members []moqstats.Broadcast // immutable
}

// WriteFrame writes frame to track on every member, in order, even after
// one fails, and returns the failures joined, each naming its member. The
// frame is passed to each member as given: members copy what they keep.
func (b *Broadcast) WriteFrame(track string, frame []byte) error {
	var errs []error
	for i, m := range b.members {
		if err := m.WriteFrame(track, frame); err != nil {
			errs = append(errs, memberErr(i, err))
		}
	}
	return errors.Join(errs...)
}

// Close closes the broadcast on every member, in order, even after one
// fails, and returns the failures joined, each naming its member.
func (b *Broadcast) Close() error {
	var errs []error
	for i, m := range b.members {
		if err := m.Close(); err != nil {
			errs = append(errs, memberErr(i, err))
		}
	}
	return errors.Join(errs...)
}

// Members returns the members' broadcasts, in member order. The slice is
// a copy.
func (b *Broadcast) Members() []moqstats.Broadcast { return slices.Clone(b.members) }

// AppendBroadcast is a Broadcast whose members all implement Appender; it
// implements Appender too.
type AppendBroadcast struct {
	Broadcast
}

// AppendFrame appends frame to track's current group on every member, in
// order, even after one fails, and returns the failures joined, each
// naming its member.
func (b *AppendBroadcast) AppendFrame(track string, frame []byte) error {
	var errs []error
	for i, m := range b.members {
		// Publish checked that every member implements Appender.
		if err := m.(Appender).AppendFrame(track, frame); err != nil {
			errs = append(errs, memberErr(i, err))
		}
	}
	return errors.Join(errs...)
}
