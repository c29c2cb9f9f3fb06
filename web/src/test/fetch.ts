/**
 * A stand-in for `fetch` in component tests: a table of `"METHOD /path"` routes
 * answering with real `Response` objects, and a log of what was requested.
 */
import { vi } from 'vitest';

export interface Call {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
}

type Handler = (call: Call) => Response | Promise<Response>;

/** A JSON response, as the tracker sends it. */
export function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' },
  });
}

/** Replace global `fetch` with `routes`; any other request fails the test. */
export function mockFetch(routes: Record<string, Handler | Response>) {
  const calls: Call[] = [];
  const fn = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(String(input), 'http://localhost');
    const headers = Object.fromEntries(new Headers(init.headers).entries());
    const call: Call = {
      method: init.method ?? 'GET',
      path: url.pathname + url.search,
      headers,
      body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined,
    };
    calls.push(call);
    const route = routes[`${call.method} ${url.pathname}`];
    // The menu asks whether the viewer runs this node; a test that does not say is a viewer's.
    if (route === undefined && call.method === 'GET' && url.pathname === '/api/v1/console/access') {
      return json(403, { error: 'not_operator', message: 'only operators' });
    }
    if (route === undefined) throw new Error(`unexpected request: ${call.method} ${call.path}`);
    return typeof route === 'function' ? route(call) : route.clone();
  });
  vi.stubGlobal('fetch', fn);
  return { fn, calls };
}

export const ADA = {
  id: 'u_01',
  email: 'ada@example.com',
  display_name: 'Ada',
  email_verified: true,
  tier: 'free',
  created_at: 1735689600,
} as const;

/** The gateway's `POST /auth/session` answer (what `session.save` takes). */
export const TOKENS = {
  access_token: 'access-1',
  expires_in: 900,
  token_type: 'Bearer',
  user: ADA,
} as const;
