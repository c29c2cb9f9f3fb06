// End-to-end browser test: a real testnet (tracker, SMTP sink, 3 nodes from the debug
// build), one demo movie ingested on node 1 from a local torrent seed, and Debian's Chromium
// driven by playwright-core through the whole viewer journey:
//
//   register → verification mail (read from the SMTP sink's Maildir) → open the link → sign
//   in → search → movie page → play through a node that holds none of the movie
//   (video.currentTime passes 5 s, no fatal hls.js error, no failed /hls/ request) → leave →
//   "Resume at mm:ss" within ±5 s of where we left → resume plays from there → watch later:
//   add, see it on the home row, remove it.
//
// Screenshots of home, movie page and player go to web/e2e/artifacts/ (and are copied to
// docs/screenshots/ for the README). Run from anywhere: `node web/e2e/watch.mjs`.
// Env: CHROMIUM (default /usr/bin/chromium), E2E_KEEP=1 keeps the testnet running and its
// directory, E2E_HEADFUL=1 shows the browser, E2E_RELEASE=1 uses the release binaries.

import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { isCspViolation, reportCspViolations } from './csp.mjs';

const here = dirname(fileURLToPath(import.meta.url));

/** Whether something listens on 127.0.0.1:port. */
function listening(port) {
  return new Promise((ok) => {
    const sock = connect({ host: '127.0.0.1', port }, () => {
      sock.destroy();
      ok(true);
    });
    sock.on('error', () => ok(false));
  });
}

// The testnet's ports are fixed (tracker 7070, nodes 8081…, SMTP 2525). When another testnet
// already uses them (a developer's `scripts/run.sh`), run in a fresh network namespace with
// its own loopback instead, if we may (root and `unshare`); otherwise up.sh says which port.
if (process.env.E2E_IN_NETNS !== '1' && process.getuid?.() === 0) {
  const busy = (await Promise.all([7070, 8081, 8082, 8083, 2525, 6881].map(listening))).some(Boolean);
  if (busy && spawnSync('unshare', ['--version']).status === 0) {
    console.log('[e2e] the testnet ports are in use here; running in a new network namespace');
    const r = spawnSync('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$0" "$1"', process.execPath, fileURLToPath(import.meta.url)], {
      stdio: 'inherit',
      env: { ...process.env, E2E_IN_NETNS: '1' },
    });
    process.exit(r.status ?? 1);
  }
}

const root = resolve(here, '../..');
const artifacts = join(here, 'artifacts');
const screenshots = join(root, 'docs/screenshots');
const testnetDir = mkdtempSync(join(tmpdir(), 'reelnet-e2e-'));
const cache = process.env.REELNET_CACHE ?? join(process.env.HOME ?? '/tmp', '.cache/reelnet');
const release = process.env.E2E_RELEASE === '1';
const env = {
  ...process.env,
  TESTNET_DIR: testnetDir,
  // Encoded demo media survives between runs (only the network is fresh).
  DEMO_MEDIA_DIR: process.env.DEMO_MEDIA_DIR ?? join(cache, 'e2e-media'),
};
const t0 = Date.now();
const EMAIL = `viewer-${Date.now()}@reelnet.test`;
const PASSWORD = 'correct horse battery';

