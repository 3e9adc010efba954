package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"

	"github.com/moqstats/moqstats/internal/wiretest"
	"github.com/moqstats/moqstats/zframe"
)

// goDecoder is the Go consumer of one compressed track, as the tests see
// it: fed the frames the track delivers, in order, each with its index in
// its group (0: a snapshot), it returns the track's value after the frame,
// as parseJSON returns values, valid until the next call. It is the one
// piece a typed consumer replaces.
type goDecoder interface {
	Frame(index int, data []byte) (any, error)
}

// newGoDecoder returns the Go consumer for one compressed track.
var newGoDecoder = func() goDecoder { return &mergeDecoder{} }

// mergeDecoder inflates with zframe.Decoder and applies merge patches
// with wiretest.MergePatch.
type mergeDecoder struct {
	z     zframe.Decoder
	value any
}

func (d *mergeDecoder) Frame(index int, data []byte) (any, error) {
	var raw []byte
	var err error
	if index == 0 {
		raw, err = d.z.Snapshot(data)
	} else {
		raw, err = d.z.Delta(data)
	}
	if err != nil {
		return nil, err
	}
	v, err := parseJSON(raw)
	if err != nil {
		return nil, err
	}
	if index == 0 {
		if _, ok := v.(map[string]any); !ok {
			return nil, fmt.Errorf("a snapshot that is not an object: %.100s", raw)
		}
		d.value = v
		return v, nil
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("a merge patch that is not an object: %.100s", raw)
	}
	d.value = wiretest.MergePatch(d.value, v)
	return d.value, nil
}

// parseJSON parses one JSON value as encoding/json does into any, but
// with numbers kept as their digits (json.Number), so values compare
// exactly however large their counters.
func parseJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("parsing %.100s: %w", b, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("parsing %.100s: more after the value", b)
	}
	return v, nil
}

// equal reports whether two parsed values are the same JSON value: the
// same members, numbers with the same digits.
func equal(a, b any) bool { return reflect.DeepEqual(a, b) }

// show prints a parsed value for a failure message.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 2000 {
		return string(b[:2000]) + "..."
	}
	return string(b)
}
