// A headless hls.js-compatible viewer for the chaos soak (scripts/soak.sh). No browser, no
// dependencies: Node's fetch and a small WebSocket client.
//
//   node web/e2e/soakplayer.mjs CONFIG.json
//
// CONFIG (written by scripts/soak.sh): { name, node, tracker, node_id, email, password,
// movies: [ids], seed, stop_file, out, party: "host"|"guest"|null, room_file, log }
//
// What it does, like the web app with hls.js defaults:
// - signs in (the tracker's JSON login, as scripts do; tokens bound to the node) and
//   asks the node for a playback URL (`GET /api/v1/movies/{id}/play`);
// - loads master → variant playlist (and the default alternate audio, when the master names
//   one) → init segments → media segments at real-time pace: the buffer fills up to 30 s
//   ahead (hls.js `maxBufferLength`), playback starts once one segment is buffered, stalls
//   when the buffer runs dry and resumes once a segment is buffered again; a stall that is not
//   a start or a seek is a rebuffer (its length is recorded);
// - retries like hls.js's default `fragLoadPolicy` (error: 6 retries, 1 s doubling to 8 s;
//   timeout: 10 s to first byte, 4 retries) and `playlistLoadPolicy` (2 retries) /
//   `manifestLoadPolicy` (1 retry); a load that runs out of retries is a fatal error (the
//   viewer then starts the movie again, as the web app's "try again" does, and it is counted);
//   401/403 on a playback URL gets a fresh playback token (not an error);
// - switches rendition on measured throughput (the highest whose BANDWIDTH fits 70 % of it);
// - seeks now and then (seeded), loops at the end of the movie;
// - saves progress every 5 s of playback (`PUT /api/v1/me/progress/{id}`, stamped with the
//   client clock) and remembers every acknowledged write; at the end (stop file says
//   "verify") reads each movie's progress back and checks the newest acknowledged write is
//   what the network holds;
// - party "host" creates a watch-party room through its node and writes its id to room_file;
//   "guest" joins it from another node; both keep the room's WebSocket open (reconnecting
//   like the web app) and record every frame's arrival, and the host sends a seek now and then.
// Writes CONFIG.out (JSON) when it stops.

import { readFileSync, writeFileSync, existsSync, appendFileSync } from 'node:fs';
import http from 'node:http';
import crypto from 'node:crypto';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const NODE = cfg.node.replace(/\/$/, '');
const TRACKER = cfg.tracker.replace(/\/$/, '');
const t0 = Date.now();
const now = () => (Date.now() - t0) / 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => {
  const line = `${new Date().toISOString()} ${cfg.name} ${msg}\n`;
  if (cfg.log) appendFileSync(cfg.log, line);
};

// Seeded PRNG (mulberry32) so seeks and their targets repeat with the seed.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(Number(cfg.seed) * 7919 + [...cfg.name].reduce((a, c) => a + c.charCodeAt(0), 0));

const stats = {
  name: cfg.name,
  node: NODE,
  started_at: Date.now(),
  stalls: [], // {at, secs, kind: 'start'|'seek'|'rebuffer'}
  fatal: [], // {at, what}
  retries: 0,
  token_renewals: 0,
  segments: 0,
  bytes: 0,
  seeks: 0,
  loops: 0,
  played_secs: 0,
  level_switches: 0,
  progress: { acked: [], failed: 0, readback: null },
  party: null,
};

function stopRequested() {
  if (!existsSync(cfg.stop_file)) return null;
  return readFileSync(cfg.stop_file, 'utf8').trim() || 'stop';
}

