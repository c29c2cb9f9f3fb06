// The tracker's own pages in real Chromium (docs/signin.md, "Pages"): sign in with a
// password, add a passkey (Chromium's virtual authenticator, over CDP), sign out, sign in
// with the passkey, change the password — with no CSP violation and no failed request.
//
// Standalone: starts its own tracker (the debug binary in $CARGO_TARGET_DIR, built with
// `cargo build -p reelnet-tracker`) on a free loopback port with
// `public_url = http://localhost:<port>` (WebAuthn refuses IP addresses as relying-party
// ids). Not yet part of scripts/test.sh: fold it into the sign-in browser tests.
//
//   node web/e2e/tracker-pages.mjs

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { isCspViolation, reportCspViolations } from './csp.mjs';

const target = process.env.CARGO_TARGET_DIR || join(process.env.HOME, '.cache/reelnet/target');
const bin = join(target, 'debug/reelnet-tracker');
const chrome = process.env.CHROMIUM || '/usr/bin/chromium';

function fail(msg) {
  console.error(`tracker-pages: ${msg}`);
  process.exitCode = 1;
  throw new Error(msg);
}

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'reelnet-pages-'));
const port = await freePort();
const base = `http://localhost:${port}`;
const config = join(dir, 'tracker.toml');
writeFileSync(
  config,
  `data_dir = ${JSON.stringify(join(dir, 'data'))}\nlisten = "127.0.0.1:${port}"\npublic_url = "${base}"\n`,
);
const email = 'browser@example.org';
execFileSync(bin, ['--config', config, 'user', 'add', email, '--password', 'a long password', '--verified']);
const tracker = spawn(bin, ['--config', config], { stdio: 'ignore' });
let browser;
try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {}
    if (i > 100) fail('the tracker did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  browser = await chromium.launch({ executablePath: chrome, args: ['--no-sandbox'] });
  const ctx = await browser.newContext();
  await ctx.addInitScript(reportCspViolations);
  const page = await ctx.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || isCspViolation(m.text())) problems.push(m.text());
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
  });
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
    },
  });

  // Password sign-in (a same-origin form post: Origin null, Sec-Fetch-Site same-origin).
  await page.goto(`${base}/login?next=%2Faccount`);
  await page.fill('#email', email);
  await page.fill('#password', 'a long password');
  await page.click('#sign-in');
  await page.waitForURL(`${base}/account`);
  const weight = await page.evaluate(() => getComputedStyle(document.querySelector('header a')).fontWeight);
  if (weight !== '700') fail(`the stylesheet did not load (font-weight ${weight})`);

  // Add a passkey.
  await page.click('#add-passkey');
  await page
    .waitForFunction(() => document.querySelector('#passkeys') !== null, null, { timeout: 10000 })
    .catch(async () => fail(`no passkey added: ${await page.textContent('#passkey-status')}`));

  // Sign out, sign in with the passkey.
  await page.click('#sign-out');
  await page.waitForURL(/\/login/);
  await page.fill('#email', email);
  await page.click('#passkey-sign-in');
  await page
    .waitForURL(`${base}/account`, { timeout: 10000 })
    .catch(async () => fail(`passkey sign-in failed: ${await page.textContent('#passkey-status')}`));

  // A change right after signing in.
  await page.fill('#current-password', 'a long password');
  await page.fill('#new-password', 'another long password');
  await page.click('#change-password');
  const note = (await page.textContent('.message')).trim();
  if (!note.startsWith('Password changed')) fail(`password not changed: ${note}`);

  if (problems.length) fail(`console errors or failed requests: ${problems.join('; ')}`);
  console.log('tracker-pages: password sign-in, passkey added, passkey sign-in, password change: ok');
} finally {
  await browser?.close();
  tracker.kill();
  rmSync(dir, { recursive: true, force: true });
}
