// Sign-in steps shared by the browser tests (docs/signin.md). A node's site takes no
// credentials: the app (or its "Sign in" link) sends the browser to the node's gateway
// (`/auth/login?return=…`), which sends it on to the tracker's own pages — sign-in (`#email`,
// `#password`, `#sign-in`), registration (`#email`, `#display-name`, `#password`,
// `#register`), email verification (`#verify`), consent on the first visit to a node
// (`#allow`) — and back to the node, signed in.

/** The tracker's URL: E2E_TRACKER_URL, else demo.env's DEMO_TRACKER, else the testnet default. */
export function trackerUrl(demo = {}) {
  return (process.env.E2E_TRACKER_URL || demo.DEMO_TRACKER || `http://127.0.0.1:${process.env.BASE_PORT ?? 7070}`).replace(/\/+$/, '');
}

const originOf = (url) => {
  try {
    return new URL(url).origin;
  } catch {
    return '';
  }
};

/** Whether `selector` is visible now (false while the page is between documents). */
async function visible(page, selector) {
  return page
    .locator(selector)
    .first()
    .isVisible()
    .catch(() => false);
}

/** Text of the page's first error message (role=alert or .error), for failure messages. */
async function pageError(page) {
  return page
    .locator('[role="alert"], .error')
    .first()
    .textContent({ timeout: 500 })
    .then((t) => (t ?? '').trim())
    .catch(() => '');
}

/** A page on the tracker's site: not on the node's origin, at `pathname`. */
function atTracker(page, nodeOrigin, pathname) {
  const url = new URL(page.url());
  return url.origin !== nodeOrigin && url.origin !== 'null' && url.protocol.startsWith('http') && url.pathname === pathname;
}

/**
 * Follows sign-in from wherever the browser is (a node page that is leaving for sign-in, or
 * already the tracker's) until it is back on `node` and signed in (the app's main
 * navigation). On the way: types `email`/`password` on the tracker's sign-in page if it asks
 * (never on the node's origin), allows the node on the consent page if it asks. Returns what
 * happened: `{ typedPassword, consented, trackerOrigin }`.
 */
export async function completeSignIn(page, { node, email, password, timeoutMs = 45_000 }) {
  const nodeOrigin = originOf(node);
  const deadline = Date.now() + timeoutMs;
  const seen = { typedPassword: false, consented: false, trackerOrigin: null };
  for (;;) {
    const url = page.url();
    if (originOf(url) === nodeOrigin && (await visible(page, 'nav[aria-label="Main"]'))) return seen;
    if (originOf(url) !== nodeOrigin && url.startsWith('http')) {
      seen.trackerOrigin ??= originOf(url);
      if (await visible(page, '#allow')) {
        if (seen.consented) throw new Error(`the tracker asked for consent to ${nodeOrigin} twice (${url})`);
        seen.consented = true;
        await page.click('#allow');
        continue;
      }
      if (atTracker(page, nodeOrigin, '/login') && (await visible(page, '#password')) && (await visible(page, '#sign-in'))) {
        if (seen.typedPassword) {
          throw new Error(`the tracker's sign-in page came back after signing in as ${email}: ${(await pageError(page)) || url}`);
        }
        if (originOf(page.url()) === nodeOrigin) throw new Error('a password field on the node origin');
        seen.typedPassword = true;
        await page.fill('#email', email);
        await page.fill('#password', password);
        await page.click('#sign-in');
        continue;
      }
    }
    if (Date.now() > deadline) {
      throw new Error(`not back on ${nodeOrigin} signed in after ${timeoutMs} ms (at ${url}${(await pageError(page)) ? `: ${await pageError(page)}` : ''})`);
    }
    await page.waitForTimeout(100);
  }
}

/**
 * Opens the node's site signed out and lets the app take the browser to sign in (the
 * tracker's `/login`), then completes it. Returns `completeSignIn`'s record plus the node
 * page's response (for its headers).
 */
