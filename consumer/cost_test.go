package consumer

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// keyOverhead is what the README says a key held costs besides its own
// bytes, over its tracks' maps and its state.
const keyOverhead = 640

// A key held costs at most keyOverhead bytes plus its length: the bound
// the README gives for what a follower holds per node and in total
// (MaxKeysPerNode and MaxKeys keys of at most MaxKeyLen bytes).
func TestKeyCostWithinTheReadmeBound(t *testing.T) {
	const keys, keyLen = 20000, 200
	agg := newAgg(t, Config{})
	base := liveHeap()
	var b strings.Builder
	b.WriteString("{")
	for i := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"%0*d":{"broadcasts":1,"bytes":1}`, keyLen, i)
	}
	b.WriteString("}")
	if err := agg.Observe("n", "publisher.json", t0, []byte(b.String())); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	per := (liveHeap() - base) / keys
	t.Logf("%d bytes a key of %d bytes", per, keyLen)
	if per > keyOverhead+keyLen {
		t.Fatalf("a key of %d bytes costs %d bytes held, want at most %d (keyOverhead %d + its length)", keyLen, per, keyOverhead+keyLen, keyOverhead)
	}
	runtime.KeepAlive(agg)
}
