package httpstats

import (
	"mime"
	"strconv"
	"strings"
)

// wantsEventStream reports whether the Accept header values list the
// media type text/event-stream (case-insensitive, parameters allowed)
// with a quality above zero. Only an explicit listing counts: */* does
// not turn a GET into a stream.
func wantsEventStream(accept []string) bool {
	for _, v := range accept {
		for elem := range splitUnquoted(v, ',') {
			if isEventStream(elem) {
				return true
			}
		}
	}
	return false
}

// isEventStream reports whether one media range of an Accept header is
// text/event-stream with q > 0.
func isEventStream(elem string) bool {
	typ, _, _ := strings.Cut(elem, ";")
	if !strings.EqualFold(strings.TrimSpace(typ), "text/event-stream") {
		return false
	}
	_, params, err := mime.ParseMediaType(elem)
	if err != nil {
		// Unparseable parameters: the type itself was named, and a
		// quality cannot be read, so it is the default 1.
		return true
	}
	q, ok := params["q"]
	if !ok {
		return true
	}
	f, err := strconv.ParseFloat(q, 64)
	return err != nil || f > 0
}

// splitUnquoted yields the parts of s between unquoted sep bytes. A
// backslash inside a quoted string escapes the next byte.
func splitUnquoted(s string, sep byte) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		start, quoted := 0, false
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case quoted && c == '\\':
				i++
			case c == '"':
				quoted = !quoted
			case !quoted && c == sep:
				if !yield(s[start:i]) {
					return
				}
				start = i + 1
			}
		}
		yield(s[start:])
	}
}

// parseEventID parses a Last-Event-ID of the form G.F: two decimal
// numbers, G a group sequence number and F a frame index below
// MaxGroupFrames. Anything else reports false and is ignored: the stream
// then starts as if no id had been sent.
func parseEventID(s string) (position, bool) {
	g, f, ok := strings.Cut(s, ".")
	if !ok || !digits(g) || !digits(f) {
		return position{}, false
	}
	group, err := strconv.ParseUint(g, 10, 64)
	if err != nil {
		return position{}, false
	}
	index, err := strconv.ParseUint(f, 10, 64)
	if err != nil || index >= MaxGroupFrames {
		return position{}, false
	}
	return position{group, int(index)}, true
}

// digits reports whether s is one or more ASCII digits.
func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
