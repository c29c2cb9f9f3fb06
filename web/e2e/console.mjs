// End-to-end test of the operator console (issue 21) with real processes and Debian's
// Chromium: an SMTP sink, a tracker at http://localhost:PORT serving the network console
// (`[pages] console_dir = web/dist`), node a on 127.0.0.2 (joined with a CLI invite) and —
// started by this test from an invite made in the console — node b on 127.0.0.3.
//
//   the admin signs in on node a (through the tracker's pages) and sees its console (Node);
//   → on the tracker's /console/network creates an invite and reads the command to run
//   → this test starts node b with it; the member appears in the console (live polling)
//   → the admin signs in on node b, starts an ingest of a small ffmpeg-made file from its
//   Jobs page and watches the progress bar reach done
//   → revokes node b in the network console and sees it marked revoked
//   → an ordinary user has no operator menu, gets 403 from every console route (node and
//   tracker) and sees the console's refusal on both origins.
// Screenshots of the console go to docs/img/console-*.png (the README shows them).
//
// Run: `node web/e2e/console.mjs` (scripts/test.sh does, after building the binaries and
// web/dist). Env: CHROMIUM (default /usr/bin/chromium), E2E_KEEP=1 keeps the directory.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { isCspViolation, reportCspViolations } from './csp.mjs';
import { Procs, freePort, nodeIdOf, root, runSync, waitHttp } from './net.mjs';

const dir = mkdtempSync(join(tmpdir(), 'reelnet-console-'));
const procs = new Procs(dir);
const t0 = Date.now();
const PASSWORD = 'console horse battery staple';
const ADMIN = `admin-${Date.now()}@reelnet.test`;
const VIEWER = `viewer-${Date.now()}@reelnet.test`;
const SHOTS = join(root, 'docs/img');

