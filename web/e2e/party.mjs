// End-to-end watch-party test: a real testnet (tracker, SMTP sink, 3 nodes), one demo movie,
// and two Chromium contexts signed in as two users on two different nodes. The host creates
// a room ("Watch together"), the guest opens the invite link on another node; the host plays,
// pauses and seeks, and after each the guest's video.currentTime must be within 300 ms of the
// host's. Then the guest is throttled (CDP Network.emulateNetworkConditions) and the room must
// still converge after a seek. Finally the steady-state drift over 60 s is sampled.
//
// Both sign in the way viewers do (docs/signin.md, web/e2e/signin.mjs): the node's site sends
// them to the tracker's sign-in page, they allow the node on the consent page and come back
// signed in; no request to their node may carry their password. The guest's account is
// registered with the tracker's JSON API at the tracker's own origin (demo.env's DEMO_TRACKER;
// E2E_TRACKER_URL overrides it).
//
// Prints: drift after play/pause/seek, seek convergence times, steady-state drift p50/max.
// Run from anywhere: `node web/e2e/party.mjs`. Env as web/e2e/watch.mjs (CHROMIUM, E2E_KEEP,
// E2E_HEADFUL, E2E_RELEASE), plus PARTY_STEADY_SECS (default 60).

import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { isCspViolation, reportCspViolations } from './csp.mjs';
import { signInFromNode, trackerUrl, watchNodeRequests } from './signin.mjs';

const here = dirname(fileURLToPath(import.meta.url));

function listening(port) {
  return new Promise((ok) => {
    const sock = connect({ host: '127.0.0.1', port }, () => {
      sock.destroy();
      ok(true);
    });
    sock.on('error', () => ok(false));
  });
}

// Same as watch.mjs: run in a fresh network namespace when the testnet ports are taken.
if (process.env.E2E_IN_NETNS !== '1' && process.getuid?.() === 0) {
  const busy = (await Promise.all([7070, 8081, 8082, 8083, 2525, 6881].map(listening))).some(Boolean);
  if (busy && spawnSync('unshare', ['--version']).status === 0) {
    console.log('[party] the testnet ports are in use here; running in a new network namespace');
    const r = spawnSync('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$0" "$1"', process.execPath, fileURLToPath(import.meta.url)], {
      stdio: 'inherit',
      env: { ...process.env, E2E_IN_NETNS: '1' },
    });
    process.exit(r.status ?? 1);
  }
}

const root = resolve(here, '../..');
const artifacts = join(here, 'artifacts');
const testnetDir = mkdtempSync(join(tmpdir(), 'reelnet-party-'));
const cache = process.env.REELNET_CACHE ?? join(process.env.HOME ?? '/tmp', '.cache/reelnet');
const release = process.env.E2E_RELEASE === '1';
const steadySecs = Number(process.env.PARTY_STEADY_SECS ?? 60);
const env = { ...process.env, TESTNET_DIR: testnetDir, DEMO_MEDIA_DIR: process.env.DEMO_MEDIA_DIR ?? join(cache, 'e2e-media') };
const t0 = Date.now();
const GUEST = `guest-${Date.now()}@reelnet.test`;
const PASSWORD = 'correct horse battery';
const TOLERANCE = 0.3;

