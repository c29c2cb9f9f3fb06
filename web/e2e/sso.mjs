// End-to-end sign-in test (docs/signin.md): a real tracker, two real nodes and Debian's
// Chromium, each process on its own loopback address so cookies behave as between real
// sites — the tracker at http://localhost:PORT (WebAuthn needs a host name), node a at
// 127.0.0.2 behind a capture proxy at 127.0.0.4 (the origin in node a's certificate), node
// b at 127.0.0.3. Nodes hold no movies: this is about accounts and tokens.
//
//   register and verify on the tracker's pages → sign in to node a through the proxy (one
//   consent) → reset the password on the tracker → sign in again: the proxy saw no
//   password and no reset or verification token, and no /api/v1/auth/ request;
//   → node b after one consent (no password asked again), a second visit needs no consent
//   → node a's token refused at b → a node token gets 403 on DELETE /me and on an admin
//   route → two tabs refreshing at once both keep the session; a replayed refresh token
//   ends its family → a passkey signs in → a CLI completes the device grant; its token
//   cannot change the account → revoking node a ends its sessions.
//
// Run: `node web/e2e/sso.mjs` (scripts/test.sh does, after building the binaries).
// Env: CHROMIUM (default /usr/bin/chromium), E2E_KEEP=1 keeps the directory and logs.

import { createServer, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { isCspViolation, reportCspViolations } from './csp.mjs';
import { Procs, freePort, runSync, startNet } from './net.mjs';

const dir = mkdtempSync(join(tmpdir(), 'reelnet-signin-'));
const procs = new Procs(dir);
const t0 = Date.now();
const PASSWORD = 'first horse battery staple';
const NEW_PASSWORD = 'second horse battery staple';
const EMAIL = `signin-${Date.now()}@reelnet.test`;
const ADMIN_EMAIL = `admin-${Date.now()}@reelnet.test`;

function log(msg) {
  console.log(`[sso ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
}
class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

/** Waits for a mail to `to` whose text matches `re`; returns the first match. */
async function mailLink(to, re) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    for (const sub of ['new', 'cur']) {
      const d = join(dir, 'mail', sub);
      if (!existsSync(d)) continue;
      for (const name of readdirSync(d)) {
        const text = readFileSync(join(d, name), 'utf8').replace(/=\r?\n/g, '').replace(/=3D/gi, '=');
        if (!text.includes(`To: ${to}`)) continue;
        const m = text.match(re);
        if (m) return m[0];
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Failure(`no mail to ${to} matching ${re} within 30 s`);
}

// --- the capture proxy in front of node a --------------------------------------------
const captured = [];
// While set, `POST /auth/session` requests through the capture proxy are held until
// `count` of them have arrived, then all are forwarded together: "two tabs at once" then
// means at once at the node, whatever the browser's scheduling (with a grace of 0 s, a
// second tab's request reaching the node after the first one's refresh finished is a
// replay; a fresh-clone CI run on a loaded machine got 200, 401 that way).
let sessionBarrier = null;

function captureProxy(listenHost, listenPort, upstreamHost, upstreamPort) {
  const server = createServer((req, res) => {
    const body = [];
    req.on('data', (c) => body.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(body);
      captured.push({ method: req.method, url: req.url, headers: req.headers, body: raw.toString('latin1') });
      if (sessionBarrier && req.method === 'POST' && req.url === '/auth/session') {
        sessionBarrier.held.push(() => forward(raw));
        if (sessionBarrier.held.length === sessionBarrier.count) {
          const go = sessionBarrier.held;
          sessionBarrier = null;
          for (const f of go) f();
        }
        return;
      }
      forward(raw);
    });
    const forward = (raw) => {
      const up = httpRequest(
        { host: upstreamHost, port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
        (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
        },
      );
      up.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      up.end(raw);
    };
  });
  // WebSocket upgrades: record the request, then pipe bytes both ways (recording the
  // browser's side).
  server.on('upgrade', (req, socket, head) => {
    const rec = { method: req.method, url: req.url, headers: req.headers, body: head.toString('latin1') };
    captured.push(rec);
    const up = connect(upstreamPort, upstreamHost, () => {
      let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(`${lines}\r\n`);
      up.write(head);
      socket.on('data', (c) => {
        rec.body += c.toString('latin1');
      });
      socket.pipe(up).pipe(socket);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  return new Promise((ok) => server.listen(listenPort, listenHost, () => ok(server)));
}

// --- pages -------------------------------------------------------------------------
const onTracker = (page, tracker) => page.url().startsWith(tracker);

/**
 * Signs in to the node whose site is `origin` with `email`/`password`: from the node's
 * sign-in route through the tracker's pages (sign-in form when needed, consent when
 * asked) back to the node. Returns what happened: `{ askedPassword, askedConsent }`.
 */
async function signIn(page, origin, tracker, email, password, { consent = true } = {}) {
  // Leave the previous site first: its app may be navigating on its own (a sign-in redirect).
  await page.goto('about:blank');
  await page.goto(`${origin}/auth/login?return=/`);
  const seen = { askedPassword: false, askedConsent: false };
  for (let step = 0; step < 10; step++) {
    await page.waitForLoadState('domcontentloaded');
    if (!onTracker(page, tracker)) {
      check(page.url().startsWith(origin), `sign-in ended at ${page.url()}, not on ${origin}`);
      return seen;
    }
    if (await page.locator('#allow').count()) {
      seen.askedConsent = true;
      check(consent, `a consent page was shown for ${origin} though it was given before`);
      const text = await page.locator('body').innerText();
      check(text.includes(origin), `the consent page does not name the node's registered origin ${origin}: ${text}`);
      await Promise.all([page.waitForNavigation(), page.click('#allow')]);
      continue;
    }
    if (await page.locator('#password').count()) {
      seen.askedPassword = true;
      await page.fill('#email', email);
      await page.fill('#password', password);
      await Promise.all([page.waitForNavigation(), page.click('#sign-in')]);
      continue;
    }
    throw new Failure(`unexpected tracker page during sign-in: ${page.url()}: ${(await page.locator('body').innerText()).slice(0, 300)}`);
  }
  throw new Failure('sign-in did not finish in 10 steps');
}