export async function signInFromNode(page, { node, email, password, path = '/' }) {
  const response = await page.goto(`${node}${path}`, { waitUntil: 'commit' });
  const seen = await completeSignIn(page, { node, email, password });
  return { ...seen, response };
}

/**
 * Registers on the tracker's pages, reached from the node's site: the node's app leaves for
 * sign-in, the tracker's sign-in page links to `/register`; then the verification link from
 * the mail (on the tracker's origin, `verificationLink(email)` reads it) and its `#verify`
 * button. Returns `{ nodeResponse, loginResponse, link }`.
 */
export async function registerAtTracker(page, { node, email, displayName, password, verificationLink }) {
  const nodeOrigin = originOf(node);
  let loginResponse = null;
  const onResponse = (r) => {
    const u = new URL(r.url());
    if (!loginResponse && u.origin !== nodeOrigin && u.pathname === '/login' && r.request().isNavigationRequest()) loginResponse = r;
  };
  page.on('response', onResponse);
  try {
    const nodeResponse = await page.goto(`${node}/`, { waitUntil: 'commit' });
    await page.waitForURL((u) => u.origin !== nodeOrigin && u.pathname === '/login', { timeout: 30_000 });
    await page.locator('a[href*="/register"]').first().click();
    await page.waitForSelector('#display-name');
    if (originOf(page.url()) === nodeOrigin) throw new Error('the registration form is on the node origin');
    await page.fill('#email', email);
    await page.fill('#display-name', displayName);
    await page.fill('#password', password);
    const [registered] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/register' && r.request().method() === 'POST'),
      page.click('#register'),
    ]);
    if (registered.status() >= 400) throw new Error(`registering ${email}: HTTP ${registered.status()} ${(await pageError(page)) || ''}`);
    await page.waitForLoadState('load');

    const link = await verificationLink(email);
    if (originOf(link) === nodeOrigin) throw new Error(`the verification link points at the node (${link}), not the tracker`);
    await page.goto(link);
    await page.waitForSelector('#verify');
    const [verified] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/verify' && r.request().method() === 'POST'),
      page.click('#verify'),
    ]);
    if (verified.status() >= 400) throw new Error(`verifying ${email}: HTTP ${verified.status()} ${(await pageError(page)) || ''}`);
    await page.waitForLoadState('load');
    return { nodeResponse, loginResponse, link };
  } finally {
    page.off('response', onResponse);
  }
}

/**
 * Records every request the browser sends to `node`'s origin that carries one of `secrets`
 * (in its URL, headers or body): passwords and verification tokens must never pass a node.
 * Returns the (live) list of findings.
 */
export function watchNodeRequests(context, node, secrets) {
  const nodeOrigin = originOf(node);
  const leaks = [];
  context.on('request', (r) => {
    if (originOf(r.url()) !== nodeOrigin) return;
    const text = [r.url(), JSON.stringify(r.headers()), r.postData() ?? ''].join('\n');
    for (const s of secrets()) {
      if (!s) continue;
      const forms = [...new Set([s, encodeURIComponent(s), encodeURIComponent(s).replace(/%20/g, '+')])];
      if (forms.some((f) => text.includes(f))) leaks.push(`${r.method()} ${r.url()} carries a secret (${s.slice(0, 4)}…)`);
    }
  });
  return leaks;
}

/**
 * A warning when the tracker's pages and a node share a host name: browsers scope cookies by
 * host, not port, so the tracker's session cookie then reaches the node too — unlike between
 * real sites. Give each process its own loopback address (127.0.0.2, …) to test it as deployed.
 */
export function sharedHostWarning(trackerOrigin, node) {
  const a = originOf(trackerOrigin) && new URL(trackerOrigin).hostname;
  const b = originOf(node) && new URL(node).hostname;
  return a && a === b
    ? `note: the tracker (${trackerOrigin}) and the node (${node}) share the host ${a}; the browser sends each one's cookies to the other`
    : null;
}
