// Sign-in bench (docs/signin.md): on loopback, with the release binaries, a tracker and two
// nodes (web/e2e/net.mjs). Prints, side by side:
//
//   1. the single-sign-on round trip a browser makes when it is signed in at the tracker and
//      has consented to the node — GET node /auth/login → tracker /oauth/authorize → node
//      /auth/callback (the node redeems the code at /oauth/token, signed) → POST node
//      /auth/session (a refresh, signed) — next to a password sign-in at the tracker's JSON
//      login (one argon2id hash), the reference;
//   2. the token endpoint's refresh grant (POST /oauth/token, public script families, each
//      worker rotating its own chain) next to the JSON refresh route it replaces for scripts
//      (POST /api/v1/auth/refresh), same store path: requests/s, p50 and p99.
//
// Run: scripts/bench-signin.sh (builds the release binaries and the web app first).
// Env: N (round trips, default 200), SECONDS (per token-endpoint run, default 10), WORKERS
// (default 16).

import { mkdtempSync, readdirSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Procs, startNet } from '../web/e2e/net.mjs';
import { nodeSignIn, trackerSession } from '../web/e2e/headless.mjs';

const N = Number(process.env.N ?? 200);
const SECS = Number(process.env.SECONDS ?? 10);
const WORKERS = Number(process.env.WORKERS ?? 16);
const PASSWORD = 'bench horse battery staple';

const dir = mkdtempSync(join(tmpdir(), 'reelnet-bench-signin-'));
const procs = new Procs(dir);

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const ms = (x) => `${x.toFixed(2)} ms`;

async function mailToken(to) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    for (const sub of ['new', 'cur']) {
      const d = join(dir, 'mail', sub);
      if (!existsSync(d)) continue;
      for (const name of readdirSync(d)) {
        const text = readFileSync(join(d, name), 'utf8').replace(/=\r?\n/g, '').replace(/=3D/gi, '=');
        if (text.includes(`To: ${to}`)) {
          const m = text.match(/\/verify\?token=([A-Za-z0-9_-]+)/);
          if (m) return m[1];
        }
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no verification mail to ${to}`);
}

try {
  const net = await startNet(procs, dir, { release: true });
  const { tracker, trackerApi } = net;
  const node = net.a.origin;
  const json = (path, body, headers = {}) =>
    fetch(`${trackerApi}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  // An account, verified.
  const email = `bench-${Date.now()}@reelnet.test`;
  await json('/api/v1/auth/register', { email, password: PASSWORD, display_name: 'Bench' });
  const vt = await mailToken(email);
  const verified = await json('/api/v1/auth/verify', { token: vt });
  if (verified.status !== 200) throw new Error(`verify: ${verified.status}`);

  // Signed in at the tracker (its pages), consented to the node once.
  const tj = await trackerSession(tracker, email, PASSWORD);

  /** One round trip from the node's /auth/login to an access token; returns ms. */
  const roundTrip = async () => {
    const t = performance.now();
    await nodeSignIn(tracker, tj, node);
    return performance.now() - t;
  };
  await roundTrip(); // consents
  for (let i = 0; i < 10; i++) await roundTrip(); // warm up
  const sso = [];
  for (let i = 0; i < N; i++) sso.push(await roundTrip());

  const password = [];
  const passwordN = Math.min(N, 50);
  for (let i = 0; i < passwordN + 5; i++) {
    const t = performance.now();
    const r = await json('/api/v1/auth/login', { email, password: PASSWORD });
    if (r.status !== 200) throw new Error(`JSON login: ${r.status}`);
    await r.arrayBuffer();
    if (i >= 5) password.push(performance.now() - t);
  }

  // Token endpoint: WORKERS chains each.
  const chains = async () => {
    const out = [];
    for (let i = 0; i < WORKERS; i++) {
      const r = await json('/api/v1/auth/login', { email, password: PASSWORD });
      out.push((await r.json()).refresh_token);
    }
    return out;
  };
  const oauthRefresh = async (token) => {
    const r = await fetch(`${trackerApi}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token }).toString(),
    });
    const b = await r.json();
    if (r.status !== 200) throw new Error(`/oauth/token: ${r.status} ${JSON.stringify(b)}`);
    return b.refresh_token;
  };
  const jsonRefresh = async (token) => {
    const r = await json('/api/v1/auth/refresh', { refresh_token: token });
    const b = await r.json();
    if (r.status !== 200) throw new Error(`/api/v1/auth/refresh: ${r.status} ${JSON.stringify(b)}`);
    return b.refresh_token;
  };
  const load = async (step) => {
    const tokens = await chains();
    const lat = [];
    const end = performance.now() + SECS * 1000;
    await Promise.all(
      tokens.map(async (tok) => {
        let t = tok;
        while (performance.now() < end) {
          const s = performance.now();
          t = await step(t);
          lat.push(performance.now() - s);
        }
      }),
    );
    return { rps: lat.length / SECS, p50: pct(lat, 50), p99: pct(lat, 99) };
  };
  const runs = { oauth: [], json: [] };
  for (let round = 0; round < 2; round++) {
    runs.oauth.push(await load(oauthRefresh));
    runs.json.push(await load(jsonRefresh));
  }
  const best = (rs) => rs.reduce((a, b) => (b.rps > a.rps ? b : a));

  console.log('\nsign-in round trip on loopback (release build)');
  console.log(`  single sign-on, node /auth/login → access token   p50 ${ms(pct(sso, 50))}   p99 ${ms(pct(sso, 99))}   (n=${N})`);
  console.log(`  reference: password sign-in, JSON login (argon2id) p50 ${ms(pct(password, 50))}   p99 ${ms(pct(password, 99))}   (n=${passwordN})`);
  const o = best(runs.oauth);
  const j = best(runs.json);
  console.log(`\nrefresh grants, ${WORKERS} workers, ${SECS} s, best of 2 (alternating)`);
  console.log(`  POST /oauth/token            ${o.rps.toFixed(0)} req/s   p50 ${ms(o.p50)}   p99 ${ms(o.p99)}`);
  console.log(`  reference: /api/v1/auth/refresh ${j.rps.toFixed(0)} req/s   p50 ${ms(j.p50)}   p99 ${ms(j.p99)}   ratio ${(o.rps / j.rps).toFixed(2)}×`);
  procs.stop();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
} catch (e) {
  console.error(`bench-signin failed: ${e.stack ?? e}; logs in ${dir}`);
  procs.stop({ writeLogs: true });
  process.exit(1);
}