function log(msg) {
  console.log(`[console ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
}
class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

/** Signs in on the node at `origin` (to `path`): the tracker's sign-in page and consent when asked. */
async function signIn(page, origin, email, path) {
  await page.goto('about:blank');
  await page.goto(`${origin}/auth/login?return=${encodeURIComponent(path)}`);
  for (let step = 0; step < 10; step++) {
    await page.waitForLoadState('domcontentloaded');
    if (page.url().startsWith(origin)) return;
    if (await page.locator('#allow').count()) {
      await Promise.all([page.waitForNavigation(), page.click('#allow')]);
      continue;
    }
    if (await page.locator('#password').count()) {
      await page.fill('#email', email);
      await page.fill('#password', PASSWORD);
      await Promise.all([page.waitForNavigation(), page.click('#sign-in')]);
      continue;
    }
    await page.waitForTimeout(100);
  }
  throw new Failure(`sign-in to ${origin} did not come back (at ${page.url()})`);
}

async function main() {
  const cache = process.env.REELNET_CACHE ?? join(process.env.HOME ?? '/tmp', '.cache/reelnet');
  const target = process.env.CARGO_TARGET_DIR ?? join(cache, 'target');
  const trackerBin = join(target, 'debug', 'reelnet-tracker');
  const nodeBin = join(target, 'debug', 'reelnet-node');
  const webDist = join(root, 'web/dist');
  check(readFileSync(join(webDist, 'index.html'), 'utf8').includes('root'), 'web/dist is missing: npm run build in web/');

  const [pt, ps, pa, pb, p2pA, p2pB, quicA, quicB] = await Promise.all([
    freePort('127.0.0.1'), freePort('127.0.0.1'), freePort('127.0.0.2'), freePort('127.0.0.3'),
    freePort('127.0.0.1'), freePort('127.0.0.1'), freePort('127.0.0.1'), freePort('127.0.0.1'),
  ]);
  const tracker = `http://localhost:${pt}`;
  const trackerApi = `http://127.0.0.1:${pt}`;
  const a = { origin: `http://127.0.0.2:${pa}`, dir: join(dir, 'nodeA') };
  const b = { origin: `http://127.0.0.3:${pb}`, dir: join(dir, 'nodeB') };

  procs.start('smtp', process.env.REELNET_PYTHON ?? 'python3', ['-m', 'aiosmtpd', '-n', '-l', `127.0.0.1:${ps}`, '-c', 'aiosmtpd.handlers.Mailbox', join(dir, 'mail')]);
  writeFileSync(
    join(dir, 'tracker.toml'),
    `issuer = "${tracker}"\npublic_url = "${tracker}"\nweb_url = "${a.origin}"\n\n[pages]\nconsole_dir = ${JSON.stringify(webDist)}\n\n[smtp]\nhost = "127.0.0.1"\nport = ${ps}\ntls = "none"\nattempts = 2\n`,
  );
  const trackerArgs = ['--config', join(dir, 'tracker.toml'), '--data-dir', join(dir, 'tracker')];
  procs.start('tracker', trackerBin, [...trackerArgs, '--listen', `127.0.0.1:${pt}`]);
  await waitHttp(`${trackerApi}/healthz`, 30);
  runSync(trackerBin, [...trackerArgs, 'user', 'add', ADMIN, '--password', PASSWORD, '--verified', '--admin']);
  runSync(trackerBin, [...trackerArgs, 'user', 'add', VIEWER, '--password', PASSWORD, '--verified']);

  const nodeConfig = readFileSync(join(root, 'configs/testnet/node.toml'), 'utf8').replaceAll('http://localhost:7070', tracker);
  writeFileSync(join(dir, 'node.toml'), nodeConfig);
  const nodeArgs = (node, listen, p2p, quic, invite, bootstrap) => [
    '--config', join(dir, 'node.toml'), '--data-dir', node.dir, '--listen', listen, '--public-url', node.origin,
    '--p2p', `/ip4/127.0.0.1/tcp/${p2p}`, '--quic', `127.0.0.1:${quic}`, '--tracker', trackerApi,
    '--web-dir', webDist, '--invite', invite, ...(bootstrap ? ['--bootstrap', bootstrap] : []),
  ];
  const inviteA = runSync(trackerBin, [...trackerArgs, 'node', 'invite', '--role', 'replica', '--ttl', '1h']).trim().split('\n').pop();
  procs.start('nodeA', nodeBin, nodeArgs(a, `127.0.0.2:${pa}`, p2pA, quicA, inviteA));
  await waitHttp(`${a.origin}/healthz`);
  a.id = await nodeIdOf(a.dir);

  // A small local movie for the ingest (ffmpeg CLI).
  const clip = join(dir, 'clip.mp4');
  const ff = spawnSync('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25:duration=4',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=4', '-c:v', 'libx264', '-preset', 'ultrafast',
    '-g', '50', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', clip,
  ]);
  check(ff.status === 0, `ffmpeg failed: ${ff.stderr}`);
  log(`tracker ${tracker}, node a ${a.origin}`);

  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
  const cspErrors = [];
  const watch = (page) => {
    page.on('console', (m) => {
      if (isCspViolation(m.text())) cspErrors.push(`${page.url()}: ${m.text()}`);
    });
    page.on('dialog', (d) => d.accept());
  };
  try {
    mkdirSync(SHOTS, { recursive: true });
    const admin = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await admin.addInitScript(reportCspViolations);
    const page = await admin.newPage();
    watch(page);

    // 1. The admin on node a's console.
    await signIn(page, a.origin, ADMIN, '/console');
    await page.waitForSelector('[data-testid="card-reachability"]', { timeout: 20_000 });
    check(await page.locator('[data-testid="nav-console"]').isVisible(), 'no operator menu for the admin');
    check((await page.locator('[data-testid="card-membership"]').innerText()).includes('replica'), 'membership card without roles');
    log('admin sees node a\'s console');

    // 2. The network console on the tracker's origin: create an invite.
    await page.goto(`${tracker}/console/network`);
    await page.waitForSelector(`[data-testid="member-${a.id}"]`, { timeout: 20_000 });
    await page.getByRole('checkbox', { name: 'ingest', exact: true }).check();
    await page.getByRole('button', { name: 'Create invite' }).click();
    const command = (await page.locator('[data-testid="invite-command"]').innerText({ timeout: 10_000 })).trim();
    const token = command.split(' ').pop();
    check(command === `reelnet-node --tracker ${tracker} --invite ${token}` && token.startsWith('rninv_'), `odd invite command: ${command}`);
    log(`invite made in the console: ${command.slice(0, 60)}…`);

    // 3. Node b joins with it (this test's own process) and shows up as a member.
    procs.start('nodeB', nodeBin, nodeArgs(b, `127.0.0.3:${pb}`, p2pB, quicB, token, `/ip4/127.0.0.1/tcp/${p2pA}`));
    await waitHttp(`${b.origin}/healthz`);
    b.id = await nodeIdOf(b.dir);
    const rowB = page.locator(`[data-testid="member-${b.id}"]`);
    await rowB.waitFor({ timeout: 20_000 });
    check((await rowB.innerText()).includes('ingest'), 'node b without its ingest role');
    log('node b appears as a member');
    await page.screenshot({ path: join(SHOTS, 'console-network.png'), fullPage: true });

    // 4. The admin on node b: an ingest from its Jobs page, watched to done.
    await signIn(page, b.origin, ADMIN, '/console/jobs');
    await page.getByLabel('Magnet link or file path on the node').fill(clip);
    await page.getByLabel('Title (optional)').fill('Console clip');
    await page.getByRole('button', { name: 'Start ingest' }).click();
    const job = page.locator('[data-testid="job-1"]');
    await job.waitFor({ timeout: 10_000 });
    await page.locator('[data-testid="job-1"][data-state="done"]').waitFor({ timeout: 45_000 });
    const bar = await job.getByRole('progressbar').getAttribute('aria-valuenow');
    check(bar === '100', `the progress bar ended at ${bar}`);
    const tracks = await job.locator('.job-tracks .tag').allInnerTexts();
    check(tracks.length >= 2, `the job lists its tracks: ${tracks.join(', ')}`);
    log('ingest from the console done (progress bar at 100%)');
    await page.screenshot({ path: join(SHOTS, 'console-jobs.png'), fullPage: true });
    await page.goto(`${b.origin}/console`);
    await page.waitForSelector('[data-testid="card-replicas"] [role="progressbar"]', { timeout: 20_000 });
    // The last hour's charts: the node's first 10-second sample (the page polls its history).
    await page.waitForSelector('[data-testid="chart-Requests"]', { timeout: 30_000 });
    await page.screenshot({ path: join(SHOTS, 'console-node.png'), fullPage: true });
    const phone = await admin.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${b.origin}/console`);
    await phone.waitForSelector('[data-testid="card-disk"]', { timeout: 20_000 });
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `the node page is ${overflow}px wider than a phone`);
    await phone.screenshot({ path: join(SHOTS, 'console-phone.png'), fullPage: true });
    await phone.close();

    // 5. Revoke node b in the network console; it goes.
    await page.goto(`${tracker}/console/network`);
    await rowB.getByRole('button', { name: 'Revoke' }).click();
    await rowB.getByText(/^revoked/).waitFor({ timeout: 10_000 });
    check(!(await rowB.getByRole('button', { name: 'Revoke' }).count()), 'node b can still be revoked');
    const trackerList = JSON.parse(runSync(trackerBin, [...trackerArgs, 'node', 'list', '--json']));
    check(trackerList.nodes.find((n) => n.node_id === b.id)?.revoked === true, 'the tracker does not list node b as revoked');
    log('node b revoked from the console');

    // 6. An ordinary user: no menu, 403 from every console route, refusal pages.
    const viewerCtx = await browser.newContext();
    await viewerCtx.addInitScript(reportCspViolations);
    const v = await viewerCtx.newPage();
    watch(v);
    await signIn(v, a.origin, VIEWER, '/');
    await v.waitForSelector('nav[aria-label="Main"]');
    await v.waitForTimeout(500); // the menu's access check has answered
    check(!(await v.locator('[data-testid="nav-console"]').count()), 'an ordinary user sees the operator menu');
    const nodeStatuses = await v.evaluate(async () => {
      const s = await (await fetch('/auth/session', { method: 'POST' })).json();
      const h = { authorization: `Bearer ${s.access_token}`, 'content-type': 'application/json' };
      const out = {};
      for (const [m, p, body] of [
        ['GET', '/api/v1/console/access'], ['GET', '/api/v1/console/status'], ['GET', '/api/v1/console/history'],
        ['GET', '/api/v1/console/jobs'], ['POST', '/api/v1/console/jobs', '{"source":"/etc/hostname"}'],
        ['POST', '/api/v1/console/jobs/torrent', 'd4:infod6:lengthi1eee'], ['POST', '/api/v1/console/jobs/1/cancel'],
      ]) {
        out[`${m} ${p}`] = (await fetch(p, { method: m, headers: h, body })).status;
      }
      return out;
    });
    for (const [route, status] of Object.entries(nodeStatuses)) check(status === 403, `viewer got ${status} from node ${route}`);
    await v.goto(`${a.origin}/console`);
    await v.waitForSelector('[data-testid="not-operator"]', { timeout: 10_000 });
    // On the tracker's origin with the viewer's own tracker session.
    await v.goto(`${tracker}/console/network`);
    await v.waitForSelector('[data-testid="network-forbidden"]', { timeout: 10_000 });
    const trackerStatuses = await v.evaluate(async (nodeB) => {
      const out = {};
      for (const [m, p, body] of [
        ['GET', '/api/v1/admin/nodes'], ['GET', '/api/v1/admin/users'], ['GET', '/api/v1/admin/movies'],
        ['GET', '/api/v1/admin/requests'], ['POST', '/api/v1/admin/nodes/invites', '{"roles":["replica"]}'],
        ['POST', `/api/v1/admin/nodes/${nodeB}/revoke`, '{}'], ['PUT', `/api/v1/admin/nodes/${nodeB}/roles`, '{"roles":["edge"]}'],
        ['POST', '/api/v1/admin/movies/tmdb-603/bind', `{"manifest":"${'0'.repeat(64)}"}`],
        ['POST', '/api/v1/admin/requests/00000000000000000000000000000000/approve', '{}'],
      ]) {
        out[`${m} ${p}`] = (await fetch(p, { method: m, headers: { 'content-type': 'application/json' }, body })).status;
      }
      return out;
    }, b.id);
    for (const [route, status] of Object.entries(trackerStatuses)) check(status === 403, `viewer got ${status} from tracker ${route}`);
    log('an ordinary user: no operator menu, 403 from every console route on node and tracker');

    check(cspErrors.length === 0, `CSP violations:\n${cspErrors.join('\n')}`);
    log(`PASS in ${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in docs/img/console-*.png`);
  } finally {
    await browser.close();
  }
}

/** Stops every process and waits until they have exited (and written their logs). */
async function stopAll(opts) {
  const exited = procs.children.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((ok) => c.once('exit', ok))));
  procs.stop(opts);
  await Promise.all(exited.filter(Boolean));
}

main().then(
  async () => {
    await stopAll();
    if (!process.env.E2E_KEEP) rmSync(dir, { recursive: true, force: true });
  },
  (err) => {
    console.error(`[console] FAIL: ${err instanceof Failure ? err.message : err.stack}`);
    procs.stop({ writeLogs: true });
    console.error(`[console] logs in ${dir}`);
    process.exitCode = 1;
  },
);
