// Package httpstats serves a stats broadcast over HTTP. Its Origin is a
// [moqstats.Origin] that keeps each track's current group in memory and
// an [http.Handler] that serves it: the latest frame by GET, with ETags,
// and every new frame as Server-Sent Events, which a browser reads with
// EventSource. To publish to a relay and to HTTP at once, combine it with
// the relay's own origin in package fanout.
//
// # Mounting
//
// The handler serves paths relative to its mount point: "/" and
// "/<track>". Mount it under a prefix with http.StripPrefix:
//
//	origin, _ := httpstats.New(httpstats.Options{})
//	mux.Handle("/stats/", http.StripPrefix("/stats", origin))
//	srv.RegisterOnShutdown(origin.Shutdown)
//
// An Origin serves one broadcast at a time, as a Stats publishes exactly
// one: Publish while one is announced fails with ErrAnnounced, and works
// again once that broadcast is closed.
//
// # Groups
//
// Every track holds its current group: a sequence number and its frames,
// at most MaxGroupFrames. WriteFrame starts a new group holding one frame;
// AppendFrame adds a frame to the current group (ErrNoGroup before the
// track's first WriteFrame, ErrGroupFull on a full group). Plain ".json"
// tracks only use WriteFrame, so their groups hold one frame. Compressed
// "<track>.z" siblings put a full snapshot in frame 0 of a group and
// deltas, raw DEFLATE, in later frames; a delta only means something
// applied in order after the frames before it in its group, so for a
// ".z" track the unit served is the group, not the frame.
//
// A broadcast's groups are numbered from the wall clock in milliseconds
// at Publish, or from one more than the last group the Origin used if
// that is larger, and grow by one per WriteFrame. So group numbers only
// grow on an Origin, and across a process restart unless the previous
// process wrote more than one group per millisecond on a track.
//
// # Endpoints
//
// Only GET and HEAD are served; any other method is 405 with Allow:
// GET, HEAD. Error responses have a JSON body {"error":"<message>"} that
// never repeats request input.
//
//   - GET / returns {"path":"<broadcast path>","tracks":["publisher.json",...]}
//     (tracks in Publish order) as application/json, or 404 when nothing
//     is announced.
//   - GET /<track> (the name may contain '/': /internal/publisher.json)
//     returns the track's latest frame, as application/json for a ".json"
//     track and application/octet-stream for a track that is neither
//     ".json" nor ".z". For a ".z" track it returns the current group as
//     application/json: {"group":G,"frames":["<std base64>",...]}, frame 0
//     first. Before the track's first frame it answers 204 No Content.
//     An unknown track, or no broadcast, is 404.
//   - Every frame response has an ETag naming the Origin (a random id),
//     the broadcast's incarnation (one per Publish), the track, the group
//     and the index of its latest frame, so two different bodies never
//     share one, even across a Close and a new Publish or a restart. Its
//     form is not part of the contract. If-None-Match (a list, weak
//     comparison, or *) is answered 304; conditional requests are handled
//     by http.ServeContent. A Range header is ignored: the answer is the
//     whole frame, 200 (a frame is small, and many tiny ranges would
//     make a multipart answer many times its size). Responses carry
//     Cache-Control: no-cache, so caches revalidate, and Vary: Accept.
//
// # Server-Sent Events
//
// A GET /<track> whose Accept header lists text/event-stream (with q > 0;
// */* does not count) is answered with an event stream, Content-Type
// text/event-stream, Cache-Control: no-cache, flushed after every event.
// This wire format is a contract; each line ends with LF:
//
//	retry: <ms>              sent once, first: the reconnection delay
//
//	id: <G>.<F>              one event per frame: G the group's sequence
//	data: <frame>            number, F the frame's index in it (always 0
//	                         on a ".json" track); then a blank line
//
//	: ping                   a comment after Heartbeat without events
//
//	event: end               once the broadcast is closed, after every
//	data: closed             event queued before the close; then the
//	                         response ends
//
// Frame events have no "event:" line, so EventSource's onmessage sees
// them; the end event is a named event, seen by
// addEventListener("end", ...). The data of a ".json" track's event is
// the frame's JSON text: compact frames are one line, and a frame with
// line breaks would be sent one "data:" line per line, which a client
// joins back with LF. The data of any other track's event, a ".z" track's
// included, is the frame in standard base64 with padding.
//
// A stream starts with the track's latest frame, or for a ".z" track with
// its current group from frame 0, then sends every new frame in write
// order. It honours a Last-Event-ID header (as EventSource sends when it
// reconnects) of the form G.F: if it names the latest frame, the stream
// sends nothing until the next frame; if it names an earlier frame of the
// current group, the stream starts with the frames after it; otherwise
// (another group, a malformed id) the stream starts as if there were no
// id. Before the track's first frame a stream sends nothing until it.
//
// Ids on one stream strictly increase, comparing G then F. On a ".z"
// track an event G.F with F > 0 directly follows G.(F-1) on the same
// stream, or is the first event of a stream that resumed from G.(F-1) by
// Last-Event-ID: a client can apply every delta it receives to the frames
// it received before it. An id that skips frames, or a group, means
// frames were dropped (see Slow clients).
//
// A stream of a ".json" track, for example:
//
//	retry: 3000
//
//	id: 1767225600000.0
//	data: {"acme/live":{"announced":1,"announced_closed":0,...}}
//
//	: ping
//
//	id: 1767225600001.0
//	data: {}
//
//	event: end
//	data: closed
//
// A stream ends without an end event when the client goes away (the
// request's context ends), when a write to the client fails or takes
// longer than WriteTimeout, and when the Origin is shut down. A client
// that reconnects then resumes by Last-Event-ID.
//
// # Slow clients
//
// Writing a frame never waits on a client: WriteFrame and AppendFrame
// queue the frame for each stream of the track under the broadcast's lock
// and return, and each stream's handler writes its queue out without the
// lock. A stream's queue holds at most StreamBuffer events. A frame that
// finds it full drops the whole queue and marks the stream for a resync:
// its next events are the track's state when the handler next looks, as
// for a Last-Event-ID naming the last event it sent. For a ".json" track
// that is the latest frame; for a ".z" track it is the rest of the group
// the client is in if that is still current, and otherwise the newest
// group from frame 0, since deltas cannot be skipped. A client that keeps
// up receives every frame; one that falls behind loses frames, never the
// latest state. Queued frames are the track's own copies, shared by every
// stream and written to each client from there, so a frame queued for
// many streams costs its size once; but streams that fell behind at
// different times hold different frames, after the track dropped them.
//
// So what streams hold is bounded in bytes. Every frame a stream holds,
// queued or taken by its handler and not yet written, counts against
// StreamBytes for the stream and QueueBytes for all streams of the
// Origin. A frame is queued only within both: when it would exceed
// StreamBytes (or StreamBuffer frames) the stream resyncs; when it would
// exceed QueueBytes, the queues of the streams holding the most queued
// bytes, the readers furthest behind, are dropped first (they resync),
// and if that is not enough the stream resyncs. A resync's frames are the
// track's current state (the latest frame, or a ".z" track's group),
// which the track holds anyway: they are counted but never refused. So
// the frames streams hold beyond the tracks' own are at most QueueBytes,
// plus for each stream the current state of its track when it last
// resynced, kept until that is written (within WriteTimeout).
//
// # Limits
//
//   - At most MaxStreams streams are open at once; beyond it, and after
//     Shutdown, a stream request is answered 503 with Retry-After. (A
//     browser's EventSource gives up on any answer but 200; a client that
//     should keep trying must reconnect itself.)
//   - A path longer than MaxTrackName is 414; an Accept or If-None-Match
//     header longer than MaxHeader, or a Last-Event-ID longer than
//     MaxLastEventID, is 431. The query string is ignored.
//   - Each write to a stream's client must finish within WriteTimeout,
//     which ends the streams of clients that stopped reading.
//   - The frames streams hold are capped per stream by StreamBytes and
//     in total by QueueBytes (see Slow clients).
//   - The handler sets no timeouts on the connection: run it in an
//     http.Server with ReadHeaderTimeout (a client that never finishes
//     its headers otherwise holds a connection and a goroutine) and
//     IdleTimeout, and without WriteTimeout, which would cut every
//     stream after that long; streams have their own write deadlines.
//
// # Authorization
//
// Stats name customers' broadcasts. If Options.Authorize is set it runs
// on every GET and HEAD before anything about the broadcast is looked up
// or revealed: an error is answered 401 (with WWW-Authenticate:
// Options.Challenge) if it is or wraps ErrUnauthorized, 403 otherwise,
// with a generic message; the error's text is not sent. CORS, if wanted,
// belongs in a wrapping handler.
//
// # Closing and shutdown
//
// Close unannounces the broadcast: GETs answer 404 until the next
// Publish, and each of its streams is sent what was queued for it, the
// end event, and ends. http.Server.Shutdown does not end streaming
// responses; Origin.Shutdown does (register it with
// http.Server.RegisterOnShutdown), and makes new streams fail with 503.
// Streams of HTTP/1 clients are sent with Connection: close, since their
// write deadline would outlive them on a reused connection.
//
// # Concurrency
//
// Everything is safe for concurrent use. One mutex per Origin guards the
// announced broadcast and the stream count, one per Broadcast guards its
// tracks and the queues of their streams (lock order: Origin, then
// Broadcast). A stream registers under both locks, so it sees a
// contiguous suffix of its track's frames from the state it started with,
// up to any resync.
package httpstats
