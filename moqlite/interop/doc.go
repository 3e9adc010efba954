// Package interop checks package moqlite against moq's own JavaScript
// client, @moq/lite, in Node, over WebSocket in both framings it speaks
// there (@moq/web-transport-ws and @moq/qmux), on every moq-lite version
// (lite-02 by SETUP, lite-03, lite-04), at the versions package-lock.json
// beside this file pins. It has no API: it is its tests and the Node
// scripts they drive (subscribe.mjs, publish.mjs).
//
// # What it checks
//
// A live moqstats.Stats, compressed tracks on, publishes on a
// moqlite.Server mounted with WebSocketHandler; random traffic (broadcasts,
// tracks and sessions opened and closed, bytes and frames counted,
// passes) drives it and a twin Stats on memorigin alike. An Origin that
// tees the Server records every frame written, group by group (WriteFrame
// starts one, AppendFrame extends it). For each framing and version, one
// Node process subscribes to every track before the traffic and again
// halfway (late), and the test requires that:
//
//   - every frame written on every track, plain and ".z", arrives
//     byte-identical, in order, grouped as written, with consecutive
//     group sequences;
//   - a late subscriber's first group is the track's latest group when it
//     subscribed, and it then gets every later frame;
//   - closing the broadcast reaches the announce interest
//     (conn.announced) as an unannounce;
//   - after Stats.Close, the last frame received on each track is the
//     final frame memorigin saw from the twin;
//   - every frame of a ".z" track, decoded with @moq/json's
//     Snapshot.Decoder, is the value of the plain frame written on the
//     same pass, so each group's snapshot and every merge patch after it
//     rebuild the plain track.
//
// The final frames reach @moq/lite only because the server lingers before
// ending each subscription (moqlite.ServerConfig.EndLinger). With no
// linger every case loses them; the tests run with 3s rather than the
// default 1s, because on a loaded two-core host Node can lag by more than
// a second at the close, and a peer that lags past the linger still loses
// the groups it had not reached.
//
// # Publishing into a server
//
// The other way round, @moq/lite publishes: a moqlite.Server with
// ServerConfig.Ingest serves WebSocket, and for each framing and version
// one Node process publishes a broadcast with two JSON tracks, writing
// the groups the test gives it (with the sequences it gives: several
// groups back to back, one of several frames, one written frame by frame
// while the other track goes on, sequences skipped, a group after a
// pause), and resetting the server's subscription to a track it does not
// publish, as @moq/lite must, having answered SUBSCRIBE_OK to it already.
// A moqlite.Client reading the relayed broadcast through the
// server is required to get every frame, in order, in the groups and with
// the sequences @moq/lite sent; and once the Node side closes its
// Broadcast, or each Track it was asked for, the relayed subscriptions
// end after the final frames and the broadcast is unannounced. With
// Ingest at its defaults, real stats frames (a Stats' groups, as its
// Server numbered them) published by @moq/lite reach a follow.Cluster on
// the server: the Aggregator's totals are the traffic counted, and the
// node's tracks end once the Node side closes its broadcast.
//
// # Running
//
// The tests run under go test ./... in the moqlite module, so make test
// runs them. They need node and the packages in node_modules here,
// installed from the committed lockfile by bash .ci/install-interop.
// Without node or node_modules they skip, saying so, unless the
// environment variable CI is set: then they fail. Node 22 has WebSocket,
// Promise.withResolvers and the Set methods; on Node 20 the tests pass
// --experimental-websocket and shim.mjs adds Promise.withResolvers and
// Set.prototype.difference.
package interop