// ---- session --------------------------------------------------------------------------------
let tokens = null; // {access, refresh, expires}
async function api(path, opts = {}, { retry = true } = {}) {
  for (let attempt = 0; ; attempt++) {
    if (!tokens || Date.now() > tokens.expires - 30_000) await signIn();
    let res;
    try {
      res = await fetch(`${NODE}/api/v1${path}`, {
        ...opts,
        headers: { authorization: `Bearer ${tokens.access}`, 'content-type': 'application/json', ...(opts.headers ?? {}) },
        signal: AbortSignal.timeout(10_000),
      });
    } catch (e) {
      if (!retry || attempt >= 2) throw e;
      await sleep(1000);
      continue;
    }
    if (res.status === 401 && attempt < 2) {
      tokens = null;
      continue;
    }
    return res;
  }
}
async function signIn() {
  for (let attempt = 0; ; attempt++) {
    try {
      if (tokens?.refresh) {
        const r = await fetch(`${TRACKER}/api/v1/auth/refresh`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ refresh_token: tokens.refresh }),
          signal: AbortSignal.timeout(10_000),
        });
        if (r.ok) {
          const b = await r.json();
          tokens = { access: b.access_token, refresh: b.refresh_token, expires: Date.now() + b.expires_in * 1000 };
          return;
        }
      }
      const r = await fetch(`${TRACKER}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: cfg.email, password: cfg.password, resource: cfg.node_id }),
        signal: AbortSignal.timeout(15_000),
      });
      const b = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(`login ${r.status} ${JSON.stringify(b)}`);
      tokens = { access: b.access_token, refresh: b.refresh_token, expires: Date.now() + b.expires_in * 1000 };
      return;
    } catch (e) {
      if (attempt >= 60 || stopRequested()) throw e;
      log(`sign-in failed (${e.message}); retrying`);
      await sleep(1000);
    }
  }
}

// ---- loading with hls.js's retry policies -----------------------------------------------------
class Fatal extends Error {}
class Unauthorised extends Error {}
const POLICY = {
  frag: { ttfb: 10_000, load: 120_000, timeoutRetries: 4, errorRetries: 6, delay: 1000, maxDelay: 8000 },
  playlist: { ttfb: 10_000, load: 20_000, timeoutRetries: 2, errorRetries: 2, delay: 1000, maxDelay: 8000 },
  manifest: { ttfb: 10_000, load: 20_000, timeoutRetries: 2, errorRetries: 1, delay: 1000, maxDelay: 8000 },
};
async function load(url, kind, binary) {
  const p = POLICY[kind];
  let timeouts = 0;
  let errors = 0;
  for (;;) {
    const ctl = new AbortController();
    let timer = setTimeout(() => ctl.abort(new Error('ttfb')), p.ttfb);
    let failure;
    try {
      const res = await fetch(url, { signal: ctl.signal });
      clearTimeout(timer);
      timer = setTimeout(() => ctl.abort(new Error('load')), p.load);
      if (res.status === 401 || res.status === 403) {
        await res.arrayBuffer().catch(() => {});
        throw new Unauthorised(`${res.status}`);
      }
      if (!res.ok) {
        await res.arrayBuffer().catch(() => {});
        failure = { timeout: false, what: `HTTP ${res.status}` };
      } else {
        const body = binary ? Buffer.from(await res.arrayBuffer()) : await res.text();
        clearTimeout(timer);
        return body;
      }
    } catch (e) {
      clearTimeout(timer);
      if (e instanceof Unauthorised) throw e;
      const timedOut = ctl.signal.aborted;
      failure = { timeout: timedOut, what: timedOut ? `timeout (${ctl.signal.reason?.message})` : `${e.cause?.code ?? e.message}` };
    }
    stats.retries += 1;
    if (failure.timeout) {
      if (++timeouts > p.timeoutRetries) throw new Fatal(`${kind} ${failure.what} after ${p.timeoutRetries} retries`);
    } else {
      if (++errors > p.errorRetries) throw new Fatal(`${kind} ${failure.what} after ${p.errorRetries} retries`);
      await sleep(Math.min(p.maxDelay, p.delay * 2 ** (errors - 1)));
    }
    if (stopRequested()) throw new Fatal('stopped');
  }
}

// ---- playlists -------------------------------------------------------------------------------
function attrs(line) {
  const out = {};
  for (const m of line.matchAll(/([A-Z0-9-]+)=("[^"]*"|[^,]*)/g)) out[m[1]] = m[2].replace(/^"|"$/g, '');
  return out;
}
function parseMaster(text, base) {
  const lines = text.split('\n').map((l) => l.trim());
  const variants = [];
  let audio = null;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith('#EXT-X-STREAM-INF:')) {
      const a = attrs(lines[i]);
      variants.push({ bandwidth: Number(a.BANDWIDTH ?? 0), audio: a.AUDIO, url: new URL(lines[i + 1], base).href });
    } else if (lines[i].startsWith('#EXT-X-MEDIA:')) {
      const a = attrs(lines[i]);
      if (a.TYPE === 'AUDIO' && a.URI && (a.DEFAULT === 'YES' || !audio)) audio = new URL(a.URI, base).href;
    }
  }
  variants.sort((x, y) => x.bandwidth - y.bandwidth);
  return { variants, audio };
}
function parseMedia(text, base) {
  const segs = [];
  let init = null;
  let dur = 0;
  let t = 0;
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (line.startsWith('#EXT-X-MAP:')) init = new URL(attrs(line).URI, base).href;
    else if (line.startsWith('#EXTINF:')) dur = parseFloat(line.slice(8));
    else if (line && !line.startsWith('#')) {
      segs.push({ start: t, end: t + dur, url: new URL(line, base).href });
      t += dur;
    }
  }
  return { init, segs, duration: t, ended: text.includes('#EXT-X-ENDLIST') };
}

// ---- one movie's playback ------------------------------------------------------------------
const MAX_BUFFER = 30; // hls.js maxBufferLength
const PROGRESS_EVERY = 5;

async function openMovie(movie) {
  const r = await api(`/movies/${encodeURIComponent(movie)}/play`);
  if (!r.ok) throw new Fatal(`play ${movie}: ${r.status} ${await r.text()}`);
  const b = await r.json();
  const masterUrl = new URL(b.url ?? b.master_url ?? b.playlist_url, NODE).href;
  const master = parseMaster(await load(masterUrl, 'manifest', false), masterUrl);
  if (!master.variants.length) throw new Fatal(`no variants in ${masterUrl}`);
  const tracks = async (url) => parseMedia(await load(url, 'playlist', false), url);
  const levels = await Promise.all(master.variants.map((v) => tracks(v.url)));
  const audio = master.audio ? await tracks(master.audio) : null;
  return { movie, master, levels, audio, duration: levels[0].duration };
}

async function play(movie, secondsWanted, deadline) {
  let m = await openMovie(movie);
  let level = 0;
  let bw = 0; // bits/s estimate
  const inits = new Set();
  let pos = 0;
  let bufEnd = 0; // media time buffered up to (both tracks)
  let vEnd = 0;
  let aEnd = 0;
  let playing = false;
  let stall = { at: now(), kind: 'start' };
  let lastTick = now();
  let nextSeek = now() + 15 + rand() * 30;
  let nextProgress = PROGRESS_EVERY;
  let sinceProgress = 0;
  const want = now() + secondsWanted;

  // Loader: keeps the buffer filled, one request at a time per track (hls.js loads
  // fragments one at a time per stream controller).
  let generation = 0;
  let loaderError = null;
  const loader = async (gen) => {
    while (gen === generation && !loaderError) {
      const ahead = Math.min(vEnd, m.audio ? aEnd : vEnd) - pos;
      if (ahead >= MAX_BUFFER || Math.min(vEnd, m.audio ? aEnd : vEnd) >= m.duration - 0.01) {
        await sleep(100);
        if (stopRequested() || now() > deadline) return;
        continue;
      }
      const track = m.audio && aEnd < vEnd ? 'audio' : 'video';
      const pl = track === 'audio' ? m.audio : m.levels[level];
      const from = track === 'audio' ? aEnd : vEnd;
      const seg = pl.segs.find((s) => s.end > from + 0.001);
      if (!seg && pl.ended) {
        // This track ends (a little) before the other: nothing more to buffer for it.
        if (track === 'audio') aEnd = Math.max(aEnd, m.duration);
        else vEnd = Math.max(vEnd, m.duration);
        continue;
      }
      if (!seg) {
        // An EVENT playlist not yet complete: reload it.
        await sleep(2000);
        const url = track === 'audio' ? m.master.audio : m.master.variants[level].url;
        const fresh = parseMedia(await load(url, 'playlist', false), url);
        if (track === 'audio') m.audio = fresh;
        else m.levels[level] = fresh;
        continue;
      }
      try {
        if (pl.init && !inits.has(pl.init)) {
          await load(pl.init, 'frag', true);
          inits.add(pl.init);
        }
        const t = performance.now();
        const body = await load(seg.url, 'frag', true);
        const secs = (performance.now() - t) / 1000;
        if (gen !== generation) return;
        stats.segments += 1;
        stats.bytes += body.length;
        if (track === 'video') {
          const sample = (body.length * 8) / Math.max(secs, 0.001);
          bw = bw === 0 ? sample : 0.7 * bw + 0.3 * sample;
          vEnd = seg.end;
          let next = 0;
          for (let i = 0; i < m.master.variants.length; i++) if (m.master.variants[i].bandwidth <= bw * 0.7) next = i;
          if (next !== level) {
            level = next;
            stats.level_switches += 1;
          }
        } else aEnd = seg.end;
      } catch (e) {
        if (e instanceof Unauthorised) {
          // The playback token expired: a fresh one (same movie), then go on.
          stats.token_renewals += 1;
          const fresh = await openMovie(movie);
          m = { ...fresh };
          continue;
        }
        loaderError = e;
        return;
      }
    }
  };
  let loading = loader(generation);

  const seekTo = async (target) => {
    generation += 1;
    await loading.catch(() => {});
    pos = target;
    const seg = m.levels[level].segs.find((s) => s.end > target) ?? m.levels[level].segs[0];
    vEnd = seg.start;
    if (m.audio) {
      const a = m.audio.segs.find((s) => s.end > target) ?? m.audio.segs[0];
      aEnd = a.start;
    }
    pos = Math.max(seg.start, m.audio ? aEnd : seg.start, target);
    if (playing) stall = { at: now(), kind: 'seek' };
    playing = false;
    loading = loader(generation);
  };

  while (now() < want && now() < deadline && !stopRequested()) {
    await sleep(100);
    const t = now();
    const dt = t - lastTick;
    lastTick = t;
    if (loaderError) throw loaderError;
    bufEnd = Math.min(vEnd, m.audio ? aEnd : vEnd);
    if (playing) {
      const step = Math.min(dt, Math.max(0, bufEnd - pos));
      pos += step;
      stats.played_secs += step;
      sinceProgress += step;
      if (pos >= m.duration - 0.05) {
        stats.loops += 1;
        await seekTo(0);
        continue;
      }
      if (step < dt - 0.001) {
        playing = false;
        stall = { at: t, kind: 'rebuffer' };
        log(`rebuffer at ${pos.toFixed(1)} s`);
      }
    } else {
      const segLen = (m.levels[level].segs.find((s) => s.end > pos) ?? { start: 0, end: 2 });
      const need = Math.min(segLen.end - segLen.start, m.duration - pos - 0.01);
      if (bufEnd - pos >= need) {
        playing = true;
        const secs = t - stall.at;
        stats.stalls.push({ at: (stall.at * 1000 + t0), secs, kind: stall.kind });
        if (stall.kind === 'rebuffer') log(`resumed after ${secs.toFixed(2)} s`);
      }
    }
    if (sinceProgress >= PROGRESS_EVERY) {
      sinceProgress = 0;
      void saveProgress(movie, pos, m.duration);
    }
    if (playing && t >= nextSeek) {
      nextSeek = t + 20 + rand() * 40;
      stats.seeks += 1;
      const target = Math.floor(rand() * Math.max(1, m.duration - 10));
      if (cfg.party === 'host') partySend({ type: 'seek', position: target });
      await seekTo(target);
    }
  }
  generation += 1;
  if (!playing && stall.kind === 'rebuffer') {
    // Still stalled when the soak ends: count what it lasted so far.
    stats.stalls.push({ at: stall.at * 1000 + t0, secs: now() - stall.at, kind: 'rebuffer', open: true });
  }
  await loading.catch(() => {});
}

// ---- progress --------------------------------------------------------------------------------
async function saveProgress(movie, position, duration) {
  const body = { position_s: Math.max(0, Math.min(position, duration)), duration_s: duration, timestamp_ms: Date.now() };
  try {
    const r = await api(`/me/progress/${encodeURIComponent(movie)}`, { method: 'PUT', body: JSON.stringify(body) }, { retry: false });
    if (r.ok) {
      const view = await r.json().catch(() => ({}));
      stats.progress.acked.push({ movie, ...body, acked_at: Date.now(), applied: view.applied ?? null });
    } else {
      await r.text().catch(() => {});
      stats.progress.failed += 1;
    }
  } catch {
    stats.progress.failed += 1;
  }
}

async function readBack() {
  const newest = new Map();
  for (const w of stats.progress.acked) {
    const cur = newest.get(w.movie);
    if (!cur || w.timestamp_ms > cur.timestamp_ms) newest.set(w.movie, w);
  }
  const out = { checked: stats.progress.acked.length, movies: newest.size, lost: [], errors: [] };
  for (const [movie, w] of newest) {
    let got = null;
    for (let attempt = 0; attempt < 30 && !got; attempt++) {
      try {
        const r = await api(`/me/progress/${encodeURIComponent(movie)}`);
        if (r.ok) got = await r.json();
        else await r.text();
      } catch {
        /* retried */
      }
      if (!got) await sleep(1000);
    }
    if (!got) {
      out.errors.push({ movie, error: 'could not read progress back' });
      continue;
    }
    const pos = got.position_s ?? got.position;
    if (Math.abs(pos - w.position_s) > 0.01) out.lost.push({ movie, want: w, got });
  }
  stats.progress.readback = out;
}

// ---- watch party -----------------------------------------------------------------------------
let partyWs = null;
function wsConnect(url, onText, onClose) {
  const u = new URL(url);
  const key = crypto.randomBytes(16).toString('base64');
  const req = http.request({
    host: u.hostname,
    port: u.port,
    path: u.pathname + u.search,
    headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': key, origin: NODE },
  });
  const conn = { open: false, socket: null, send: () => {} };
  req.on('upgrade', (res, socket, head) => {
    conn.open = true;
    conn.socket = socket;
    // Bytes that came with the handshake's response (the server's first frame, often).
    let buf = Buffer.alloc(0);
    if (head?.length) setImmediate(() => socket.emit('data', Buffer.alloc(0)));
    conn.send = (text) => {
      const payload = Buffer.from(text);
      const mask = crypto.randomBytes(4);
      let head;
      if (payload.length < 126) head = Buffer.from([0x81, 0x80 | payload.length]);
      else {
        head = Buffer.alloc(4);
        head[0] = 0x81;
        head[1] = 0x80 | 126;
        head.writeUInt16BE(payload.length, 2);
      }
      const masked = Buffer.alloc(payload.length);
      for (let i = 0; i < payload.length; i++) masked[i] = payload[i] ^ mask[i % 4];
      socket.write(Buffer.concat([head, mask, masked]));
    };
    if (head?.length) buf = Buffer.from(head);
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (buf.length < 2) return;
        const op = buf[0] & 0x0f;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (buf.length < off + len) return;
        const payload = buf.subarray(off, off + len);
        buf = buf.subarray(off + len);
        if (op === 1) onText(payload.toString());
        else if (op === 8) socket.end();
        else if (op === 9) {
          const mask = crypto.randomBytes(4);
          const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
          socket.write(Buffer.concat([Buffer.from([0x8a, 0x80 | payload.length]), mask, masked]));
        }
      }
    });
    socket.on('close', () => onClose());
    socket.on('error', () => socket.destroy());
  });
  req.on('response', (res) => {
    res.resume();
    onClose(`HTTP ${res.statusCode}`);
  });
  req.on('error', () => onClose());
  req.setTimeout(10_000, () => req.destroy());
  req.end();
  return conn;
}

function partySend(frame) {
  if (partyWs?.open) partyWs.send(JSON.stringify(frame));
}

async function party(deadline) {
  const p = { role: cfg.party, room: null, frames: [], connects: [], closes: [], seeks_sent: 0, state_frames: 0 };
  stats.party = p;
  if (cfg.party === 'host') {
    for (;;) {
      const r = await api('/rooms', { method: 'POST', body: JSON.stringify({ movie_id: cfg.movies[0], anyone_can_control: false }) }).catch((e) => ({ ok: false, status: e.message, text: async () => '' }));
      if (r.ok) {
        p.room = (await r.json()).id;
        writeFileSync(cfg.room_file, p.room);
        break;
      }
      log(`creating the room failed: ${r.status} ${await r.text()}`);
      if (now() > deadline || stopRequested()) return;
      await sleep(1000);
    }
  } else {
    while (!existsSync(cfg.room_file) || !readFileSync(cfg.room_file, 'utf8').trim()) {
      if (now() > deadline || stopRequested()) return;
      await sleep(200);
    }
    p.room = readFileSync(cfg.room_file, 'utf8').trim();
  }
  let attempt = 0;
  let pongs = 0;
  while (now() < deadline && !stopRequested()) {
    if (!tokens || Date.now() > tokens.expires - 30_000) await signIn().catch(() => {});
    const proto = NODE.replace(/^http/, 'ws');
    const closed = new Promise((resolve) => {
      partyWs = wsConnect(`${proto}/api/v1/rooms/${encodeURIComponent(p.room)}/ws?access_token=${encodeURIComponent(tokens?.access ?? '')}`, (text) => {
        let f;
        try {
          f = JSON.parse(text);
        } catch {
          return;
        }
        if (f.type === 'welcome') {
          attempt = 0;
          pongs = 0;
          p.connects.push(Date.now());
        }
        if (f.type === 'pong') pongs += 1;
        if (f.type === 'state') p.state_frames += 1;
        p.frames.push([Date.now(), f.type]);
      }, (why) => resolve(why));
    });
    // Pings every second for the first 8 pongs, every 3 s after (RoomConnection).
    let open = true;
    closed.then(() => (open = false));
    while (open && now() < deadline && !stopRequested()) {
      partySend({ type: 'ping', t0: Date.now() });
      if (cfg.party === 'host' && rand() < 0.1) {
        partySend({ type: 'play' });
      }
      await Promise.race([sleep(pongs < 8 ? 1000 : 3000), closed]);
    }
    if (open) {
      partyWs.socket?.end();
      break;
    }
    const why = await closed;
    p.closes.push([Date.now(), why ?? 'closed']);
    await sleep(Math.min(5000, 250 * 2 ** attempt));
    attempt += 1;
  }
  // Keep the frame log small: arrival times only matter around faults.
  p.frame_count = p.frames.length;
}

// ---- main ------------------------------------------------------------------------------------
async function main() {
  const deadline = now() + Number(cfg.max_secs ?? 3600);
  await signIn();
  log(`signed in as ${cfg.email} (token for ${cfg.node_id.slice(0, 12)}…)`);
  const partyDone = cfg.party ? party(deadline).catch((e) => log(`party: ${e.message}`)) : null;
  let k = 0;
  while (!stopRequested() && now() < deadline) {
    const movie = cfg.movies[k % cfg.movies.length];
    k += 1;
    try {
      await play(movie, 1e9, deadline);
    } catch (e) {
      if (stopRequested()) break;
      stats.fatal.push({ at: Date.now(), what: `${e.message}` });
      log(`FATAL: ${e.message}; starting the movie again`);
      await sleep(1000);
      k -= 1;
    }
  }
  // Wait for "verify" (the faults are over and healed), then read progress back.
  while (stopRequested() !== 'verify') await sleep(200);
  await sleep(500);
  await readBack();
  if (partyDone) await partyDone;
  stats.ended_at = Date.now();
  writeFileSync(cfg.out, JSON.stringify(stats));
  log('done');
  process.exit(0);
}

main().catch((e) => {
  stats.crashed = String(e?.stack ?? e);
  log(`crashed: ${stats.crashed}`);
  writeFileSync(cfg.out, JSON.stringify(stats));
  process.exit(1);
});
