// The demo dashboard. It reads the stats tracks under stats/ as
// Server-Sent Events, or with ?source=moq over moq-lite (moq-source.js,
// @moq/lite over WebTransport), and computes everything it shows from the
// cumulative frames, the same way whichever source carried them: per-broadcast bitrates from successive frames, live viewers
// (broadcasts - broadcasts_closed on the egress tracks) and sessions by
// root (sessions - sessions_closed). Keys (broadcast paths, auth roots)
// come from clients, so they only ever reach the page as text
// (textContent, setAttribute), never as markup, and are kept in Maps, never
// as object properties.
//
// Every number shown is also in a data attribute, with the frame ids it
// came from on the tracks table, so a test can check the page against
// the frames exactly.
'use strict';

(() => {
  // The per-broadcast tracks and what they count. One EventSource per
  // track: five streams, so over HTTP/1.1 (six connections per host) one
  // connection stays free for the index and navigation. The internal
  // sessions track (cluster peers) is left out for that reason.
  const TRAFFIC = new Map([
    ['publisher.json', 'egress'],
    ['internal/publisher.json', 'egress'],
    ['subscriber.json', 'ingress'],
    ['internal/subscriber.json', 'ingress'],
  ]);
  const SESSIONS = 'sessions.json';
  const TRACKS = [...TRAFFIC.keys(), SESSIONS];
  const COUNTERS = ['announced', 'announced_closed', 'broadcasts', 'broadcasts_closed',
    'subscriptions', 'subscriptions_closed', 'bytes', 'frames', 'groups'];
  const HISTORY = 60; // sparkline points per broadcast: a minute at the default tick
  const MAX_ROWS = 500; // rows rendered; the cards count them all
  const MIN_BACKOFF = 1000;
  const MAX_BACKOFF = 15000;
  const STALE_MIN = 3000; // ms without a frame before rates read 0, at least
  const SVG = 'http://www.w3.org/2000/svg';

  const statsBase = new URL('stats/', document.baseURI);
  const $ = (id) => document.getElementById(id);

  // The source of the frames: Server-Sent Events, or moq-lite when asked
  // for and the demo serves @moq/lite (it then gives the page an import
  // map and data-moq-lite="on").
  const moqAvailable = document.documentElement.dataset.moqLite === 'on';
  const SOURCE = new URLSearchParams(location.search).get('source') === 'moq' ? 'moq' : 'sse';

  // Per-track state. frame and prev are the last two frames received, as
  // Maps from key to entry; at and prevAt when they arrived
  // (performance.now(), ms).
  const tracks = new Map(TRACKS.map((name) => [name, {
    name, es: null, status: 'idle',
    id: null, idNum: null, prevId: null,
    frame: null, prev: null, at: null, prevAt: null, dt: null,
    frames: 0, rejected: 0,
  }]));

  const rows = new Map(); // broadcast -> its table row and cells
  const sessionRows = new Map(); // root -> its table row and cells
  const history = new Map(); // broadcast -> egress bit/s samples, oldest first
  const trackRows = new Map(); // track -> its row in the tracks table
  let backoff = MIN_BACKOFF;
  let restartTimer = null;
  let everConnected = false;

  // --- Formatting ---------------------------------------------------------

  function formatSI(v, unit) {
    const prefixes = ['', 'k', 'M', 'G', 'T', 'P'];
    let i = 0;
    while (v >= 999.5 && i < prefixes.length - 1) {
      v /= 1000;
      i++;
    }
    if (i === 0) return `${v.toFixed(0)} ${unit}`;
    if (v < 9.995) return `${v.toFixed(2)} ${prefixes[i]}${unit}`;
    if (v < 99.95) return `${v.toFixed(1)} ${prefixes[i]}${unit}`;
    return `${v.toFixed(0)} ${prefixes[i]}${unit}`;
  }
  const formatBitrate = (bps) => (bps === null ? '–' : formatSI(bps, 'bit/s'));
  const formatBytes = (n) => formatSI(n, 'B');
  const attr = (v) => (v === null ? '' : String(v));

  // --- Frames -------------------------------------------------------------

  const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

  // num reads a counter; anything but a non-negative number reads 0.
  function num(entry, field) {
    const v = entry[field];
    return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
  }

  // parseId reads an event id "G.F" as [G, F], or null.
  function parseId(id) {
    const m = /^(\d{1,15})\.(\d{1,15})$/.exec(id || '');
    return m ? [Number(m[1]), Number(m[2])] : null;
  }
  const compareIds = (a, b) => (a[0] - b[0]) || (a[1] - b[1]);

  function clearTrack(t) {
    t.id = t.idNum = t.prevId = null;
    t.frame = t.prev = null;
    t.at = t.prevAt = t.dt = null;
  }

  function onFrame(t, e) {
    let parsed;
    try {
      parsed = JSON.parse(e.data);
    } catch {
      t.rejected++;
      return;
    }
    if (!isObject(parsed)) {
      t.rejected++;
      return;
    }
    // A stream opened again after EventSource gave up (a 503, say)
    // starts with the latest frame, which may be the one shown: skip it,
    // or it would read as a frame with no change. A new broadcast starts
    // with an end event instead, and its counters count from zero, which
    // isReset sees even without one.
    const id = parseId(e.lastEventId);
    if (id && t.idNum && compareIds(id, t.idNum) === 0) return;
    const frame = new Map();
    for (const [key, entry] of Object.entries(parsed)) {
      if (isObject(entry)) frame.set(key, entry);
    }
    t.prev = t.frame;
    t.prevId = t.id;
    t.prevAt = t.at;
    t.frame = frame;
    t.id = e.lastEventId;
    t.idNum = id;
    t.at = performance.now();
    t.dt = t.prevAt === null ? null : t.at - t.prevAt;
    t.frames++;
    t.status = 'live';
    render(TRAFFIC.get(t.name) === 'egress');
  }

  // isStale: producers write a track whenever it changes, so a track
  // silent for three of its intervals (and at least STALE_MIN) did not
  // change: its rates are 0.
  const isStale = (t, now) => t.at !== null && now - t.at > Math.max(3 * (t.dt || 0), STALE_MIN);

  // A counter below its previous value means the producer collected the
  // entry and made a new one, counting from zero: a new segment.
  const isReset = (cur, prev) => COUNTERS.some((f) => num(cur, f) < num(prev, f));

  // bitsOn is the bit rate of key on track t, from the increase of its
  // bytes between the track's last two frames: 0 on a stale track, null
  // (unknown) on the key's first frame here.
  function bitsOn(t, key, cur, now) {
    if (isStale(t, now)) return 0;
    if (t.prev === null || !(t.dt > 0)) return null;
    const prev = t.prev.get(key);
    if (prev === undefined) return null;
    const d = isReset(cur, prev) ? num(cur, 'bytes') : num(cur, 'bytes') - num(prev, 'bytes');
    return d * 8000 / t.dt;
  }

  // broadcasts sums, per key, what the current frames of the traffic
  // tracks say: rates over the tracks of each direction that carry the
  // key (null if any of them cannot tell), viewers over the egress ones.
  function broadcasts(now) {
    const out = new Map();
    for (const [name, dir] of TRAFFIC) {
      const t = tracks.get(name);
      if (t.frame === null) continue;
      for (const [key, cur] of t.frame) {
        let b = out.get(key);
        if (b === undefined) {
          b = { key, viewers: 0, egress: 0, ingress: 0, sent: 0 };
          out.set(key, b);
        }
        const bits = bitsOn(t, key, cur, now);
        if (dir === 'egress') {
          b.viewers += Math.max(0, num(cur, 'broadcasts') - num(cur, 'broadcasts_closed'));
          b.sent += num(cur, 'bytes');
          b.egress = b.egress === null || bits === null ? null : b.egress + bits;
        } else {
          b.ingress = b.ingress === null || bits === null ? null : b.ingress + bits;
        }
      }
    }
    return [...out.values()].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  }

  function sessions() {
    const t = tracks.get(SESSIONS);
    const out = [];
    if (t.frame === null) return out;
    for (const [root, e] of t.frame) {
      out.push({ root, live: Math.max(0, num(e, 'sessions') - num(e, 'sessions_closed')), joined: num(e, 'sessions') });
    }
    return out.sort((x, y) => (x.root < y.root ? -1 : x.root > y.root ? 1 : 0));
  }

  // --- Rendering ----------------------------------------------------------

  function cell(tr, className) {
    const td = document.createElement('td');
    if (className) td.className = className;
    tr.appendChild(td);
    return td;
  }

  function broadcastRow(key) {
    let r = rows.get(key);
    if (r !== undefined) return r;
    const tr = document.createElement('tr');
    tr.setAttribute('data-broadcast', key);
    r = { tr, name: cell(tr, 'key'), viewers: cell(tr, 'num'), ingress: cell(tr, 'num'), egress: cell(tr, 'num'), spark: cell(tr, 'spark'), sent: cell(tr, 'num') };
    r.name.textContent = key;
    r.name.title = key;
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'sparkline');
    svg.setAttribute('viewBox', '0 0 200 32');
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img');
    r.area = document.createElementNS(SVG, 'path');
    r.area.setAttribute('class', 'area');
    r.line = document.createElementNS(SVG, 'polyline');
    r.line.setAttribute('class', 'line');
    svg.append(r.area, r.line);
    r.svg = svg;
    r.spark.appendChild(svg);
    rows.set(key, r);
    return r;
  }

  function drawSparkline(r, samples) {
    const top = Math.max(...samples, 1);
    const step = 200 / (HISTORY - 1);
    const x0 = 200 - (samples.length - 1) * step;
    const pts = samples.map((v, i) => `${(x0 + i * step).toFixed(1)},${(31 - (v / top) * 28).toFixed(1)}`);
    r.line.setAttribute('points', pts.join(' '));
    r.area.setAttribute('d', samples.length > 1 ? `M${x0.toFixed(1)},32 L${pts.join(' L')} L200,32 Z` : '');
    r.svg.setAttribute('data-points', String(samples.length));
    r.svg.setAttribute('aria-label', `egress over the last ${samples.length} frames, peak ${formatBitrate(top)}`);
  }

  function setRate(td, bps) {
    td.textContent = formatBitrate(bps);
    td.classList.toggle('unknown', bps === null);
  }

  function renderBroadcasts(list, sample) {
    const body = $('broadcasts').tBodies[0];
    const shown = list.slice(0, MAX_ROWS);
    const keep = new Set(shown.map((b) => b.key));
    for (const [key, r] of rows) {
      if (!keep.has(key)) {
        r.tr.remove();
        rows.delete(key);
      }
    }
    for (const key of history.keys()) {
      if (!keep.has(key)) history.delete(key);
    }
    for (const b of shown) {
      const r = broadcastRow(b.key);
      r.tr.setAttribute('data-viewers', String(b.viewers));
      r.tr.setAttribute('data-egress-bps', attr(b.egress));
      r.tr.setAttribute('data-ingress-bps', attr(b.ingress));
      r.tr.setAttribute('data-sent', String(b.sent));
      r.viewers.textContent = String(b.viewers);
      setRate(r.ingress, b.ingress);
      setRate(r.egress, b.egress);
      r.sent.textContent = formatBytes(b.sent);
      let h = history.get(b.key);
      if (h === undefined) {
        h = [];
        history.set(b.key, h);
      }
      if (sample && b.egress !== null) {
        h.push(b.egress);
        if (h.length > HISTORY) h.shift();
      }
      drawSparkline(r, h);
      body.appendChild(r.tr); // in key order: moves rows already there
    }
    const empty = $('broadcasts-empty');
    empty.hidden = list.length > 0;
    if (list.length > MAX_ROWS) {
      empty.hidden = false;
      empty.textContent = `Showing the first ${MAX_ROWS} of ${list.length} broadcasts.`;
    } else {
      empty.textContent = 'No broadcasts right now.';
    }
  }

  function renderSessions(list) {
    const body = $('sessions').tBodies[0];
    const keep = new Set(list.map((s) => s.root));
    for (const [root, r] of sessionRows) {
      if (!keep.has(root)) {
        r.tr.remove();
        sessionRows.delete(root);
      }
    }
    const top = Math.max(1, ...list.map((s) => s.live));
    for (const s of list) {
      let r = sessionRows.get(s.root);
      if (r === undefined) {
        const tr = document.createElement('tr');
        tr.setAttribute('data-root', s.root);
        r = { tr, name: cell(tr, 'key'), live: cell(tr, 'num'), share: cell(tr, 'share'), joined: cell(tr, 'num') };
        r.name.textContent = s.root;
        r.name.title = s.root;
        const bar = document.createElement('div');
        bar.className = 'bar';
        r.bar = document.createElement('span');
        bar.appendChild(r.bar);
        r.share.appendChild(bar);
        sessionRows.set(s.root, r);
      }
      r.tr.setAttribute('data-live', String(s.live));
      r.tr.setAttribute('data-joined', String(s.joined));
      r.live.textContent = String(s.live);
      r.joined.textContent = String(s.joined);
      r.bar.style.width = `${(100 * s.live / top).toFixed(1)}%`;
      body.appendChild(r.tr);
    }
    $('sessions-empty').hidden = list.length > 0;
  }

  function renderTracks(now) {
    const body = $('tracks').tBodies[0];
    for (const t of tracks.values()) {
      let r = trackRows.get(t.name);
      if (r === undefined) {
        const tr = document.createElement('tr');
        tr.setAttribute('data-track', t.name);
        r = { tr, name: cell(tr, 'key'), status: cell(tr), frames: cell(tr, 'num'), age: cell(tr, 'num') };
        r.name.textContent = t.name;
        trackRows.set(t.name, r);
        body.appendChild(tr);
      }
      const stale = isStale(t, now);
      r.tr.setAttribute('data-status', t.status);
      r.tr.setAttribute('data-stale', String(stale));
      r.tr.setAttribute('data-frame-id', attr(t.id));
      r.tr.setAttribute('data-prev-frame-id', attr(t.prevId));
      r.tr.setAttribute('data-dt-ms', attr(t.dt));
      r.tr.setAttribute('data-frames', String(t.frames));
      r.status.textContent = (t.status === 'live' && stale ? 'quiet' : t.status) +
        (t.rejected > 0 ? ` (${t.rejected} frames rejected)` : '');
      r.tr.setAttribute('data-rejected', String(t.rejected));
      r.frames.textContent = String(t.frames);
      r.age.textContent = t.at === null ? '–' : `${((now - t.at) / 1000).toFixed(1)} s ago`;
      r.age.title = t.id === null ? '' : `event id ${t.id}`;
    }
  }

  function setCard(id, value, text) {
    const el = $(id);
    el.setAttribute('data-value', attr(value));
    el.textContent = text;
  }

  function renderConnection() {
    const list = [...tracks.values()];
    const el = $('conn');
    let state;
    let text;
    if (SOURCE === 'moq' && !moqAvailable) {
      state = 'unavailable';
      text = 'moq-lite unavailable: the demo found no @moq/lite';
    } else if (list.some((t) => t.status === 'live' || t.status === 'open')) {
      const waiting = list.some((t) => t.status === 'reconnecting' || t.status === 'connecting');
      state = waiting ? 'reconnecting' : 'live';
      text = waiting ? 'reconnecting…' : 'live';
    } else if (list.some((t) => t.status === 'ended')) {
      state = 'closed';
      text = 'stats broadcast closed, waiting for it';
    } else if (everConnected && restartTimer !== null) {
      state = 'offline';
      text = 'relay unreachable, retrying';
    } else {
      state = 'connecting';
      text = 'connecting…';
    }
    el.setAttribute('data-state', state);
    el.textContent = text;
  }

  // render redraws everything from the tracks' current frames; sample
  // adds a point to every sparkline (on each egress frame).
  function render(sample = false) {
    const now = performance.now();
    const list = broadcasts(now);
    const sess = sessions();
    renderBroadcasts(list, sample);
    renderSessions(sess);
    renderTracks(now);

    const known = (dir) => list.map((b) => b[dir]).filter((v) => v !== null);
    const sum = (xs) => xs.reduce((a, b) => a + b, 0);
    const egress = known('egress');
    const ingress = known('ingress');
    const viewers = sum(list.map((b) => b.viewers));
    const live = sum(sess.map((s) => s.live));
    setCard('sum-broadcasts', list.length, String(list.length));
    setCard('sum-viewers', viewers, String(viewers));
    setCard('sum-egress', egress.length ? sum(egress) : null, egress.length ? formatBitrate(sum(egress)) : '–');
    setCard('sum-ingress', ingress.length ? sum(ingress) : null, ingress.length ? formatBitrate(sum(ingress)) : '–');
    setCard('sum-sessions', live, String(live));
    renderConnection();
  }

  // --- Streams ------------------------------------------------------------

  function scheduleStart() {
    if (restartTimer !== null) return;
    restartTimer = setTimeout(() => {
      restartTimer = null;
      start();
    }, backoff);
    backoff = Math.min(backoff * 2, MAX_BACKOFF);
    render();
  }

  function open(t) {
    const es = new EventSource(new URL(t.name, statsBase));
    t.es = es;
    t.status = 'connecting';
    es.onopen = () => {
      if (t.es !== es) return;
      t.status = t.frame === null ? 'open' : 'live';
      render();
    };
    es.onmessage = (e) => {
      if (t.es === es) onFrame(t, e);
    };
    // The stats broadcast closed: its counts end here (a new one counts
    // from zero), so drop them and wait for it to come back.
    es.addEventListener('end', () => {
      if (t.es !== es) return;
      es.close();
      t.es = null;
      clearTrack(t);
      t.status = 'ended';
      scheduleStart();
      render();
    });
    es.onerror = () => {
      if (t.es !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        // Refused (404, 503): EventSource gives up, so start over.
        t.es = null;
        t.status = 'error';
        scheduleStart();
      } else {
        t.status = 'reconnecting'; // EventSource retries with Last-Event-ID
      }
      render();
    };
  }

  // --- moq-lite -------------------------------------------------------------

  let moqSession = null; // the session being used, or null

  async function startMoq() {
    if (!moqAvailable) {
      render();
      return;
    }
    let mod;
    try {
      mod = await import('./moq-source.js');
    } catch {
      scheduleStart();
      return;
    }
    const session = mod.subscribe({
      url: new URL('moq', document.baseURI),
      tracks: TRACKS,
      onBroadcast: (path) => {
        if (moqSession !== session) return;
        everConnected = true;
        backoff = MIN_BACKOFF;
        $('node').textContent = path;
        for (const t of tracks.values()) t.status = t.frame === null ? 'open' : 'live';
        render();
      },
      onFrame: (name, group, index, data) => {
        const t = tracks.get(name);
        if (moqSession === session && t !== undefined) onFrame(t, { data, lastEventId: `${group}.${index}` });
      },
      // The stats broadcast closed: as the end event does on the other
      // source, drop its counts and wait for it to come back.
      onEnd: (name) => {
        const t = tracks.get(name);
        if (moqSession !== session || t === undefined) return;
        clearTrack(t);
        t.status = 'ended';
        render();
      },
      onClose: () => {
        if (moqSession !== session) return;
        moqSession = null;
        for (const t of tracks.values()) {
          if (t.status !== 'ended') t.status = 'error';
        }
        scheduleStart();
        render();
      },
    });
    moqSession = session;
  }

  function markSource() {
    document.body.setAttribute('data-source', SOURCE);
    $(`source-${SOURCE}`).setAttribute('aria-current', 'page');
    if (!moqAvailable) {
      const a = $('source-moq');
      a.setAttribute('aria-disabled', 'true');
      a.title = 'needs @moq/lite: run bash .ci/install-interop, then restart the demo';
    }
  }

  async function start() {
    if (SOURCE === 'moq') {
      startMoq();
      return;
    }
    let index;
    try {
      const resp = await fetch(statsBase, { cache: 'no-store', headers: { Accept: 'application/json' } });
      if (!resp.ok) throw new Error(`stats index: ${resp.status}`);
      index = await resp.json();
    } catch {
      scheduleStart();
      return;
    }
    everConnected = true;
    backoff = MIN_BACKOFF;
    $('node').textContent = typeof index.path === 'string' ? index.path : '–';
    const offered = new Set(Array.isArray(index.tracks) ? index.tracks : []);
    for (const t of tracks.values()) {
      if (t.es === null && offered.has(t.name)) open(t);
    }
    render();
  }

  markSource();
  render();
  start();
  setInterval(render, 1000); // ages, staleness
})();
