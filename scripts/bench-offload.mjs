// Origin offload (issue 19 item 5), run by scripts/bench-offload.sh on a testnet it started
// (testnet/up.sh + testnet/demo.sh). Five viewers, each on a different node, watch the same
// movie with staggered starts: plain HTTP players that sign in through their node (single
// sign-on, web/e2e/headless.mjs), ask /api/v1/movies/{id}/play, pick the best rendition the
// master offers and fetch init + segments at PACE x real time with BUFFER_SECS of buffer,
// like hls.js. Before and after, every node's /metrics is read; the script prints per node
// what it served to viewers (from its disk or hot cache, or fetched from peers), what it
// uploaded to other nodes and what it fetched, and the origin's share of all bytes the
// viewers got.
//
// Env: TESTNET_DIR (default .testnet), NODES (default 6), VIEWER_NODES (default "2 3 4 5 6"),
// STAGGER_SECS (default 8), PACE (default 4), BUFFER_SECS (default 30), TARGET_SHARE
// (default 0.25). Exits 1 when a viewer failed, 0 otherwise (the verdict is printed, PASS or
// MISS).

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { nodeSignIn, trackerSession } from '../web/e2e/headless.mjs';

const dir = resolve(process.env.TESTNET_DIR ?? '.testnet');
const NODES = Number(process.env.NODES ?? 6);
const VIEWERS = (process.env.VIEWER_NODES ?? '2 3 4 5 6').split(/\s+/).filter(Boolean).map(Number);
const STAGGER = Number(process.env.STAGGER_SECS ?? 8);
const PACE = Number(process.env.PACE ?? 4);
const BUFFER = Number(process.env.BUFFER_SECS ?? 30);
const TARGET = Number(process.env.TARGET_SHARE ?? 0.25);