/** `POST /auth/session` from the page's origin: `{status, body}`. */
const session = (page) =>
  page.evaluate(async () => {
    const r = await fetch('/auth/session', { method: 'POST', credentials: 'same-origin' });
    let body = null;
    try {
      body = await r.json();
    } catch {
      // no body
    }
    return { status: r.status, body };
  });

async function refreshCookie(context, origin) {
  const all = await context.cookies(origin);
  const c = all.find((x) => /reelnet_refresh/.test(x.name));
  check(c, `no refresh cookie on ${origin} (cookies: ${all.map((x) => x.name).join(', ')})`);
  return c;
}

let browser;
let failed = false;
try {
  // Node a's certificate names the capture proxy's origin: the browser only ever talks to
  // node a through it.
  const net = await startNet(procs, dir, {
    graceSecs: 0, // replays are detected at once here; two tabs share one refresh at the node
    originA: async (a) => {
      const pp = await freePort('127.0.0.4');
      const upstream = new URL(a.direct);
      await captureProxy('127.0.0.4', pp, upstream.hostname, Number(upstream.port));
      return `http://127.0.0.4:${pp}`;
    },
  });
  const { tracker, trackerArgs, trackerBin } = net;
  const proxyA = net.a.origin;
  const nodeB = net.b.origin;
  const nodeAId = net.a.id;
  log(`tracker ${tracker}`);
  log(`node a ${proxyA} (capture proxy → ${net.a.direct}, ${nodeAId}); node b ${nodeB}`);

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  });
  const context = await browser.newContext();
  // Every CSP violation on the tracker's pages or the nodes' site fails the test.
  await context.addInitScript(reportCspViolations);
  const cspViolations = [];
  context.on('page', (p) => p.on('console', (m) => isCspViolation(m.text()) && cspViolations.push(`${p.url()}: ${m.text()}`)));
  const page = await context.newPage();

  // 1. Register and verify on the tracker's own pages.
  log('registering on the tracker');
  await page.goto(`${tracker}/register`);
  await page.fill('#email', EMAIL);
  await page.fill('#display-name', 'Sign-in Tester');
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('#register')]);
  const verify = await mailLink(EMAIL, /https?:\/\/[^\s"<>]+\/verify\?token=[A-Za-z0-9_-]+/);
  check(verify.startsWith(`${tracker}/`), `the verification link points at ${verify}, not the tracker`);
  const verifyToken = new URL(verify).searchParams.get('token');
  await page.goto(verify);
  await Promise.all([page.waitForNavigation(), page.click('#verify')]);

  // 2. Sign in to node a through the proxy: the tracker asks for the password (unless the
  //    registration signed us in) and for consent once.
  log('signing in to node a through the capture proxy');
  const first = await signIn(page, proxyA, tracker, EMAIL, PASSWORD);
  check(first.askedConsent, 'node a got a code without the viewer consenting');
  check((await session(page)).status === 200, 'no session on node a after signing in');

  // 3. Reset the password on the tracker, sign in again through node a.
  log('resetting the password on the tracker');
  await page.goto(`${tracker}/reset`);
  await page.fill('#email', EMAIL);
  await Promise.all([page.waitForNavigation(), page.click('#send')]);
  const reset = await mailLink(EMAIL, /https?:\/\/[^\s"<>]+\/reset\/confirm\?token=[A-Za-z0-9_-]+/);
  check(reset.startsWith(`${tracker}/`), `the reset link points at ${reset}, not the tracker`);
  const resetToken = new URL(reset).searchParams.get('token');
  await page.goto(reset);
  await page.fill('#password', NEW_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('#save')]);
  await context.clearCookies();
  const again = await signIn(page, proxyA, tracker, EMAIL, NEW_PASSWORD, { consent: false });
  check(again.askedPassword, 'the tracker did not ask for the password after the reset');
  check((await session(page)).status === 200, 'no session on node a after signing in again');

  const leaks = captured.filter((r) => {
    const text = JSON.stringify(r);
    return [PASSWORD, NEW_PASSWORD, verifyToken, resetToken].some((s) => s && text.includes(s)) || r.url.startsWith('/api/v1/auth/');
  });
  check(captured.length > 5, `the proxy recorded only ${captured.length} requests`);
  check(leaks.length === 0, `node a saw credentials: ${JSON.stringify(leaks.map((r) => `${r.method} ${r.url}`))}`);
  log(`node a saw ${captured.length} requests: no password, no reset or verification token`);

  // 4. Node b: one consent, no password; the second time neither.
  log('continuing on node b');
  const onB = await signIn(page, nodeB, tracker, EMAIL, NEW_PASSWORD);
  check(!onB.askedPassword, 'node b asked for the password again (no single sign-on)');
  check(onB.askedConsent, 'node b got a code without the viewer consenting to it');
  await page.evaluate(() => fetch('/auth/logout', { method: 'POST' }));
  const onB2 = await signIn(page, nodeB, tracker, EMAIL, NEW_PASSWORD, { consent: false });
  check(!onB2.askedPassword && !onB2.askedConsent, 'the second visit to node b asked again');

  // 5. Node a's token at node b.
  await page.goto(`${proxyA}/`);
  // Let the app's own refresh on page load finish first: with a grace of 0 s, sending the
  // cookie it is rotating a moment after the node answered (before the browser stored the
  // new one) is a replay, and the family is revoked (one fresh-clone CI run hit this).
  await page.waitForLoadState('networkidle');
  const tokA = (await session(page)).body?.access_token;
  check(tokA, 'no access token from node a');
  const meAtA = await fetch(`${proxyA}/api/v1/me`, { headers: { authorization: `Bearer ${tokA}` } });
  check(meAtA.status === 200, `node a's token does not work at node a (${meAtA.status})`);
  const meAtB = await fetch(`${nodeB}/api/v1/me`, { headers: { authorization: `Bearer ${tokA}` } });
  check(meAtB.status === 401, `node a's token worked at node b (${meAtB.status})`);
  const direct = await fetch(`${tracker}/api/v1/me`, { headers: { authorization: `Bearer ${tokA}` } });
  check(direct.status === 401, `node a's token worked at the tracker without node a (${direct.status})`);
  log('node a token: 200 at a, 401 at b, 401 at the tracker directly');

  // 6. A node token cannot change the account or the network.
  const del = await fetch(`${proxyA}/api/v1/me`, { method: 'DELETE', headers: { authorization: `Bearer ${tokA}` } });
  check(del.status === 403, `DELETE /api/v1/me with a node token answered ${del.status}`);
  runSync(trackerBin, [...trackerArgs, 'user', 'add', ADMIN_EMAIL, '--password', PASSWORD, '--verified', '--admin']);
  const adminCtx = await browser.newContext();
  const adminPage = await adminCtx.newPage();
  await signIn(adminPage, proxyA, tracker, ADMIN_EMAIL, PASSWORD);
  const adminTok = (await session(adminPage)).body?.access_token;
  const revokeB = await fetch(`${proxyA}/api/v1/admin/nodes/${net.b.id}/revoke`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminTok}`, 'content-type': 'application/json' },
    body: '{}',
  });
  check(revokeB.status === 403, `an admin's node token could revoke a node (${revokeB.status})`);
  await adminCtx.close();
  log('node tokens: 403 on DELETE /me and on an admin route');

  // 7. Two tabs refreshing at once keep the session; a replayed refresh token ends it.
  const tab2 = await context.newPage();
  await tab2.goto(`${proxyA}/`);
  await tab2.waitForLoadState('networkidle'); // the new tab's own refresh first (as above)
  sessionBarrier = { count: 2, held: [] };
  const [r1, r2] = await Promise.all([session(page), session(tab2)]);
  check(r1.status === 200 && r2.status === 200, `two tabs refreshing at once: ${r1.status}, ${r2.status}`);
  check((await session(page)).status === 200, 'the session ended after two tabs refreshed at once');
  await tab2.close();
  const old = await refreshCookie(context, proxyA);
  check((await session(page)).status === 200, 'refresh failed');
  await context.addCookies([{ ...old }]);
  const replay = await session(page);
  check(replay.status === 401, `a replayed refresh token was accepted (${replay.status})`);
  const after = await session(page);
  check(after.status === 401, `the family survived a replayed refresh token (${after.status})`);
  log('two tabs at once: both 200; replayed refresh token: 401 and the family ended');

  // 8. A passkey signs in (WebAuthn on the tracker's origin, Chromium's virtual authenticator).
  log('adding a passkey');
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
  });
  await page.goto(`${tracker}/account`);
  if (await page.locator('#password').count()) {
    await page.fill('#email', EMAIL);
    await page.fill('#password', NEW_PASSWORD);
    await Promise.all([page.waitForNavigation(), page.click('#sign-in')]);
  }
  check(page.url().startsWith(`${tracker}/account`), `not on the account page: ${page.url()}`);
  await page.click('#add-passkey');
  // The account page lists the passkey once it is stored.
  await page
    .waitForFunction(() => document.querySelector('#passkeys') !== null, null, { timeout: 10_000 })
    .catch(async () => {
      throw new Failure(`no passkey added: ${await page.textContent('#passkey-status')}`);
    });
  await context.clearCookies();
  await page.goto(`${tracker}/login`);
  check((await page.locator('#passkey-sign-in').count()) === 1, 'the sign-in page offers no passkey');
  await page.fill('#email', EMAIL);
  await page.click('#passkey-sign-in');
  await page.waitForURL(`${tracker}/account`, { timeout: 10_000 }).catch(async () => {
    throw new Failure(`passkey sign-in failed: ${await page.textContent('#passkey-status')}`);
  });
  check((await page.locator('body').innerText()).includes(EMAIL), 'the passkey did not sign in');
  log('passkey: added, signed in with it');

  // 9. The device grant from a CLI client.
  log('device grant from the CLI');
  const cli = procs.start('device', trackerBin, ['device-login', '--url', tracker, '--name', 'Living-room TV']);
  let code = null;
  for (let i = 0; i < 100 && !code; i++) {
    code = cli.logText().match(/\b([A-Z2-9]{4}-[A-Z2-9]{4})\b/)?.[1] ?? null;
    if (!code) await new Promise((r) => setTimeout(r, 100));
  }
  check(code, `the CLI printed no user code: ${cli.logText()}`);
  await page.goto(`${tracker}/device`);
  await page.fill('#user-code', code);
  await Promise.all([page.waitForNavigation(), page.click('#continue')]);
  check((await page.locator('body').innerText()).includes('Living-room TV'), 'the device page does not name the device');
  await Promise.all([page.waitForNavigation(), page.click('#allow')]);
  const exit = await new Promise((ok) => cli.on('exit', ok));
  check(exit === 0, `the device CLI exited with ${exit}: ${cli.logText()}`);
  const deviceToken = JSON.parse(cli.logText().split('\n').find((l) => l.startsWith('{')) ?? '{}').access_token;
  check(deviceToken, `no token from the device CLI: ${cli.logText()}`);
  const meDevice = await fetch(`${tracker}/api/v1/me`, { headers: { authorization: `Bearer ${deviceToken}` } });
  check(meDevice.status === 200, `the device token cannot read the account (${meDevice.status})`);
  const delDevice = await fetch(`${tracker}/api/v1/me`, { method: 'DELETE', headers: { authorization: `Bearer ${deviceToken}` } });
  check(delDevice.status === 403, `a device token could delete the account (${delDevice.status})`);
  log('device grant: token issued, reads /me, 403 on DELETE /me');

  // 10. Revoking node a ends every session issued through it.
  await signIn(page, proxyA, tracker, EMAIL, NEW_PASSWORD, { consent: false });
  check((await session(page)).status === 200, 'no session on node a before revoking it');
  runSync(trackerBin, [...trackerArgs, 'node', 'revoke', nodeAId]);
  const revoked = await session(page);
  check(revoked.status === 401, `node a's session outlived its revocation (${revoked.status})`);
  log('revoking node a: its session ends at once');

  // 11. The password changes on the tracker's account page (a recent sign-in), not on a node.
  // Leave node a's app first: with its session ended it sends itself to sign in again, and
  // that navigation can land after (and replace) the account page.
  await page.goto('about:blank');
  await page.goto(`${tracker}/account`);
  check(page.url().startsWith(`${tracker}/account`), `the account page sent the browser to ${page.url()}`);
  await page.fill('#current-password', NEW_PASSWORD);
  await page.fill('#new-password', PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('#change-password')]);
  const note = (await page.textContent('.message'))?.trim() ?? '';
  check(note.startsWith('Password changed'), `password not changed: ${note}`);
  log('password changed on the tracker');

  check(cspViolations.length === 0, `CSP violations: ${cspViolations.join('; ')}`);
  log('all sign-in checks passed');
} catch (e) {
  failed = true;
  console.error(`[sso] FAILED: ${e instanceof Failure ? e.message : e.stack}`);
  procs.stop({ writeLogs: true });
  console.error(`[sso] logs in ${dir}`);
} finally {
  await browser?.close().catch(() => {});
  procs.stop();
  if (!failed && process.env.E2E_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  process.exit(failed ? 1 : 0);
}
