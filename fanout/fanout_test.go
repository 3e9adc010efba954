package fanout_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moqstats/moqstats"
	"github.com/moqstats/moqstats/fanout"
	"github.com/moqstats/moqstats/httpstats"
	"github.com/moqstats/moqstats/memorigin"
)

var injected = errors.New("injected")

// recorder is an Origin whose broadcasts record what reaches them, and
// fail where told.
type recorder struct {
	mu          sync.Mutex
	publishErr  error
	writeErr    error
	appendErr   error
	closeErr    error
	published   []string // paths
	gotTracks   [][]string
	frames      []string // "write track=frame", "append track=frame"
	closes      int
	withAppend  bool
	mutateTrack bool // scribble over the tracks slice it was given
}

func (r *recorder) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.publishErr != nil {
		return nil, r.publishErr
	}
	r.published = append(r.published, path)
	r.gotTracks = append(r.gotTracks, slices.Clone(tracks))
	if r.mutateTrack {
		for i := range tracks {
			tracks[i] = "scribbled"
		}
	}
	if r.withAppend {
		return &appendingBroadcast{recBroadcast{r}}, nil
	}
	return &recBroadcast{r}, nil
}

func (r *recorder) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.frames)
}

type recBroadcast struct{ r *recorder }

func (b *recBroadcast) WriteFrame(track string, frame []byte) error {
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	if b.r.writeErr != nil {
		return b.r.writeErr
	}
	b.r.frames = append(b.r.frames, "write "+track+"="+string(frame))
	return nil
}

func (b *recBroadcast) Close() error {
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	b.r.closes++
	return b.r.closeErr
}

type appendingBroadcast struct{ recBroadcast }

func (b *appendingBroadcast) AppendFrame(track string, frame []byte) error {
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	if b.r.appendErr != nil {
		return b.r.appendErr
	}
	b.r.frames = append(b.r.frames, "append "+track+"="+string(frame))
	return nil
}

func TestPublishesOnEveryMember(t *testing.T) {
	m0, m1 := memorigin.New(), memorigin.New()
	bc, err := fanout.New(m0, m1).Publish("p", []string{"a", "b"})
	if err != nil {
		t.Fatalf("Publish error = %v, want nil", err)
	}
	if err := bc.WriteFrame("a", []byte("x")); err != nil {
		t.Fatalf("WriteFrame error = %v, want nil", err)
	}
	for i, m := range []*memorigin.Origin{m0, m1} {
		if f, ok := m.Latest("p", "a"); !ok || string(f) != "x" {
			t.Errorf("member %d: Latest(p, a) = %q, %v; want \"x\", true", i, f, ok)
		}
	}
	if got := len(bc.(*fanout.AppendBroadcast).Members()); got != 2 {
		t.Errorf("Members() has %d broadcasts, want 2", got)
	}
	if err := bc.Close(); err != nil {
		t.Fatalf("Close error = %v, want nil", err)
	}
	for i, m := range []*memorigin.Origin{m0, m1} {
		if paths := m.Paths(); len(paths) != 0 {
			t.Errorf("member %d after Close: paths %q, want none", i, paths)
		}
	}
}

// TestFailedPublishUndoesTheOthers: when a member's Publish fails, every
// member is still tried, the ones that published are closed again, and
// the error names each failing member.
func TestFailedPublishUndoesTheOthers(t *testing.T) {
	m0 := &recorder{}
	m1 := &recorder{publishErr: injected}
	m2 := memorigin.New()
	m3 := &recorder{publishErr: errors.New("second failure")}
	bc, err := fanout.New(m0, m1, m2, m3).Publish("p", []string{"a"})
	if bc != nil || !errors.Is(err, injected) {
		t.Fatalf("Publish = %v, %v; want nil and an error wrapping the member's", bc, err)
	}
	for _, want := range []string{`fanout: publish "p": member 1: injected`, `fanout: publish "p": member 3: second failure`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "member 0") || strings.Contains(err.Error(), "member 2") {
		t.Errorf("error %q names a member that succeeded", err)
	}
	if len(m0.published) != 1 || m0.closes != 1 {
		t.Errorf("member 0: published %d, closed %d times; want 1 and 1", len(m0.published), m0.closes)
	}
	if paths := m2.Paths(); len(paths) != 0 {
		t.Errorf("member 2 (tried after a failure) still announces %q, want it closed again", paths)
	}
	// The path is free again on every member.
	if _, err := m2.Publish("p", []string{"a"}); err != nil {
		t.Errorf("Publish on member 2 after the undo: %v, want nil", err)
	}
}

