package httpstats

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Messages of error responses that more than one place sends.
const (
	msgNotAnnounced = "no broadcast announced"
	msgUnknownTrack = "unknown track"
)

// ServeHTTP serves the announced broadcast: "/" lists it, "/<track>"
// serves a track's latest frame (or current group), or streams it as
// Server-Sent Events when the request accepts text/event-stream. Paths
// are relative to where the Origin is mounted; see the package doc for
// every status it answers.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Frames carry customer-chosen paths: never let a browser sniff them
	// into something executable.
	h.Set("X-Content-Type-Options", "nosniff")

	name := strings.TrimPrefix(r.URL.Path, "/")
	if len(name) > MaxTrackName {
		writeError(w, http.StatusRequestURITooLong, "path too long")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if headerLen(r, "Accept") > MaxHeader || headerLen(r, "If-None-Match") > MaxHeader ||
		headerLen(r, "Last-Event-ID") > MaxLastEventID {
		writeError(w, http.StatusRequestHeaderFieldsTooLarge, "request header too large")
		return
	}
	if o.opts.Authorize != nil {
		if err := o.opts.Authorize(r); err != nil {
			if errors.Is(err, ErrUnauthorized) {
				h.Set("WWW-Authenticate", o.opts.Challenge)
				writeError(w, http.StatusUnauthorized, "unauthorized")
			} else {
				writeError(w, http.StatusForbidden, "forbidden")
			}
			return
		}
	}

	if name == "" {
		o.serveList(w, r)
		return
	}
	h.Set("Vary", "Accept")
	if wantsEventStream(r.Header.Values("Accept")) {
		if r.Method == http.MethodHead {
			o.serveStreamHead(w, r, name)
			return
		}
		o.serveStream(w, r, name)
		return
	}
	o.serveFrame(w, r, name)
}

// listing is the body of GET /.
type listing struct {
	Path   string   `json:"path"`
	Tracks []string `json:"tracks"`
}

func (o *Origin) serveList(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	b := o.current
	o.mu.Unlock()
	if b == nil {
		writeError(w, http.StatusNotFound, msgNotAnnounced)
		return
	}
	body, err := json.Marshal(listing{Path: b.path, Tracks: b.names})
	if err != nil {
		panic("BUG: marshalling strings failed: " + err.Error())
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// lookup copies what GET serves for track name of the current broadcast,
// or returns an HTTP status and message when there is no such track.
func (o *Origin) lookup(name string) (view, int, string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.current
	if b == nil {
		return view{}, http.StatusNotFound, msgNotAnnounced
	}
	t, ok := b.tracks[name]
	if !ok {
		return view{}, http.StatusNotFound, msgUnknownTrack
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	v := view{b: b, t: t, started: t.started, group: t.group, last: len(t.frames) - 1}
	switch {
	case !t.started:
	case t.kind == kindGroup:
		v.frames = append([][]byte(nil), t.frames...)
	default:
		v.frames = [][]byte{t.frames[v.last]}
	}
	return v, 0, ""
}

// serveFrame answers a GET or HEAD of a track that is not a stream: 204
// before the first frame, else the latest frame (a group track: its
// current group) with an ETag, through http.ServeContent, which answers
// If-None-Match with 304 and HEAD without a body.
func (o *Origin) serveFrame(w http.ResponseWriter, r *http.Request, name string) {
	v, code, msg := o.lookup(name)
	if code != 0 {
		writeError(w, code, msg)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	if !v.started {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var body []byte
	switch v.t.kind {
	case kindJSON:
		h.Set("Content-Type", "application/json")
		body = v.frames[0]
	case kindGroup:
		h.Set("Content-Type", "application/json")
		body = appendGroup(nil, v.group, v.frames)
	default:
		h.Set("Content-Type", "application/octet-stream")
		body = v.frames[0]
	}
	h.Set("ETag", v.etag())
	// A frame is served whole: a Range of many tiny ranges would make a
	// multipart answer many times the frame's size, at the server's
	// cost, and no client of stats needs part of a frame.
	r.Header.Del("Range")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// serveStreamHead answers a HEAD that asks for a stream with the headers
// the stream would start with, without opening one.
func (o *Origin) serveStreamHead(w http.ResponseWriter, r *http.Request, name string) {
	if _, code, msg := o.lookup(name); code != 0 {
		writeError(w, code, msg)
		return
	}
	setStreamHeaders(w)
	w.WriteHeader(http.StatusOK)
}

// appendGroup appends {"group":G,"frames":["<std base64>",...]}.
func appendGroup(dst []byte, group uint64, frames [][]byte) []byte {
	dst = append(dst, `{"group":`...)
	dst = strconv.AppendUint(dst, group, 10)
	dst = append(dst, `,"frames":[`...)
	for i, f := range frames {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, f)
		dst = append(dst, '"')
	}
	return append(dst, "]}"...)
}

// writeError answers code with a JSON body {"error":msg}. msg is one of
// this package's fixed messages, never request input.
func writeError(w http.ResponseWriter, code int, msg string) {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// headerLen is the total length of the values of header key.
func headerLen(r *http.Request, key string) int {
	n := 0
	for _, v := range r.Header.Values(key) {
		n += len(v)
	}
	return n
}
