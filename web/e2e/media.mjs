// End-to-end browser test of issue 18's player side: a movie with English + German (5.1)
// audio and English + French subtitles (an MKV made here with the ffmpeg CLI) is seeded over
// BitTorrent, slower than the node can transcode but faster than realtime, and ingested by a
// real node of a real 1-node testnet (tracker, SMTP sink, node from the debug build);
// Debian's Chromium, driven by playwright-core:
//
//   register and sign in (the tracker's pages, as in watch.mjs) → the account page: audio
//   German, subtitles on in French, saved (PUT /api/v1/me/preferences) → the ingest starts →
//   WHILE THE TORRENT IS STILL DOWNLOADING (the node's own job progress says so, before and
//   after): open the movie → the master playlist has audio and subtitle renditions, hls.js's
//   audioTracks list English and German, subtitleTracks English and French → German audio
//   and French subtitles are on at the start and playback advances → the download ends →
//   the finished movie: the audio menu switches to English mid-play and currentTime keeps
//   advancing (no stall) → `c` turns captions off, `c` again turns French back on →
//   hovering the seek bar shows a thumbnail tile.
//
// Run from anywhere: `node web/e2e/media.mjs`.
// Env: CHROMIUM (default /usr/bin/chromium), E2E_KEEP=1 keeps the testnet, E2E_HEADFUL=1,
// NODE_BIN / TRACKER_BIN (passed to testnet/up.sh), MEDIA_SECONDS (default 40),
// MEDIA_DOWNLOAD_SECONDS (how long the seeder's upload limit makes the download last;
// default 0.9 × MEDIA_SECONDS).

import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { isCspViolation, reportCspViolations } from './csp.mjs';
import { registerAtTracker, signInFromNode } from './signin.mjs';

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

// Fixed testnet ports: run in a fresh network namespace when they are taken (as watch.mjs).
if (process.env.E2E_IN_NETNS !== '1' && process.getuid?.() === 0) {
  const busy = (await Promise.all([7070, 8081, 2525, 6881, 6891].map(listening))).some(Boolean);
  if (busy && spawnSync('unshare', ['--version']).status === 0) {
    console.log('[media] the testnet ports are in use here; running in a new network namespace');
    const r = spawnSync('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$0" "$1"', process.execPath, fileURLToPath(import.meta.url)], {
      stdio: 'inherit',
      env: { ...process.env, E2E_IN_NETNS: '1' },
    });
    process.exit(r.status ?? 1);
  }
}

const root = resolve(here, '../..');
const artifacts = join(here, 'artifacts');
const testnetDir = mkdtempSync(join(tmpdir(), 'reelnet-media-'));
const cache = process.env.REELNET_CACHE ?? join(process.env.HOME ?? '/tmp', '.cache/reelnet');
const targetDir = process.env.CARGO_TARGET_DIR ?? join(cache, 'target');
const nodeBin = process.env.NODE_BIN ?? join(targetDir, 'debug/reelnet-node');
const seconds = Number(process.env.MEDIA_SECONDS ?? 40);
const downloadSeconds = Number(process.env.MEDIA_DOWNLOAD_SECONDS ?? seconds * 0.9);
const seedPort = 6891;
const env = { ...process.env, TESTNET_DIR: testnetDir };
const t0 = Date.now();
const EMAIL = `media-${Date.now()}@reelnet.test`;
const PASSWORD = 'correct horse battery';
const TITLE = 'Babel Test Reel';