func TestUndoFailureIsReported(t *testing.T) {
	m0 := &recorder{closeErr: errors.New("close failed")}
	m1 := &recorder{publishErr: injected}
	_, err := fanout.New(m0, m1).Publish("p", []string{"a"})
	if !errors.Is(err, injected) || !strings.Contains(err.Error(), "member 0: closing again: close failed") {
		t.Errorf("Publish error = %v, want the publish failure and member 0's close failure", err)
	}
}

func TestPublishRejectsBadMembers(t *testing.T) {
	var nilPtr *memorigin.Origin
	nilBroadcast := originFunc(func(string, []string) (moqstats.Broadcast, error) { return nil, nil })
	ok := &recorder{}
	for _, tc := range []struct {
		name    string
		members []moqstats.Origin
		want    string
	}{
		{"none", nil, "fanout: no members"},
		{"nil interface", []moqstats.Origin{ok, nil}, "member 1 is nil"},
		{"nil pointer", []moqstats.Origin{nilPtr}, "member 0 is nil"},
		{"nil broadcast", []moqstats.Origin{ok, nilBroadcast}, "member 1 returned a nil Broadcast"},
	} {
		bc, err := fanout.New(tc.members...).Publish("p", []string{"a"})
		if bc != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Publish = %v, %v; want an error containing %q", tc.name, bc, err, tc.want)
		}
	}
	if !errors.Is(errOf(fanout.New().Publish("p", []string{"a"})), fanout.ErrNoMembers) {
		t.Error("Publish with no members does not wrap ErrNoMembers")
	}
	if len(ok.published) != ok.closes {
		t.Errorf("the good member was published %d times and closed %d times, want equal", len(ok.published), ok.closes)
	}
}

func errOf(_ moqstats.Broadcast, err error) error { return err }

// plainOnly publishes on its origin broadcasts that cannot append.
type plainOnly struct{ o moqstats.Origin }

type plainOnlyBroadcast struct{ b moqstats.Broadcast }

func (p plainOnly) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	b, err := p.o.Publish(path, tracks)
	return plainOnlyBroadcast{b}, err
}
func (p plainOnlyBroadcast) WriteFrame(track string, f []byte) error { return p.b.WriteFrame(track, f) }
func (p plainOnlyBroadcast) Close() error                            { return p.b.Close() }

type originFunc func(string, []string) (moqstats.Broadcast, error)

func (f originFunc) Publish(path string, tracks []string) (moqstats.Broadcast, error) {
	return f(path, tracks)
}

// TestMembersGetTheirOwnTracks: a member that scribbles over its tracks
// slice does not change what the others, or the caller, see.
func TestMembersGetTheirOwnTracks(t *testing.T) {
	m0 := &recorder{mutateTrack: true}
	m1 := &recorder{}
	tracks := []string{"a", "b"}
	if _, err := fanout.New(m0, m1).Publish("p", tracks); err != nil {
		t.Fatal(err)
	}
	if got := m1.gotTracks[0]; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("member 1 got tracks %q, want [a b]", got)
	}
	if !slices.Equal(tracks, []string{"a", "b"}) {
		t.Errorf("caller's tracks became %q, want [a b]", tracks)
	}
}

// TestFailingWriteDoesNotStopOtherMembers: a member's write failure is
// returned naming it, and the members after it still get the frame.
func TestFailingWriteDoesNotStopOtherMembers(t *testing.T) {
	m0, m1, m2 := memorigin.New(), &recorder{}, memorigin.New()
	bc, err := fanout.New(m0, m1, m2).Publish("p", []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	b0, _ := m0.Lookup("p")
	b0.SetWriteHook(func(string, []byte) error { return injected })
	m1.writeErr = errors.New("member one is down")

	err = bc.WriteFrame("a", []byte("x"))
	if !errors.Is(err, injected) {
		t.Errorf("WriteFrame error = %v, want it to wrap member 0's error", err)
	}
	for _, want := range []string{"fanout: member 0: injected", "fanout: member 1: member one is down"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("WriteFrame error %v does not contain %q", err, want)
		}
	}
	if f, ok := m2.Latest("p", "a"); !ok || string(f) != "x" {
		t.Errorf("member 2 after members 0 and 1 failed: Latest = %q, %v; want \"x\", true", f, ok)
	}
}

