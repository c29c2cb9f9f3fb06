// Signing in without a browser, the way a browser does: a session at the tracker's own
// sign-in page, then a node's single-sign-on round trip (node /auth/login → tracker
// /oauth/authorize, consenting once → node /auth/callback → POST node /auth/session) for an
// access token issued through that node. Used by the bench scripts that play movies with
// plain HTTP clients (scripts/bench-signin.mjs, scripts/bench-offload.mjs).

/** A cookie jar for one origin: `Set-Cookie` in, `Cookie` out. */
export class Jar {
  constructor() {
    this.map = new Map();
  }
  take(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const [name, value] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
      if (attrs.some((a) => /max-age=0/i.test(a.trim())) || value === '') this.map.delete(name);
      else this.map.set(name, value);
    }
  }
  header() {
    return [...this.map].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/** The hidden fields of a server-rendered form (CSRF token, OAuth parameters). */
export const hiddenFields = (html) => {
  const out = new URLSearchParams();
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    out.append(m[1], m[2].replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>'));
  }
  return out;
};

/** GET without following redirects, cookies from and into `jar`. */
export async function get(url, jar, headers = {}) {
  const res = await fetch(url, { redirect: 'manual', headers: { cookie: jar.header(), ...headers } });
  jar.take(res);
  return res;
}

/** A same-origin form POST without following redirects, cookies from and into `jar`. */
export async function post(url, jar, body, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: jar.header(), origin: new URL(url).origin, 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body,
  });
  jar.take(res);
  return res;
}

/** Signs in at the tracker's own page; returns the jar holding its session. */
export async function trackerSession(tracker, email, password) {
  const jar = new Jar();
  const page = await get(`${tracker}/login`, jar);
  const form = hiddenFields(await page.text());
  form.set('email', email);
  form.set('password', password);
  const res = await post(`${tracker}/login`, jar, form.toString());
  if (res.status !== 303 && res.status !== 302) throw new Error(`tracker sign-in: ${res.status} ${(await res.text()).slice(0, 200)}`);
  return jar;
}

/**
 * One single-sign-on round trip at `node` for the tracker session in `trackerJar`
 * (consenting if the tracker asks); returns `{ accessToken, nodeJar }`.
 */
export async function nodeSignIn(tracker, trackerJar, node) {
  const nodeJar = new Jar();
  const start = await get(`${node}/auth/login?return=/`, nodeJar);
  let res = await get(start.headers.get('location'), trackerJar);
  if (res.status === 200) {
    const fields = hiddenFields(await res.text());
    fields.set('decision', 'allow');
    res = await post(`${tracker}/oauth/authorize`, trackerJar, fields.toString());
  }
  const back = res.headers.get('location');
  if (!back?.startsWith(`${node}/auth/callback`)) throw new Error(`authorize answered ${res.status} ${back ?? (await res.text()).slice(0, 200)}`);
  const cb = await get(back, nodeJar);
  if (cb.status !== 302) throw new Error(`callback: ${cb.status} ${(await cb.text()).slice(0, 200)}`);
  const s = await fetch(`${node}/auth/session`, { method: 'POST', headers: { cookie: nodeJar.header(), origin: node } });
  const body = await s.json();
  if (s.status !== 200 || !body.access_token) throw new Error(`session: ${s.status} ${JSON.stringify(body)}`);
  return { accessToken: body.access_token, nodeJar };
}