function log(msg) {
  console.log(`[media ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
}
class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

function run(cmd, args, { prefix, cwd = root } = {}) {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
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

async function poll(what, fn, timeoutMs = 60_000, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    check(Date.now() < deadline, `timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `00:00:04,000` for SubRip. */
function srtTime(s) {
  const ms = Math.round(s * 1000);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(Math.floor(ms / 3_600_000))}:${p(Math.floor(ms / 60_000) % 60)}:${p(Math.floor(ms / 1000) % 60)},${p(ms % 1000, 3)}`;
}

/** SubRip with one cue every 2 s (shown 1.5 s): `text N`. */
function srt(text) {
  let out = '';
  for (let i = 0, s = 0; s < seconds; i++, s += 2) out += `${i + 1}\n${srtTime(s)} --> ${srtTime(s + 1.5)}\n${text} ${i + 1}\n\n`;
  return out;
}

/** The source: MPEG-4 video + English stereo (DEFAULT) + German 5.1 + English and French SubRip, in MKV. */
async function makeMovie(dir) {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'babel.mkv');
  writeFileSync(join(dir, 'en.srt'), srt('Hello from the English subtitles'));
  writeFileSync(join(dir, 'fr.srt'), srt('Bonjour des sous-titres français'));
  await run('ffmpeg', [
    '-nostdin', '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=s=640x360:r=25:d=${seconds}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${seconds},volume=0.2`,
    '-f', 'lavfi', '-i', `sine=frequency=330:sample_rate=48000:duration=${seconds},volume=0.2`,
    '-i', join(dir, 'en.srt'),
    '-i', join(dir, 'fr.srt'),
    '-filter_complex', '[2:a]pan=5.1|FL=c0|FR=c0|FC=c0|LFE=c0|BL=c0|BR=c0[de]',
    '-map', '0:v', '-map', '1:a', '-map', '[de]', '-map', '3:s', '-map', '4:s',
    // MPEG-4 Part 2, not H.264: the node must encode the video (a remuxed rung makes no thumbnails).
    '-c:v', 'mpeg4', '-q:v', '5', '-pix_fmt', 'yuv420p', '-g', '50',
    '-c:a', 'aac', '-b:a', '128k', '-c:s', 'srt',
    '-metadata:s:a:0', 'language=eng', '-metadata:s:a:0', 'title=English',
    '-metadata:s:a:1', 'language=ger', '-metadata:s:a:1', 'title=Deutsch',
    '-disposition:a:0', 'default', '-disposition:a:1', '0',
    '-metadata:s:s:0', 'language=eng', '-metadata:s:s:0', 'title=English',
    '-metadata:s:s:1', 'language=fre', '-metadata:s:s:1', 'title=Français',
    '-disposition:s:0', '0', '-disposition:s:1', '0',
    file,
  ], { prefix: 'ffmpeg' });
  writeFileSync(
    join(dir, 'meta.json'),
    JSON.stringify({ title: TITLE, year: 2026, overview: 'Two languages, two subtitle tracks.', genres: ['Documentary'], runtime_min: 1 }),
  );
  return file;
}

const videoSel = '[data-testid="player-video"]';
const hlsState = (page) =>
  page.evaluate((sel) => {
    const hls = window.__hls;
    const v = document.querySelector(sel);
    return {
      t: v ? v.currentTime : 0,
      paused: v ? v.paused : true,
      audio: hls ? hls.audioTracks.map((a) => ({ lang: a.lang, name: a.name, channels: a.channels })) : [],
      audioTrack: hls ? hls.audioTrack : -1,
      subs: hls ? hls.subtitleTracks.map((s) => ({ lang: s.lang, name: s.name, forced: s.forced })) : [],
      subtitleTrack: hls ? hls.subtitleTrack : -1,
      showing: v ? [...v.textTracks].filter((t) => t.mode === 'showing').map((t) => t.language || t.label) : [],
      fatal: Number(document.querySelector('[data-testid="player"]')?.getAttribute('data-fatal-errors') ?? 0),
    };
  }, videoSel);
const lang2 = (l) => ({ eng: 'en', ger: 'de', deu: 'de', fre: 'fr', fra: 'fr' })[String(l ?? '').toLowerCase().split('-')[0]] ?? String(l ?? '').toLowerCase().split('-')[0];

/** Waits until the video's currentTime passes `from + by` (playback advances: no stall). */
async function advances(page, by, what) {
  const start = (await hlsState(page)).t;
  return poll(
    `${what}: currentTime to pass ${(start + by).toFixed(1)} s`,
    async () => {
      const s = await hlsState(page);
      check(s.fatal === 0, `hls.js reported a fatal error (${what})`);
      return s.t > start + by ? s.t : null;
    },
    30_000,
    100,
  );
}

