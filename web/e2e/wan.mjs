// Playback over the WAN testnet (testnet/wan.sh, docs/testnets.md): Debian's Chromium runs
// INSIDE the viewer's network namespace, behind its shaped link (20 Mbit/s, 40 ms RTT, 0.5 %
// loss by default), signs in through a public node (the tracker's pages, consent), opens the
// demo movie — held only by home nodes behind NAT — clicks Play and measures:
//
//   ttff_ms        play click → first `timeupdate` with currentTime > 0 (a frame shown)
//   playing_ms     play click → first `playing` event
//   rebuffers      `waiting` events after the first frame, and the time spent stalled
//   rungs          the hls.js level playing (the quality menu's "Auto (480p)"), every one
//                  seen and the last; `levels`: the ladder the manifest offered
//
// and prints one JSON object (also to $TESTNET_DIR/wan-playback.json). Exit status 0 when it
// played WAN_PLAY_SECS (default 20) seconds of the movie without a fatal error.
//
//   node web/e2e/wan.mjs            starts a WAN testnet (wan.sh up + demo) in a fresh
//                                   TESTNET_DIR, plays, tears it down (E2E_KEEP=1 keeps it)
//   TESTNET_DIR=D node web/e2e/wan.mjs   uses the running WAN testnet in D (wan.sh demo
//                                   is run first when D has no demo.env)
//
// Needs root (ip netns), the debug binaries (E2E_RELEASE=1: release), web/dist, Chromium
// (CHROMIUM, default /usr/bin/chromium). The browser half is this same file, re-run through
// `testnet/wan.sh exec viewer` with WAN_IN_VIEWER=1.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const t0 = Date.now();
const log = (msg) => console.error(`[wan ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);

function readEnv(file) {
  const out = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = line.match(/^([A-Z_]+)=("?)(.*)\2$/);
    if (m) out[m[1]] = m[3];
  }
  return out;
}

/** Runs a command from the repository root; resolves with its stdout, rejects on failure. */
function run(cmd, args, env, { quiet = false } = {}) {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    // Whole lines, each prefixed with the subcommand (up, demo, exec, ...).
    const relay = (stream, echo) => {
      let rest = '';
      stream.on('data', (chunk) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop() ?? '';
        for (const l of lines) if (echo) process.stderr.write(`  ${args[1] ?? cmd}| ${l}\n`);
      });
      stream.on('end', () => rest && echo && process.stderr.write(`  ${args[1] ?? cmd}| ${rest}\n`));
    };
    child.stdout.on('data', (c) => (out += c));
    relay(child.stdout, !quiet);
    relay(child.stderr, true);
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? ok(out) : fail(new Error(`${cmd} ${args.join(' ')} exited with ${code}`))));
  });
}

// ---- outside: the testnet, then this file again inside the viewer's namespace ------------
async function outside() {
  const release = process.env.E2E_RELEASE === '1';
  const own = !process.env.TESTNET_DIR;
  const dir = process.env.TESTNET_DIR ?? mkdtempSync(join(tmpdir(), 'reelnet-wan-'));
  const env = { ...process.env, TESTNET_DIR: dir };
  const wan = (...args) => run('bash', ['testnet/wan.sh', ...args], env);
  let failed = true;
  try {
    if (!existsSync(join(root, 'web/dist/index.html'))) throw new Error('web/dist is missing: npm run build in web/ first');
    if (!existsSync(join(dir, 'wan.state'))) {
      log(`starting a WAN testnet in ${dir}`);
      await wan('up', ...(release ? ['--release'] : []));
    }
    if (!existsSync(join(dir, 'demo.env'))) {
      log(`ingesting the demo movie on ${process.env.DEMO_NODE ?? 'home1'} only`);
      await wan('demo');
    }
    const info = JSON.parse(await run('bash', ['testnet/wan.sh', 'info'], env, { quiet: true }));
    log(`viewer link: ${JSON.stringify(info.viewer_link)}; playing through ${info.gateways.pub1}`);
    const secure = [info.tracker, ...Object.values(info.gateways)].map((u) => new URL(u).origin).join(',');
    const out = await run(
      'bash',
      ['testnet/wan.sh', 'exec', 'viewer', 'env', 'WAN_IN_VIEWER=1', `TESTNET_DIR=${dir}`, `WAN_SECURE_ORIGINS=${secure}`, process.execPath, fileURLToPath(import.meta.url)],
      env,
      { quiet: true },
    );
    process.stdout.write(out);
    failed = false;
  } catch (err) {
    console.error(`WAN PLAYBACK FAILED: ${err.message}`);
    const result = join(dir, 'wan-playback.json');
    if (existsSync(result)) process.stdout.write(`${JSON.stringify(JSON.parse(readFileSync(result, 'utf8')))}\n`);
    for (const name of ['pub1.log', 'home1.log', 'home2.log']) {
      const f = join(dir, name);
      if (existsSync(f)) console.error(`--- last lines of ${f}\n${readFileSync(f, 'utf8').trimEnd().split('\n').slice(-12).join('\n')}`);
    }
  } finally {
    if (own && process.env.E2E_KEEP !== '1') {
      await wan('down').catch(() => {});
      if (!failed) rmSync(dir, { recursive: true, force: true });
      else console.error(`logs kept in ${dir}`);
    } else if (own) {
      log(`E2E_KEEP=1: the WAN testnet keeps running (TESTNET_DIR=${dir} testnet/wan.sh down)`);
    }
  }
  process.exit(failed ? 1 : 0);
}

// ---- inside the viewer's namespace: the browser -------------------------------------------

// Installed before any page script: records the play click and the media events of every
// <video> (media events do not bubble; a capturing listener on the document sees them).
function recorder() {
  const w = { clickAt: null, firstFrameAt: null, playingAt: null, waits: [], stalls: [], stalledSince: null, rungs: [] };
  window.__wan = w;
  document.addEventListener(
    'click',
    (e) => {
      if (w.clickAt === null && e.target?.closest?.('[data-testid="play-button"], [data-testid="start-over-button"]')) w.clickAt = performance.now();
    },
    true,
  );
  const now = () => performance.now();
  document.addEventListener(
    'timeupdate',
    (e) => {
      const v = e.target;
      if (w.firstFrameAt === null && v.currentTime > 0) w.firstFrameAt = now();
      if (w.stalledSince !== null && !v.paused && v.readyState >= 3) {
        w.stalls.push(now() - w.stalledSince);
        w.stalledSince = null;
      }
    },
    true,
  );
  document.addEventListener('playing', () => {
    if (w.playingAt === null) w.playingAt = now();
    if (w.stalledSince !== null) {
      w.stalls.push(now() - w.stalledSince);
      w.stalledSince = null;
    }
  }, true);
  document.addEventListener('waiting', (e) => {
    if (w.firstFrameAt === null) return; // start-up, not a rebuffer
    w.waits.push({ at: now(), currentTime: e.target.currentTime });
    if (w.stalledSince === null) w.stalledSince = now();
  }, true);
}

async function inside() {
  const { chromium } = await import('playwright-core');
  const { signInFromNode } = await import('./signin.mjs');
  const dir = process.env.TESTNET_DIR;
  const demo = readEnv(join(dir, 'demo.env'));
  const base = demo.DEMO_URL;
  const movieId = demo.DEMO_MOVIES.trim().split(/\s+/)[0];
  const playSecs = Number(process.env.WAN_PLAY_SECS ?? 20);
  const result = { ok: false, stage: 'launch', node: base, movie: movieId, held_by: demo.DEMO_HOLDER ?? null, tracker: demo.DEMO_TRACKER };
  const save = () => writeFileSync(join(dir, 'wan-playback.json'), `${JSON.stringify(result, null, 2)}\n`);
  let browser;
  try {
    // The testnet speaks plain HTTP off loopback (not a secure context), as a LAN tracker
    // without a certificate would: the tracker's sign-in form must work there as it is.
    // WAN_SECURE_ORIGINS declares origins secure, which is what HTTPS would give.
    const secure = process.env.WAN_SECURE_ORIGINS;
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: [...(secure ? [`--unsafely-treat-insecure-origin-as-secure=${secure}`] : []), '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--autoplay-policy=no-user-gesture-required'],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.addInitScript(recorder);
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    const failedMedia = [];
    // Media URLs without their query (it carries the viewer's token); the first 10 kept.
    let failedCount = 0;
    const noteMedia = (what) => {
      failedCount += 1;
      result.failed_media_count = failedCount;
      if (failedMedia.length < 10) failedMedia.push(what.replace(/\?.*$/, ''));
    };
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('response', (r) => {
      if (r.status() >= 400 && r.url().includes('/hls/')) noteMedia(`${r.status()} ${r.url()}`);
    });
    page.on('requestfailed', (r) => {
      if (r.url().includes('/hls/')) noteMedia(`${r.failure()?.errorText ?? 'failed'} ${r.url()}`);
    });
    result.failed_media = failedMedia;
    result.page_errors = errors;

    result.stage = 'sign-in';
    save();
    const signIn = await signInFromNode(page, { node: base, email: demo.DEMO_EMAIL, password: demo.DEMO_PASSWORD });
    result.consented = signIn.consented;
    log(`signed in at ${signIn.trackerOrigin}, back on ${base}`);

    result.stage = 'movie-page';
    save();
    await page.goto(`${base}/movie/${movieId}`);
    await page.waitForSelector('[data-testid="movie-page"]');
    // Play from the start: "Play", or "Start over" when an earlier run left a position.
    const start = '[data-testid="play-button"]:not([disabled]), [data-testid="start-over-button"]';
    await page.waitForSelector(start);

    result.stage = 'play';
    save();
    await page.locator(start).first().click();
    await page.waitForSelector('[data-testid="player-video"]');
    const deadline = Date.now() + Number(process.env.WAN_PLAY_TIMEOUT_SECS ?? playSecs * 3 + 30) * 1000;
    for (;;) {
      const s = await page.evaluate(() => {
        const v = document.querySelector('[data-testid="player-video"]');
        const player = document.querySelector('[data-testid="player"]');
        const select = document.querySelector('[data-testid="quality-select"]');
        const auto = select?.options?.[0]?.textContent ?? '';
        const m = auto.match(/^Auto \((.+)\)$/);
        if (m && window.__wan.rungs[window.__wan.rungs.length - 1] !== m[1]) window.__wan.rungs.push(m[1]);
        return {
          t: v?.currentTime ?? 0,
          ended: v?.ended ?? false,
          duration: v?.duration ?? null,
          fatal: Number(player?.getAttribute('data-fatal-errors') ?? 0),
          error: document.querySelector('[data-testid="player-error"]')?.textContent ?? null,
          levels: [...(select?.options ?? [])].slice(1).map((o) => o.textContent),
          w: window.__wan,
          stallNow: window.__wan.stalledSince !== null ? performance.now() - window.__wan.stalledSince : 0,
        };
      });
      result.played_secs = Number(s.t.toFixed(2));
      result.levels = s.levels;
      const w = s.w;
      const since = (x) => (x === null || w.clickAt === null ? null : Math.round(x - w.clickAt));
      result.ttff_ms = since(w.firstFrameAt);
      result.playing_ms = since(w.playingAt);
      result.rebuffers = w.waits.length;
      result.stall_ms = Math.round(w.stalls.reduce((a, b) => a + b, 0) + s.stallNow);
      result.stalled_now = w.stalledSince !== null;
      result.rungs = w.rungs;
      result.rung_last = w.rungs[w.rungs.length - 1] ?? null;
      if (s.fatal > 0 || s.error) throw new Error(`the player failed: ${s.error ?? `${s.fatal} fatal hls.js errors`}`);
      if (s.t >= playSecs || s.ended) break;
      if (Date.now() > deadline) {
        throw new Error(`played ${s.t.toFixed(2)} s of ${playSecs} s before the deadline${s.t === 0 ? ' (no frame at all)' : ''}`);
      }
      await page.waitForTimeout(250);
    }
    result.stage = 'done';
    result.ok = true;
    log(`played ${result.played_secs} s: first frame after ${result.ttff_ms} ms, ${result.rebuffers} rebuffer(s), rung ${result.rung_last}`);
  } catch (err) {
    result.error = String(err?.message ?? err);
  } finally {
    await browser?.close().catch(() => {});
    save();
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
  process.exit(result.ok ? 0 : 1);
}

if (process.env.WAN_IN_VIEWER === '1') await inside();
else await outside();