function log(msg) {
  console.log(`[party ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
}
class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

function run(cmd, args, { prefix } = {}) {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const relay = (stream, out) => {
      let rest = '';
      stream.on('data', (chunk) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop() ?? '';
        for (const l of lines) out.write(`  ${prefix ?? cmd}| ${l}\n`);
      });
      stream.on('end', () => rest && out.write(`  ${prefix ?? cmd}| ${rest}\n`));
    };
    relay(child.stdout, process.stdout);
    relay(child.stderr, process.stderr);
    child.on('error', fail);
    child.on('exit', (code) => (code === 0 ? ok() : fail(new Failure(`${cmd} ${args.join(' ')} exited with ${code}`))));
  });
}

function readEnv(file) {
  const out = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = line.match(/^([A-Z_]+)=("?)(.*)\2$/);
    if (m) out[m[1]] = m[3];
  }
  return out;
}

async function verificationToken(to) {
  const maildir = join(testnetDir, 'mail');
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    for (const sub of ['new', 'cur']) {
      const d = join(maildir, sub);
      if (!existsSync(d)) continue;
      for (const name of readdirSync(d)) {
        const text = readFileSync(join(d, name), 'utf8').replace(/=\r?\n/g, '').replace(/=3D/gi, '=');
        if (!text.includes(`To: ${to}`)) continue;
        const m = text.match(/\/verify\?token=([A-Za-z0-9_-]+)/);
        if (m) return m[1];
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Failure(`no verification mail to ${to}`);
}

async function api(base, path, body) {
  const r = await fetch(`${base}/api/v1${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  check(r.ok, `POST ${path} -> ${r.status} ${await r.text()}`);
}

/** Signs in from the node's site: the tracker's sign-in page, consent (first visit), back on the node. */
async function signIn(page, base, email, password) {
  const seen = await signInFromNode(page, { node: base, email, password });
  check(seen.trackerOrigin && seen.trackerOrigin !== new URL(base).origin, `signing in on ${base} never left the node's origin`);
  check(seen.consented, `the tracker did not ask for consent on the first visit to ${base}`);
  await page.waitForSelector('[data-testid="search-input"]');
}

const VIDEO = '[data-testid="room-video"]';
/** A page's video position and the wall-clock instant it was read at (same host clock for both contexts). */
const snap = (page) =>
  page.$eval(VIDEO, (v) => ({
    t: v.currentTime,
    now: performance.timeOrigin + performance.now(),
    paused: v.paused,
    rate: v.playbackRate,
    ready: v.readyState,
  }));

/** Guest minus host position, both taken to the host's reading instant, seconds. */
async function diff(host, guest) {
  const [a, b] = await Promise.all([snap(host), snap(guest)]);
  const g = b.paused ? b.t : b.t + ((a.now - b.now) / 1000) * b.rate;
  return { d: g - a.t, host: a, guest: b };
}

/** Polls until |guest − host| ≤ tolerance and `extra` holds; returns (ms waited, last diff). */
async function converge(host, guest, what, extra = () => true, timeoutMs = 15_000) {
  const start = Date.now();
  let last;
  for (;;) {
    last = await diff(host, guest);
    if (Math.abs(last.d) <= TOLERANCE && extra(last)) return { ms: Date.now() - start, d: last.d, host: last.host.t };
    check(Date.now() - start < timeoutMs, `${what}: no convergence in ${timeoutMs} ms (guest − host ${(last.d * 1000).toFixed(0)} ms, host ${last.host.t.toFixed(2)} s paused=${last.host.paused}, guest ${last.guest.t.toFixed(2)} s paused=${last.guest.paused})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

let browser;
let pages = [];
let testnetUp = false;
let failed = false;
try {
  if (!existsSync(join(root, 'web/dist/index.html'))) {
    log('building the web app (web/dist is missing)');
    await run('npm', ['run', 'build', '--silent'], { prefix: 'web' });
  }
  log(`starting a 3-node testnet in ${testnetDir}`);
  await run('bash', ['testnet/up.sh', '-n', '3', ...(release ? ['--release'] : [])], { prefix: 'up' });
  testnetUp = true;
  log('loading one demo movie');
  await run('bash', ['testnet/demo.sh', '-n', '3', '--movies', '1', '--seconds', String(Math.max(150, steadySecs + 90)), ...(release ? ['--release'] : [])], { prefix: 'demo' });
  const demo = readEnv(join(testnetDir, 'demo.env'));
  const movieId = demo.DEMO_MOVIES.trim();
  check(movieId, 'demo.sh ingested no movie');
  const hostBase = demo.DEMO_URL;
  const guestNode = Number(demo.DEMO_NODE) === 1 ? 2 : 1;
  const guestBase = `http://127.0.0.1:${8080 + guestNode}`;
  const tracker = trackerUrl(demo);
  log(`movie ${movieId}; host on ${hostBase}, guest on ${guestBase}; tracker ${tracker}`);

  // The guest account (the host is the demo account), at the tracker's own origin: nodes
  // refuse /api/v1/auth/* (credentials only go to the tracker).
  await api(tracker, '/auth/register', { email: GUEST, password: PASSWORD, display_name: 'Party Guest' });
  await api(tracker, '/auth/verify', { token: await verificationToken(GUEST) });

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: process.env.E2E_HEADFUL !== '1',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--autoplay-policy=no-user-gesture-required', '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'],
  });
  const pageErrors = [];
  const cspViolations = [];
  const leaks = [];
  const open = async (name, base, password) => {
    const ctx = await browser.newContext({ viewport: { width: 1100, height: 700 } });
    // No password may pass the node the viewer signs in through.
    const found = watchNodeRequests(ctx, base, () => [password]);
    // Every Content-Security-Policy violation (the gateway's CSP) is reported to the console.
    await ctx.addInitScript(reportCspViolations);
    const page = await ctx.newPage();
    page.setDefaultTimeout(30_000);
    page.on('pageerror', (e) => pageErrors.push(`${name}: ${e}`));
    page.on('console', (m) => {
      if (isCspViolation(m.text())) cspViolations.push(`${name}: ${m.text()}`);
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) console.error(`  ${name}| ${m.text()}`);
    });
    pages.push(page);
    leaks.push(found);
    return page;
  };
  const host = await open('host', hostBase, demo.DEMO_PASSWORD);
  const guest = await open('guest', guestBase, PASSWORD);

  await signIn(host, hostBase, demo.DEMO_EMAIL, demo.DEMO_PASSWORD);
  await signIn(guest, guestBase, GUEST, PASSWORD);
  log('both signed in');

  // Host: movie page → Watch together → room with the invite link.
  await host.goto(`${hostBase}/movie/${movieId}`);
  await host.click('[data-testid="watch-together"]');
  await host.waitForURL(/\/room\/[0-9a-f]{32}$/);
  const invite = await host.inputValue('[data-testid="invite-link"]');
  const roomId = invite.split('/room/')[1];
  check(/^[0-9a-f]{32}$/.test(roomId), `invite link ${invite}`);
  log(`room ${roomId}; invite ${invite}`);

  // Guest: the invite link, opened on another node.
  await guest.goto(`${guestBase}/room/${roomId}`);
  await guest.getByText('The host controls playback.').waitFor();
  await host.locator('[data-testid="room-members"] li').nth(1).waitFor();
  for (const p of [host, guest]) await p.waitForFunction((sel) => (document.querySelector(sel)?.readyState ?? 0) >= 1, VIDEO, { timeout: 60_000 });
  log('both in the room with the stream loaded');

  const results = {};
  // Play.
  await host.click('[data-testid="room-play"]');
  let r = await converge(host, guest, 'play', (x) => !x.host.paused && !x.guest.paused && x.host.t > 1, 30_000);
  await host.waitForTimeout(2000);
  r = await diff(host, guest);
  results.play = r.d;
  log(`after play: guest − host = ${(r.d * 1000).toFixed(0)} ms (host at ${r.host.t.toFixed(2)} s)`);
  check(Math.abs(r.d) <= TOLERANCE, `after play the guest is ${(r.d * 1000).toFixed(0)} ms off`);

  // Pause.
  await host.click('[data-testid="room-play"]');
  r = await converge(host, guest, 'pause', (x) => x.host.paused && x.guest.paused);
  await host.waitForTimeout(1000);
  r = await diff(host, guest);
  results.pause = r.d;
  log(`after pause: guest − host = ${(r.d * 1000).toFixed(0)} ms (both paused at ${r.host.t.toFixed(2)} s)`);
  check(Math.abs(r.d) <= TOLERANCE && r.host.paused && r.guest.paused, `after pause the guest is ${(r.d * 1000).toFixed(0)} ms off`);

  // Play again, then seek +30 s: time until the guest is within 300 ms of the host past the target.
  await host.click('[data-testid="room-play"]');
  await converge(host, guest, 'play again', (x) => !x.host.paused && !x.guest.paused);
  await host.waitForTimeout(1500);
  const before = (await snap(host)).t;
  const seekStart = Date.now();
  await host.click('[data-testid="room-forward"]');
  r = await converge(host, guest, 'seek', (x) => x.host.t > before + 20 && x.guest.t > before + 20 && !x.guest.paused);
  const seekMs = Date.now() - seekStart;
  await host.waitForTimeout(1500);
  const afterSeek = await diff(host, guest);
  results.seek = afterSeek.d;
  log(`after seek +30 s: converged ${seekMs} ms after the click; 1.5 s later guest − host = ${(afterSeek.d * 1000).toFixed(0)} ms`);
  check(Math.abs(afterSeek.d) <= TOLERANCE, `after seek the guest is ${(afterSeek.d * 1000).toFixed(0)} ms off`);

  // Throttle the guest (latency and bandwidth) and seek back: the room still converges.
  const cdp = await guest.context().newCDPSession(guest);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 200, downloadThroughput: (4 * 1024 * 1024) / 8, uploadThroughput: (1024 * 1024) / 8 });
  log('guest throttled: +200 ms latency, 4 Mbit/s down, 1 Mbit/s up');
  await guest.waitForTimeout(4000); // new pings measure the slower path
  const beforeBack = (await snap(host)).t;
  const backStart = Date.now();
  await host.click('[data-testid="room-back"]');
  r = await converge(host, guest, 'throttled seek', (x) => x.host.t < beforeBack - 5 && x.guest.t < beforeBack - 5 && !x.guest.paused && !x.host.paused, 30_000);
  const throttledMs = Date.now() - backStart;
  await host.waitForTimeout(2000);
  const afterThrottled = await diff(host, guest);
  log(`throttled guest, seek −10 s: converged ${throttledMs} ms after the click; 2 s later guest − host = ${(afterThrottled.d * 1000).toFixed(0)} ms`);
  check(Math.abs(afterThrottled.d) <= TOLERANCE, `throttled: the guest is ${(afterThrottled.d * 1000).toFixed(0)} ms off`);
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

  // Steady state.
  log(`sampling steady-state drift for ${steadySecs} s`);
  const samples = [];
  const end = Date.now() + steadySecs * 1000;
  while (Date.now() < end) {
    const x = await diff(host, guest);
    if (!x.host.paused && !x.guest.paused) samples.push(Math.abs(x.d) * 1000);
    await new Promise((res) => setTimeout(res, 250));
  }
  check(samples.length > steadySecs, `only ${samples.length} steady-state samples`);
  const p50 = pct(samples, 50);
  const p95 = pct(samples, 95);
  const max = Math.max(...samples);
  mkdirSync(artifacts, { recursive: true });
  await host.screenshot({ path: join(artifacts, 'party-host.png') });
  await guest.screenshot({ path: join(artifacts, 'party-guest.png') });
  const indicator = await guest.textContent('[data-testid="sync-indicator"]');
  console.log('\n=== watch-party figures ===');
  console.log(`drift after play   : ${(results.play * 1000).toFixed(0)} ms`);
  console.log(`drift after pause  : ${(results.pause * 1000).toFixed(0)} ms`);
  console.log(`drift after seek   : ${(results.seek * 1000).toFixed(0)} ms`);
  console.log(`seek convergence   : ${seekMs} ms (click → guest within 300 ms of host)`);
  console.log(`throttled seek     : ${throttledMs} ms (guest +200 ms latency, 4 Mbit/s)`);
  console.log(`steady state ${steadySecs} s : p50 ${p50.toFixed(0)} ms, p95 ${p95.toFixed(0)} ms, max ${max.toFixed(0)} ms (${samples.length} samples)`);
  console.log(`guest indicator    : ${indicator}`);
  check(max <= 300, `steady-state max drift ${max.toFixed(0)} ms > 300 ms`);
  check(leaks.flat().length === 0, `passwords sent to a node:\n${leaks.flat().join('\n')}`);
  check(pageErrors.length === 0, `uncaught errors:\n${pageErrors.join('\n')}`);
  check(cspViolations.length === 0, `Content-Security-Policy violations:\n${cspViolations.join('\n')}`);
  log(`PASS in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
} catch (err) {
  failed = true;
  console.error(`\nPARTY E2E FAILED: ${err instanceof Failure ? err.message : err?.stack ?? err}`);
  mkdirSync(artifacts, { recursive: true });
  for (const [i, p] of pages.entries()) await p.screenshot({ path: join(artifacts, `party-failure-${i}.png`) }).catch(() => {});
  for (const name of ['tracker.log', 'node1.log', 'node2.log', 'node3.log']) {
    const f = join(testnetDir, name);
    if (!existsSync(f)) continue;
    console.error(`--- last lines of ${f}\n${readFileSync(f, 'utf8').trimEnd().split('\n').slice(-15).join('\n')}`);
  }
} finally {
  await browser?.close().catch(() => {});
  if (process.env.E2E_KEEP === '1') {
    log(`E2E_KEEP=1: testnet left running from ${testnetDir}`);
  } else {
    if (testnetUp || existsSync(join(testnetDir, 'pids'))) await run('bash', ['testnet/down.sh'], { prefix: 'down' }).catch(() => {});
    if (failed) console.error(`testnet logs kept in ${testnetDir}`);
    else rmSync(testnetDir, { recursive: true, force: true });
  }
}
process.exit(failed ? 1 : 0);