let browser;
let page;
let testnetUp = false;
let failed = false;
try {
  check(existsSync(nodeBin), `missing ${nodeBin} (cargo build -p reelnet-node, or set NODE_BIN)`);
  if (!existsSync(join(root, 'web/dist/index.html'))) {
    log('building the web app (web/dist is missing)');
    await run('npm', ['run', 'build', '--silent'], { prefix: 'web', cwd: join(root, 'web') });
  }
  const mediaDir = join(testnetDir, 'media');
  log(`making the source (${seconds} s, 2 audio + 2 subtitle streams)`);
  const movieFile = await makeMovie(mediaDir);

  log(`starting a 1-node testnet in ${testnetDir}`);
  await run('bash', ['testnet/up.sh', '-n', '1'], { prefix: 'up' });
  testnetUp = true;
  const base = 'http://127.0.0.1:8081';

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: process.env.E2E_HEADFUL !== '1',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--autoplay-policy=no-user-gesture-required'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(reportCspViolations);
  page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const pageErrors = [];
  const cspViolations = [];
  const badMedia = [];
  let master = null;
  let playAnswer = null;
  let thumbsStatus = null;
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => isCspViolation(m.text()) && cspViolations.push(m.text()));
  page.on('response', async (r) => {
    // (thumbnails.vtt is a documented 404 for a movie without thumbnails; checked below.)
    const thumbsIndex = new URL(r.url()).pathname.endsWith('/thumbnails.vtt') && r.status() === 404;
    if (r.status() >= 400 && r.url().includes('/hls/') && !thumbsIndex) badMedia.push(`${r.status()} ${r.url()}`);
    if (r.ok() && /\/master\.m3u8/.test(r.url())) master = await r.text().catch(() => master);
    if (r.ok() && /\/api\/v1\/movies\/[^/]+\/play$/.test(new URL(r.url()).pathname)) playAnswer = await r.json().catch(() => playAnswer);
    if (new URL(r.url()).pathname.endsWith('/thumbnails.vtt')) thumbsStatus = r.status();
  });

  // Register, verify, sign in (the tracker's pages).
  const mailDir = join(testnetDir, 'mail');
  await registerAtTracker(page, {
    node: base,
    email: EMAIL,
    displayName: 'Polyglot',
    password: PASSWORD,
    verificationLink: (to) =>
      poll(`the verification mail to ${to}`, () => {
        for (const sub of ['new', 'cur']) {
          const d = join(mailDir, sub);
          if (!existsSync(d)) continue;
          for (const name of readdirSync(d)) {
            const text = readFileSync(join(d, name), 'utf8').replace(/=\r?\n/g, '').replace(/=3D/gi, '=');
            if (!text.includes(`To: ${to}`)) continue;
            const m = text.match(/https?:\/\/[^\s"<>]+\/verify\?token=[A-Za-z0-9_-]+/);
            if (m) return m[0];
          }
        }
        return null;
      }, 30_000),
  });
  await signInFromNode(page, { node: base, email: EMAIL, password: PASSWORD });
  await page.waitForSelector('[data-testid="search-input"]');
  log('signed in');

  // Preferences on the account page: German audio, French subtitles on.
  await page.goto(`${base}/account`);
  const form = page.locator('[data-testid="playback-preferences"]');
  await form.waitFor();
  await form.getByLabel('Audio language').selectOption('de');
  await form.getByLabel('Subtitles', { exact: true }).selectOption('on');
  await form.getByLabel('Subtitle language').selectOption('fr');
  const saved = page.waitForResponse((r) => r.url().endsWith('/api/v1/me/preferences') && r.request().method() === 'PUT');
  await page.click('[data-testid="save-playback-preferences"]');
  const savedBody = await (await saved).json();
  check(savedBody.audio_language === 'de' && savedBody.subtitles === 'on' && savedBody.subtitle_language === 'fr', `saved ${JSON.stringify(savedBody)}`);
  await page.waitForSelector('[data-testid="playback-preferences-status"]');
  log(`preferences saved: ${JSON.stringify(savedBody)}`);

  // The ingest: seeded slower than the node transcodes (so the download is what paces it)
  // but faster than realtime (so playback does not catch up with it).
  const torrents = join(mediaDir, 'torrents');
  mkdirSync(torrents, { recursive: true });
  const size = statSync(movieFile).size;
  const kibps = Math.max(16, Math.ceil(size / 1024 / downloadSeconds));
  log(`seeding it over BitTorrent at ${kibps} KiB/s (${(size / 1048576).toFixed(1)} MiB in about ${downloadSeconds.toFixed(0)} s) and ingesting it on node 1`);
  const seeder = spawn(nodeBin, ['seed', movieFile, '--listen', `127.0.0.1:${seedPort}`, '--torrent-dir', torrents, '--upload-kibps', String(kibps)], {
    cwd: root,
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  writeFileSync(join(testnetDir, 'seed.pid'), String(seeder.pid));
  const torrent = join(torrents, 'babel.mkv.torrent');
  await poll('the seeder to write its .torrent', () => existsSync(torrent) && readFileSync(torrent).length > 0, 60_000);
  const ingestDone = run(
    nodeBin,
    ['--config', 'configs/testnet/node.toml', '--data-dir', join(testnetDir, 'node1'), 'ingest', torrent, '--peer', `127.0.0.1:${seedPort}`, '--meta', join(mediaDir, 'meta.json')],
    { prefix: 'ingest' },
  );
  let ingestEnded = false;
  ingestDone.then(
    () => (ingestEnded = true),
    () => (ingestEnded = true),
  );
  // The node's own view of the job (its loopback admin API, as `reelnet-node ingest` uses).
  const admin = JSON.parse(readFileSync(join(testnetDir, 'node1', 'admin.json'), 'utf8'));
  const job = async () => {
    const r = await fetch(`${admin.url}/admin/v1/ingest`, { headers: { authorization: `Bearer ${admin.token}` } }).catch(() => null);
    if (!r?.ok) return null;
    const jobs = await r.json();
    if (!Array.isArray(jobs)) return null;
    return jobs.map((j) => j.progress).find((p) => String(p.source).includes('babel')) ?? null;
  };
  const downloading = (p) => p && p.total_bytes > 0 && p.downloaded_bytes < p.total_bytes;
  const movieId = await poll(
    'the catalog to list the movie while it is ingesting',
    async () => {
      const r = await fetch(`${base}/api/v1/catalog?per_page=100`).catch(() => null);
      if (!r?.ok) return null;
      const c = await r.json();
      return c.results?.find((m) => m.title === TITLE)?.id ?? null;
    },
    120_000,
    200,
  );
  const before = await job();
  check(downloading(before), `the torrent is not downloading when the movie appears: ${JSON.stringify(before)}`);
  log(`listed as ${movieId} with ${before.downloaded_bytes} of ${before.total_bytes} bytes downloaded`);

  // Open the movie while the torrent is still downloading.
  await page.goto(`${base}/watch/${encodeURIComponent(movieId)}`);
  await page.waitForSelector(videoSel);
  await poll('the master playlist', () => master, 30_000, 100);
  check(/#EXT-X-MEDIA:[^\n]*TYPE=AUDIO/.test(master), `no audio renditions in the master playlist:\n${master}`);
  check(/#EXT-X-MEDIA:[^\n]*TYPE=SUBTITLES/.test(master), `no subtitle renditions in the master playlist:\n${master}`);
  const s = await poll(
    'hls.js to list two audio and two subtitle tracks',
    async () => {
      const st = await hlsState(page);
      return st.audio.length >= 2 && st.subs.length >= 2 ? st : null;
    },
    60_000,
  );
  log(`audioTracks ${JSON.stringify(s.audio)}; subtitleTracks ${JSON.stringify(s.subs)}`);
  const audioLangs = s.audio.map((a) => lang2(a.lang));
  const subLangs = s.subs.map((t) => lang2(t.lang));
  check(audioLangs.includes('en') && audioLangs.includes('de'), `audio languages ${audioLangs}`);
  check(subLangs.includes('en') && subLangs.includes('fr'), `subtitle languages ${subLangs}`);

  // The preferences are applied at the start, and the renditions play.
  const start = await poll(
    'German audio and French subtitles on at the start',
    async () => {
      const st = await hlsState(page);
      return lang2(st.audio[st.audioTrack]?.lang) === 'de' && lang2(st.subs[st.subtitleTrack]?.lang) === 'fr' ? st : null;
    },
    30_000,
  );
  log(`at start: audio ${start.audio[start.audioTrack]?.name}, subtitles ${start.subs[start.subtitleTrack]?.name}`);
  await advances(page, 2, 'playback at start');
  const shown = await poll('a French text track showing', async () => {
    const st = await hlsState(page);
    return st.showing.some((l) => lang2(l) === 'fr' || /fran/i.test(l)) ? st.showing : null;
  });
  log(`text tracks showing: ${shown}`);
  const during = await job();
  check(!ingestEnded && downloading(during), `the download ended before the renditions played (raise MEDIA_DOWNLOAD_SECONDS): ${JSON.stringify(during)}`);
  log(`German audio and French subtitles played with ${during.downloaded_bytes} of ${during.total_bytes} bytes downloaded (${((100 * during.downloaded_bytes) / during.total_bytes).toFixed(0)} %)`);
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'media-while-downloading.png') });

  // The finished movie.
  await ingestDone;
  await poll(
    'the catalog to list the movie complete',
    async () => {
      const r = await fetch(`${base}/api/v1/catalog?per_page=100`).catch(() => null);
      if (!r?.ok) return null;
      const c = await r.json();
      return c.results?.find((m) => m.id === movieId && m.availability?.state === 'complete') ?? null;
    },
    60_000,
    500,
  );
  log('the ingest finished; reopening the movie');
  master = null;
  thumbsStatus = null;
  await page.goto(`${base}/watch/${encodeURIComponent(movieId)}`);
  await page.waitForSelector(videoSel);
  await poll('the master playlist', () => master, 30_000, 100);
  await poll(
    'German audio and French subtitles on again',
    async () => {
      const st = await hlsState(page);
      return lang2(st.audio[st.audioTrack]?.lang) === 'de' && lang2(st.subs[st.subtitleTrack]?.lang) === 'fr';
    },
    30_000,
  );
  await advances(page, 1, 'playback of the finished movie');

  // Switch audio mid-play through the audio menu: playback keeps going.
  await page.click('[data-testid="audio-menu-button"]');
  const english = page.locator('[data-testid="audio-menu-list"] [role="option"]', { hasText: /English/ }).first();
  await english.click();
  await poll('the English audio track', async () => {
    const st = await hlsState(page);
    return lang2(st.audio[st.audioTrack]?.lang) === 'en';
  });
  const after = await advances(page, 3, 'after switching audio');
  log(`switched to English audio; currentTime went on to ${after.toFixed(2)} s`);

  // c: captions off, and back on in French.
  await page.locator('body').click({ position: { x: 5, y: 5 } }).catch(() => {});
  await page.keyboard.press('c');
  await poll('captions off after c', async () => (await hlsState(page)).subtitleTrack === -1);
  await page.keyboard.press('c');
  await poll('French captions back after c', async () => {
    const st = await hlsState(page);
    return lang2(st.subs[st.subtitleTrack]?.lang) === 'fr';
  });
  log('c toggled captions off and back on (French)');
  await page.screenshot({ path: join(artifacts, 'media-player.png') });

  // Seek-bar thumbnails (the video is encoded, not remuxed, so the movie has them).
  check(playAnswer?.thumbnails_url, `the play answer names no thumbnail index: ${JSON.stringify(playAnswer)}`);
  await poll('the player to fetch the thumbnail index', () => thumbsStatus !== null, 15_000, 100);
  check(thumbsStatus === 200, `the thumbnail index answered ${thumbsStatus}`);
  const seek = page.locator('[data-testid="seek"]');
  const box = await seek.boundingBox();
  check(box, 'no seek bar');
  const thumbReply = page.waitForResponse((r) => new URL(r.url()).pathname.endsWith('.jpg'), { timeout: 15_000 });
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
  const thumb = page.locator('[data-testid="seek-thumb"]');
  await thumb.waitFor({ timeout: 15_000 });
  const url = await thumb.getAttribute('data-url');
  const r = await thumbReply.catch(() => null);
  check(r && r.ok(), `the thumbnail sheet ${url} did not load (${r ? r.status() : 'no request'})`);
  log(`hovering the middle of the seek bar shows a ${await thumb.evaluate((e) => e.style.width)} tile of ${new URL(url).pathname}`);
  await page.screenshot({ path: join(artifacts, 'media-thumbnail.png') });

  check(badMedia.length === 0, `failed media requests:\n${badMedia.join('\n')}`);
  check(pageErrors.length === 0, `uncaught errors in the page:\n${pageErrors.join('\n')}`);
  check(cspViolations.length === 0, `Content-Security-Policy violations:\n${cspViolations.join('\n')}`);
  log(`PASS in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
} catch (err) {
  failed = true;
  console.error(`\nMEDIA E2E FAILED: ${err instanceof Failure ? err.message : err?.stack ?? err}`);
  if (page) {
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'media-failure.png') }).catch(() => {});
    console.error(`  page: ${page.url()} (screenshot web/e2e/artifacts/media-failure.png)`);
  }
  for (const name of ['tracker.log', 'node1.log']) {
    const f = join(testnetDir, name);
    if (!existsSync(f)) continue;
    const lines = readFileSync(f, 'utf8').trimEnd().split('\n').slice(-20);
    console.error(`--- last lines of ${f}\n${lines.join('\n')}`);
  }
} finally {
  await browser?.close().catch(() => {});
  const seedPid = existsSync(join(testnetDir, 'seed.pid')) ? Number(readFileSync(join(testnetDir, 'seed.pid'), 'utf8')) : 0;
  if (seedPid) {
    try {
      process.kill(seedPid);
    } catch {
      // already gone
    }
  }
  if (process.env.E2E_KEEP === '1') {
    log(`E2E_KEEP=1: the testnet keeps running from ${testnetDir} (stop: TESTNET_DIR=${testnetDir} testnet/down.sh)`);
  } else {
    if (testnetUp || existsSync(join(testnetDir, 'pids'))) await run('bash', ['testnet/down.sh'], { prefix: 'down' }).catch(() => {});
    if (failed) console.error(`testnet logs kept in ${testnetDir}`);
    else rmSync(testnetDir, { recursive: true, force: true });
  }
}
process.exit(failed ? 1 : 0);