func TestCloseReachesEveryMemberAndJoinsErrors(t *testing.T) {
	m0, m1 := memorigin.New(), memorigin.New()
	bc, err := fanout.New(m0, m1).Publish("p", []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	b0, _ := m0.Lookup("p")
	if err := b0.Close(); err != nil { // member 0 closed behind the fanout's back
		t.Fatal(err)
	}
	err = bc.Close()
	if !errors.Is(err, memorigin.ErrClosed) || !strings.Contains(err.Error(), "fanout: member 0:") {
		t.Errorf("Close error = %v, want member 0's ErrClosed", err)
	}
	if strings.Contains(err.Error(), "member 1") {
		t.Errorf("Close error = %v names member 1, which closed fine", err)
	}
	if paths := m1.Paths(); len(paths) != 0 {
		t.Errorf("member 1 after Close: paths %q, want none", paths)
	}
}

// TestAppendFrameOnlyWhenEveryMemberAppends: the broadcast has AppendFrame
// exactly when all members' broadcasts do.
func TestAppendFrameOnlyWhenEveryMemberAppends(t *testing.T) {
	h0, err := httpstats.New(httpstats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h1, err := httpstats.New(httpstats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bc, err := fanout.New(h0, h1).Publish("p", []string{"t.z"})
	if err != nil {
		t.Fatal(err)
	}
	ab, ok := bc.(fanout.Appender)
	if !ok {
		t.Fatalf("Publish over two appending members returned %T, want a fanout.Appender", bc)
	}
	if _, ok := bc.(*fanout.AppendBroadcast); !ok {
		t.Errorf("Publish over two appending members returned %T, want *fanout.AppendBroadcast", bc)
	}
	if err := ab.AppendFrame("t.z", []byte("d")); !errors.Is(err, httpstats.ErrNoGroup) {
		t.Errorf("AppendFrame before WriteFrame error = %v, want the members' ErrNoGroup", err)
	}
	if err := bc.WriteFrame("t.z", []byte("s")); err != nil {
		t.Fatal(err)
	}
	if err := ab.AppendFrame("t.z", []byte("d")); err != nil {
		t.Fatalf("AppendFrame error = %v, want nil", err)
	}
	if err := bc.Close(); err != nil {
		t.Fatal(err)
	}

	bc, err = fanout.New(h0, plainOnly{memorigin.New()}).Publish("p", []string{"t.z"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := bc.(fanout.Appender); ok {
		t.Errorf("Publish with a member that cannot append returned %T, which has AppendFrame; want none", bc)
	}
	if _, ok := bc.(*fanout.Broadcast); !ok {
		t.Errorf("Publish with a member that cannot append returned %T, want *fanout.Broadcast", bc)
	}
}

// TestAppendFrameForwardsToEveryMember: appends reach every member in
// order, and a failing member does not stop the others.
func TestAppendFrameForwardsToEveryMember(t *testing.T) {
	m0 := &recorder{withAppend: true}
	m1 := &recorder{withAppend: true}
	bc, err := fanout.New(m0, m1).Publish("p", []string{"t.z"})
	if err != nil {
		t.Fatal(err)
	}
	ab := bc.(fanout.Appender)
	if err := bc.WriteFrame("t.z", []byte("s")); err != nil {
		t.Fatal(err)
	}
	if err := ab.AppendFrame("t.z", []byte("d1")); err != nil {
		t.Fatal(err)
	}
	m0.appendErr = injected
	err = ab.AppendFrame("t.z", []byte("d2"))
	if !errors.Is(err, injected) || !strings.Contains(err.Error(), "fanout: member 0: injected") {
		t.Errorf("AppendFrame with member 0 failing: error %v, want member 0's error", err)
	}
	if got, want := m0.log(), []string{"write t.z=s", "append t.z=d1"}; !slices.Equal(got, want) {
		t.Errorf("member 0 saw %q, want %q", got, want)
	}
	if got, want := m1.log(), []string{"write t.z=s", "append t.z=d1", "append t.z=d2"}; !slices.Equal(got, want) {
		t.Errorf("member 1 saw %q, want %q", got, want)
	}
}

// TestConcurrentUseIsRaceFree writes from several goroutines through one
// fanout broadcast; it exists for go test -race.
func TestConcurrentUseIsRaceFree(t *testing.T) {
	h, err := httpstats.New(httpstats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := memorigin.New()
	bc, err := fanout.New(m, h).Publish("p", []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, track := range []string{"a", "b"} {
		wg.Go(func() {
			for i := range 200 {
				if err := bc.WriteFrame(track, []byte{byte(i)}); err != nil {
					t.Errorf("WriteFrame(%s) error = %v", track, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, track := range []string{"a", "b"} {
		if f, _ := m.Latest("p", track); len(f) != 1 || f[0] != 199 {
			t.Errorf("member 0 track %s latest = %v, want [199]", track, f)
		}
	}
	if err := bc.Close(); err != nil {
		t.Fatal(err)
	}
}