function log(msg) {
  console.log(`[e2e ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
}

class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

/** Runs a command from the repository root, its output prefixed; rejects on a non-zero exit. */
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

/** Waits for the verification mail to `to` in the sink's Maildir and returns its link. */
async function verificationLink(to) {
  const maildir = join(testnetDir, 'mail');
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    for (const sub of ['new', 'cur']) {
      const d = join(maildir, sub);
      if (!existsSync(d)) continue;
      for (const name of readdirSync(d)) {
        // Undo quoted-printable soft breaks and escapes before looking for the link.
        const text = readFileSync(join(d, name), 'utf8').replace(/=\r?\n/g, '').replace(/=3D/gi, '=');
        if (!text.includes(`To: ${to}`)) continue;
        const m = text.match(/https?:\/\/[^\s"<>]+\/verify\?token=[A-Za-z0-9_-]+/);
        if (m) return m[0];
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Failure(`no verification mail to ${to} in ${maildir} after 30 s (is aiosmtpd installed? scripts/setup.sh)`);
}

const video = '[data-testid="player-video"]';
const currentTime = (page) => page.$eval(video, (v) => v.currentTime);

/** Waits until the player's video passes `seconds`, failing fast on a fatal hls.js error. */
async function playPast(page, seconds, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await page.evaluate((sel) => {
      const player = document.querySelector('[data-testid="player"]');
      const v = document.querySelector(sel);
      return {
        t: v ? v.currentTime : 0,
        fatal: Number(player?.getAttribute('data-fatal-errors') ?? 0),
        error: document.querySelector('[data-testid="player-error"]')?.textContent ?? null,
      };
    }, video);
    check(state.fatal === 0 && state.error === null, `hls.js reported a fatal error: ${state.error}`);
    if (state.t > seconds) return state.t;
    check(Date.now() < deadline, `video.currentTime stayed at ${state.t.toFixed(2)} s (wanted > ${seconds} s)`);
    await page.waitForTimeout(100);
  }
}

async function shot(page, name) {
  mkdirSync(artifacts, { recursive: true });
  const file = join(artifacts, `${name}.png`);
  await page.screenshot({ path: file });
  mkdirSync(screenshots, { recursive: true });
  copyFileSync(file, join(screenshots, `${name}.png`));
  log(`screenshot ${file}`);
}

let browser;
let page;
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
  log('loading one demo movie (seeded over BitTorrent, ingested on node 1)');
  await run('bash', ['testnet/demo.sh', '-n', '3', '--movies', '1', '--seconds', '60', ...(release ? ['--release'] : [])], {
    prefix: 'demo',
  });
  const demo = readEnv(join(testnetDir, 'demo.env'));
  const movieId = demo.DEMO_MOVIES.trim();
  check(movieId, 'demo.sh ingested no movie');
  check(demo.DEMO_NODE_HOLDS_NONE === 'yes', `every node holds part of the movie; no node to stream through (${JSON.stringify(demo)})`);
  const base = demo.DEMO_URL;
  log(`movie ${movieId}; playing through node ${demo.DEMO_NODE} (${base}), which holds none of it`);

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: process.env.E2E_HEADFUL !== '1',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--autoplay-policy=no-user-gesture-required',
    ].filter((a) => a !== '--headless' || process.env.E2E_HEADFUL !== '1'),
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  // Every Content-Security-Policy violation (the gateway's CSP) is reported to the console.
  await context.addInitScript(reportCspViolations);
  page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const pageErrors = [];
  const cspViolations = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => {
    if (isCspViolation(m.text())) cspViolations.push(m.text());
    // Failed requests are listed with their URL below.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) console.error(`  browser| ${m.text()}`);
  });
  const badMedia = [];
  page.on('response', (r) => {
    if (r.status() < 400) return;
    if (r.url().includes('/hls/')) badMedia.push(`${r.status()} ${r.url()}`);
    else console.log(`  browser| ${r.status()} ${r.request().method()} ${r.url()}`);
  });

  // Register → mail → verify.
  log(`registering ${EMAIL}`);
  const registerPage = await page.goto(`${base}/register`);
  const csp = registerPage?.headers()['content-security-policy'] ?? '';
  check(csp.includes("script-src 'self'") && csp.includes("frame-ancestors 'none'"), `the web app is served without its CSP (got "${csp}")`);
  await page.fill('#register-email', EMAIL);
  await page.fill('#register-displayName', 'E2E Viewer');
  await page.fill('#register-password', PASSWORD);
  await page.click('button[type="submit"]');
  await page.getByText('We sent a verification link').waitFor();
  const link = await verificationLink(EMAIL);
  log(`verification link ${link}`);
  // The link opens the tracker's own confirmation page (docs/signin.md): confirm there.
  check(!link.startsWith(base), `the verification link points at a node (${link}), not at the tracker`);
  await page.goto(link);
  await page.click('#verify');
  await page.getByText('is confirmed').waitFor();

  // Sign in on the node that holds nothing.
  await page.goto(`${base}/login`);
  await page.fill('#login-email', EMAIL);
  await page.fill('#login-password', PASSWORD);
  await page.click('button[type="submit"]');
  await page.waitForSelector('[data-testid="search-input"]');
  log('signed in');

  // Search → movie page.
  const demoTitle = 'Night of the Test Pattern';
  await page.fill('[data-testid="search-input"]', 'test patern'); // typo on purpose
  const card = page.locator(`[data-testid="search-results"] [data-testid="movie-card"][data-movie-id="${movieId}"]`);
  await card.waitFor();
  await card.click();
  await page.waitForSelector('[data-testid="movie-page"]');
  check((await page.textContent('[data-testid="movie-title"]'))?.includes(demoTitle), 'movie page shows another title');
  await page.waitForLoadState('networkidle').catch(() => {});
  await shot(page, 'movie');

  // Play through the node that holds none of it.
  await page.click('[data-testid="play-button"]');
  await page.waitForSelector(video);
  const played = await playPast(page, 5);
  log(`playing: currentTime ${played.toFixed(2)} s`);
  await playPast(page, 6);
  await shot(page, 'player');
  const leftAt = await playPast(page, 9);
  log(`leaving the player at ${leftAt.toFixed(2)} s`);
  await page.goBack();
  await page.waitForSelector('[data-testid="movie-page"]');

  // Resume at the saved position (the save on leaving may land just after the page asks).
  let resumeAt = null;
  for (let i = 0; i < 20 && resumeAt === null; i++) {
    const btn = page.locator('[data-testid="resume-button"]');
    if (await btn.isVisible().catch(() => false)) {
      const text = (await btn.textContent()) ?? '';
      const m = text.match(/Resume at (\d+):(\d\d)/);
      check(m, `resume button says "${text}"`);
      resumeAt = Number(m[1]) * 60 + Number(m[2]);
      break;
    }
    await page.waitForTimeout(500);
    if (i % 4 === 3) await page.reload();
  }
  check(resumeAt !== null, 'no "Resume at" button after leaving the player');
  check(Math.abs(resumeAt - leftAt) <= 5, `"Resume at ${resumeAt} s" is not within 5 s of where we left (${leftAt.toFixed(2)} s)`);
  log(`movie page offers "Resume at" ${resumeAt} s (left at ${leftAt.toFixed(2)} s)`);

  await page.click('[data-testid="resume-button"]');
  await page.waitForSelector(video);
  let first = 0;
  const firstDeadline = Date.now() + 60_000;
  while (first === 0) {
    first = await currentTime(page).catch(() => 0);
    check(Date.now() < firstDeadline, 'the resumed player never started');
    if (first === 0) await page.waitForTimeout(50);
  }
  check(first >= resumeAt - 2, `resume started at ${first.toFixed(2)} s, not at ${resumeAt} s`);
  const resumed = await playPast(page, resumeAt + 3);
  log(`resumed from ${first.toFixed(2)} s and played on to ${resumed.toFixed(2)} s`);
  await page.goBack();
  await page.waitForSelector('[data-testid="movie-page"]');

  // Watch later: add, see it on home, remove.
  const toggle = page.locator('[data-testid="watch-later-toggle"]');
  await page.waitForSelector('[data-testid="watch-later-toggle"]:not([disabled])');
  check((await toggle.getAttribute('data-state')) === 'off', 'the movie starts on the watch-later list');
  await toggle.click();
  await page.waitForSelector('[data-testid="watch-later-toggle"][data-state="on"]');
  await page.goto(`${base}/`);
  const laterCard = page.locator(`[data-testid="row-watch-later"] [data-testid="movie-card"][data-movie-id="${movieId}"]`);
  await laterCard.waitFor();
  await page.locator(`[data-testid="row-continue"] [data-movie-id="${movieId}"]`).waitFor();
  await page.waitForLoadState('networkidle').catch(() => {});
  await shot(page, 'home');
  log('on the home page: watch later and continue watching rows show the movie');
  await laterCard.click();
  await page.waitForSelector('[data-testid="watch-later-toggle"][data-state="on"]:not([disabled])');
  await toggle.click();
  await page.waitForSelector('[data-testid="watch-later-toggle"][data-state="off"]');
  await page.goto(`${base}/`);
  await page.waitForSelector('[data-testid="row-watch-later"]');
  await page.locator(`[data-testid="row-continue"] [data-movie-id="${movieId}"]`).waitFor();
  check(
    (await page.locator(`[data-testid="row-watch-later"] [data-movie-id="${movieId}"]`).count()) === 0,
    'the movie is still on the watch-later row after removing it',
  );
  log('removed from watch later');

  check(badMedia.length === 0, `failed media requests:\n${badMedia.join('\n')}`);
  check(pageErrors.length === 0, `uncaught errors in the page:\n${pageErrors.join('\n')}`);
  check(cspViolations.length === 0, `Content-Security-Policy violations:\n${cspViolations.join('\n')}`);
  log(`PASS in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
} catch (err) {
  failed = true;
  console.error(`\nE2E FAILED: ${err instanceof Failure ? err.message : err?.stack ?? err}`);
  if (page) {
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'failure.png') }).catch(() => {});
    console.error(`  page: ${page.url()} (screenshot web/e2e/artifacts/failure.png)`);
  }
  for (const name of ['tracker.log', 'node1.log', 'node2.log', 'node3.log', 'seed.log']) {
    const f = join(testnetDir, name);
    if (!existsSync(f)) continue;
    const lines = readFileSync(f, 'utf8').trimEnd().split('\n').slice(-15);
    console.error(`--- last lines of ${f}\n${lines.join('\n')}`);
  }
} finally {
  await browser?.close().catch(() => {});
  if (process.env.E2E_KEEP === '1') {
    log(`E2E_KEEP=1: the testnet keeps running from ${testnetDir} (stop: TESTNET_DIR=${testnetDir} testnet/down.sh)`);
  } else {
    if (testnetUp || existsSync(join(testnetDir, 'pids'))) {
      await run('bash', ['testnet/down.sh'], { prefix: 'down' }).catch(() => {});
    }
    if (failed) console.error(`testnet logs kept in ${testnetDir}`);
    else rmSync(testnetDir, { recursive: true, force: true });
  }
}
process.exit(failed ? 1 : 0);
