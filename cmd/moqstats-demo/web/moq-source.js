// The dashboard's moq-lite source: @moq/lite (served by the demo under
// js/, named by the page's import map) subscribes to the plain JSON
// tracks of the stats broadcast and hands each frame to the dashboard,
// as the Server-Sent Events source does. The tracks carry the same
// frames either way; only the ids differ (here "group.frame").
import { Connection, Path } from '@moq/lite';

// PREFIX is where the stats broadcasts are announced.
const PREFIX = '.stats/node';

const decoder = new TextDecoder();

// subscribe connects to url, waits for a stats broadcast to be announced
// (onBroadcast with its path), subscribes to tracks and calls onFrame for
// every frame, in order, and onEnd for every track once the broadcast
// ended. Then, or when the session failed, it closes the session and
// calls onClose, once, with the error or null. The result's close ends it
// early.
export function subscribe({ url, tracks, onBroadcast, onFrame, onEnd, onClose }) {
  let conn = null;
  let done = false;
  const finish = (err) => {
    if (done) return;
    done = true;
    try {
      conn?.close();
    } catch {
      // closing a session that already failed
    }
    onClose(err);
  };
  (async () => {
    // Given an http:// URL, @moq/lite fetches certificate.sha256 beside
    // it and connects over WebTransport to the https:// URL with that
    // hash as serverCertificateHashes; a browser without WebTransport
    // falls back to WebSocket on the same URL.
    conn = await Connection.connect(url, { websocket: { delay: 2000 } });
    if (done) return;
    const announced = conn.announced(Path.from(PREFIX));
    let path = null;
    while (path === null) {
      const entry = await announced.next();
      if (entry === undefined) throw new Error('announcements ended');
      if (entry.active) path = entry.path;
    }
    announced.close();
    onBroadcast(String(path));
    const broadcast = conn.consume(path);
    // A track ends cleanly when the broadcast closes; the session may
    // then close before every track has seen its end, so one clean end
    // ends them all, as the broadcast's tracks end together.
    let ended = false;
    const results = await Promise.allSettled(tracks.map(async (name) => {
      const track = broadcast.subscribe(name, 0);
      // A group's stream ends before the next group's starts, so reading
      // each to its end keeps the frames in order.
      for (let group; (group = await track.recvGroup()) && !done;) {
        try {
          for (let i = 0, f; (f = await group.readFrame()) && !done; i++) {
            onFrame(name, group.sequence, i, decoder.decode(f));
          }
        } catch {
          // A group cut short (the server skipped to a newer one): the
          // next group carries whole frames again.
        }
      }
      ended = true;
    }));
    if (!ended) throw results.find((r) => r.status === 'rejected')?.reason ?? new Error('no track ended');
    if (!done) tracks.forEach(onEnd);
    finish(null);
  })().catch((err) => finish(err instanceof Error ? err : new Error(String(err))));
  return { close: () => finish(null) };
}