const env = Object.fromEntries(
  readFileSync(join(dir, 'demo.env'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('='))
    .map((l) => {
      const i = l.indexOf('=');
      return [l.slice(0, i), l.slice(i + 1).replace(/^"|"$/g, '')];
    }),
);
// The testnet's tracker names itself http://localhost:PORT (its sign-in pages check that
// origin); DEMO_TRACKER is the same server at 127.0.0.1.
const tracker = env.DEMO_TRACKER.replace('//127.0.0.1:', '//localhost:');
const movie = env.DEMO_MOVIES.split(' ')[0];
const gateway = (i) => `http://127.0.0.1:${8080 + i}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const MiB = (b) => (b / 1048576).toFixed(1);

/** The node's counters that matter here, from its /metrics text. */
async function counters(i) {
  const text = await (await fetch(`${gateway(i)}/metrics`)).text();
  const read = (name, label) => {
    const re = new RegExp(`^${name}\\{(?:source|path)="${label}"\\} (\\d+(?:\\.\\d+)?(?:e[+-]?\\d+)?)$`, 'm');
    const m = text.match(re);
    return m ? Number(m[1]) : 0;
  };
  return {
    local: read('reelnet_segment_bytes_served_total', 'local'),
    peer: read('reelnet_segment_bytes_served_total', 'peer'),
    upQuic: read('reelnet_segment_bytes_uploaded_total', 'quic'),
    upP2p: read('reelnet_segment_bytes_uploaded_total', 'libp2p_direct') + read('reelnet_segment_bytes_uploaded_total', 'libp2p_relayed'),
    fetched:
      read('reelnet_segment_fetch_bytes_total', 'quic') +
      read('reelnet_segment_fetch_bytes_total', 'libp2p_direct') +
      read('reelnet_segment_fetch_bytes_total', 'libp2p_relayed'),
  };
}

/** What node i holds of the movie and whether it is the movie's origin (admin API). */
async function role(i, origin) {
  const admin = JSON.parse(readFileSync(join(dir, `node${i}`, 'admin.json'), 'utf8'));
  const st = await (await fetch(`${admin.url}/admin/v1/status`, { headers: { authorization: `Bearer ${admin.token}` } })).json();
  const m = (st.manifests ?? []).find((x) => x.movie_id === movie || x.movie === movie);
  const held = m ? `${m.held_segments}/${m.total_segments}` : '0';
  const id = st.node_id ?? st.node ?? '';
  return { held, isOrigin: origin !== undefined && id === origin, id, origin: m?.origin };
}

/** Parses an HLS playlist's URIs (with EXTINF durations and the init map). */
function parsePlaylist(text, base) {
  const lines = text.split('\n').map((l) => l.trim());
  const out = { variants: [], init: null, segments: [] };
  let dur = 0;
  let bw = 0;
  for (let k = 0; k < lines.length; k++) {
    const l = lines[k];
    if (l.startsWith('#EXT-X-STREAM-INF:')) {
      bw = Number(l.match(/BANDWIDTH=(\d+)/)?.[1] ?? 0);
      const uri = lines[k + 1];
      out.variants.push({ bw, url: new URL(uri, base).href });
    } else if (l.startsWith('#EXT-X-MAP:')) {
      out.init = new URL(l.match(/URI="([^"]+)"/)[1], base).href;
    } else if (l.startsWith('#EXTINF:')) {
      dur = Number(l.slice(8).split(',')[0]);
    } else if (l && !l.startsWith('#') && dur > 0) {
      out.segments.push({ url: new URL(l, base).href, dur });
      dur = 0;
    }
  }
  return out;
}

async function body(url) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(url);
    if (res.ok) return Buffer.from(await res.arrayBuffer());
    await res.arrayBuffer().catch(() => {});
    // hls.js retries a failed fragment a few times before it gives up.
    if (attempt >= 5) throw new Error(`${res.status} ${url}`);
    await sleep(500 * (attempt + 1));
  }
}

/** One viewer on node i: plays the whole movie at PACE x real time. */
async function viewer(i, trackerJar) {
  const node = gateway(i);
  const { accessToken } = await nodeSignIn(tracker, trackerJar, node);
  const play = await fetch(`${node}/api/v1/movies/${movie}/play`, { headers: { authorization: `Bearer ${accessToken}` } });
  if (play.status !== 200) throw new Error(`play on node ${i}: ${play.status} ${await play.text()}`);
  const { master_url } = await play.json();
  const masterUrl = new URL(master_url, node).href;
  const master = parsePlaylist((await body(masterUrl)).toString('utf8'), masterUrl);
  const best = master.variants.sort((a, b) => b.bw - a.bw)[0];
  if (!best) throw new Error(`node ${i}: the master lists no variant`);
  const media = parsePlaylist((await body(best.url)).toString('utf8'), best.url);
  let bytes = 0;
  if (media.init) bytes += (await body(media.init)).length;
  const t0 = performance.now();
  let mediaTime = 0;
  let stalls = 0;
  let longest = 0;
  for (const seg of media.segments) {
    // Keep at most BUFFER seconds ahead of the playhead.
    const playhead = ((performance.now() - t0) / 1000) * PACE;
    if (mediaTime - playhead > BUFFER) await sleep(((mediaTime - playhead - BUFFER) / PACE) * 1000);
    const asked = performance.now();
    bytes += (await body(seg.url)).length;
    const late = ((performance.now() - t0) / 1000) * PACE - mediaTime;
    if (mediaTime > 0 && late > 0 && performance.now() - asked > 0) {
      // The playhead reached this segment's start before it arrived: a stall (in media time).
      stalls++;
      longest = Math.max(longest, late / PACE);
    }
    mediaTime += seg.dur;
  }
  return { node: i, bytes, segments: media.segments.length, rendition: best.bw, stalls, longest };
}

const nodes = Array.from({ length: NODES }, (_, k) => k + 1);
const tj = await trackerSession(tracker, env.DEMO_EMAIL, env.DEMO_PASSWORD);
// The movie's origin: the node whose status lists the movie with itself as origin.
let origin;
for (const i of nodes) {
  const r = await role(i, undefined);
  if (r.origin && r.origin === r.id) origin = r.id;
}
const roles = {};
for (const i of nodes) roles[i] = await role(i, origin);
const before = {};
for (const i of nodes) before[i] = await counters(i);

console.log(`movie ${movie}; viewers on nodes ${VIEWERS.join(', ')}, ${STAGGER} s apart, at ${PACE}x real time, ${BUFFER} s buffer`);
const started = performance.now();
const results = await Promise.allSettled(
  VIEWERS.map(async (i, k) => {
    await sleep(k * STAGGER * 1000);
    return viewer(i, tj);
  }),
);
const secs = (performance.now() - started) / 1000;
const after = {};
for (const i of nodes) after[i] = await counters(i);

let failed = 0;
for (const r of results) {
  if (r.status === 'rejected') {
    failed++;
    console.log(`viewer FAILED: ${r.reason?.message ?? r.reason}`);
  } else {
    const v = r.value;
    console.log(`viewer on node ${v.node}: ${v.segments} segments, ${MiB(v.bytes)} MiB of the ${Math.round(v.rendition / 1000)} kbit/s rendition, ${v.stalls} late segments (longest ${v.longest.toFixed(2)} s)`);
  }
}

const d = (i, k) => after[i][k] - before[i][k];
let toViewers = 0;
let originBytes = 0;
console.log('');
console.log('| node | role | holds | to viewers from disk/cache | to viewers fetched from peers | uploaded to nodes | fetched from nodes |');
console.log('|---|---|---|---|---|---|---|');
for (const i of nodes) {
  const served = d(i, 'local') + d(i, 'peer');
  const up = d(i, 'upQuic') + d(i, 'upP2p');
  toViewers += served;
  const r = roles[i];
  const label = r.isOrigin ? 'origin' : r.held !== '0' && r.held.split('/')[0] === r.held.split('/')[1] ? 'replica' : 'viewer cache';
  if (r.isOrigin) originBytes += served + up;
  console.log(`| ${i} | ${label}${VIEWERS.includes(i) ? ' + viewer' : ''} | ${r.held} | ${MiB(d(i, 'local'))} MiB | ${MiB(d(i, 'peer'))} MiB | ${MiB(up)} MiB | ${MiB(d(i, 'fetched'))} MiB |`);
}
const share = toViewers > 0 ? originBytes / toViewers : 1;
console.log('');
console.log(`bytes the viewers got: ${MiB(toViewers)} MiB in ${secs.toFixed(0)} s; the origin served ${MiB(originBytes)} MiB of them = ${(share * 100).toFixed(1)} % (target <= ${TARGET * 100} %): ${origin === undefined ? 'NO ORIGIN FOUND' : share <= TARGET ? 'PASS' : 'MISS'}`);
process.exit(failed > 0 || origin === undefined ? 1 : 0);
