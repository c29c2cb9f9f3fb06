import { describe, expect, it, vi } from 'vitest';
import * as session from '../session';
import { ADA, TOKENS, json, mockFetch } from '../test/fetch';
import { ApiError, CLIENT_ERROR, request } from './client';
import { getMe } from './me';

async function caught(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(
    () => {
      throw new Error('expected the request to fail');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

const EXPIRED = { error: 'token_expired', message: 'Sign in again.' };

describe('api client', () => {
  it('maps the server error JSON to ApiError', async () => {
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/me': json(403, { error: 'node_token_not_allowed', message: 'Change this at the tracker.' }),
    });

    const err = await caught(getMe());
    expect(err.status).toBe(403);
    expect(err.code).toBe('node_token_not_allowed');
    expect(err.message).toBe('Change this at the tracker.');
    expect(err.name).toBe('ApiError');
  });

  it('gives a non-JSON error (a proxy page) a code and a helpful message', async () => {
    mockFetch({ 'GET /api/v1/me': new Response('<html>Bad Gateway</html>', { status: 502 }) });

    const err = await caught(getMe());
    expect(err.status).toBe(502);
    expect(err.code).toBe('http_502');
    expect(err.message).toMatch(/try again/i);
  });

  it('turns a network failure into a network_error ApiError', async () => {
    const { fn } = mockFetch({});
    fn.mockRejectedValueOnce(new TypeError('Failed to fetch'));

    const err = await caught(getMe());
    expect(err.status).toBe(0);
    expect(err.code).toBe(CLIENT_ERROR.network);
    expect(err.message).toMatch(/check your connection/i);
  });

  it('sends JSON under /api/v1 and no Authorization when signed out', async () => {
    const { calls } = mockFetch({ 'POST /api/v1/me/watchlist': json(200, { ok: true }) });

    await expect(request('/me/watchlist', { method: 'POST', body: { movie_id: 'm' } })).resolves.toEqual({ ok: true });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.path).toBe('/api/v1/me/watchlist');
    expect(calls[0]!.headers['content-type']).toBe('application/json');
    expect(calls[0]!.headers.authorization).toBeUndefined();
    expect(calls[0]!.body).toEqual({ movie_id: 'm' });
  });

  it('adds the in-memory access token as a Bearer header', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({ 'GET /api/v1/me': json(200, ADA) });

    await expect(getMe()).resolves.toEqual(ADA);
    expect(calls[0]!.headers.authorization).toBe('Bearer access-1');
  });

  it('resolves an empty 204 answer to undefined', async () => {
    session.save(TOKENS);
    mockFetch({ 'DELETE /api/v1/me/watchlist/m': new Response(null, { status: 204 }) });
    await expect(request('/me/watchlist/m', { method: 'DELETE' })).resolves.toBeUndefined();
  });

  it('asks the gateway for the session on first use', async () => {
    session.resetForTests('unknown');
    const { calls } = mockFetch({
      'POST /auth/session': json(200, TOKENS),
      'GET /api/v1/me': json(200, ADA),
    });

    await expect(getMe()).resolves.toEqual(ADA);
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual(['POST /auth/session', 'GET /api/v1/me']);
    expect(calls[1]!.headers.authorization).toBe('Bearer access-1');
  });

  it('on 401 refreshes the session once (at the gateway) and retries with the new access token', async () => {
    session.save(TOKENS);
    const { calls, fn } = mockFetch({
      'GET /api/v1/me': (call) => (call.headers.authorization === 'Bearer access-2' ? json(200, ADA) : json(401, EXPIRED)),
      'POST /auth/session': json(200, { ...TOKENS, access_token: 'access-2' }),
    });

    await expect(getMe()).resolves.toEqual(ADA);
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      'GET /api/v1/me',
      'POST /auth/session',
      'GET /api/v1/me',
    ]);
    // The refresh token is the gateway's HttpOnly cookie: the request carries no token of ours.
    expect(calls[1]!.body).toBeUndefined();
    expect(calls[1]!.headers.authorization).toBeUndefined();
    expect(fn.mock.calls[1]![1]).toMatchObject({ method: 'POST', credentials: 'same-origin' });
    expect(session.load()).toMatchObject({ accessToken: 'access-2' });
  });

  it('retries only once: a second 401 is the answer', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({
      'GET /api/v1/me': json(401, EXPIRED),
      'POST /auth/session': json(200, { ...TOKENS, access_token: 'access-2' }),
    });

    const err = await caught(getMe());
    expect(err.status).toBe(401);
    expect(calls.map((c) => c.path)).toEqual(['/api/v1/me', '/auth/session', '/api/v1/me']);
  });

  it('signs out when the gateway has no session any more', async () => {
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/me': json(401, EXPIRED),
      'POST /auth/session': json(401, { error: 'no_session', message: 'Sign in.' }),
    });

    const err = await caught(getMe());
    expect(err.status).toBe(401);
    expect(session.load()).toBeNull();
    expect(session.getStatus()).toBe('signed-out');
  });

  it('refreshes an expired access token before sending', async () => {
    session.save({ ...TOKENS, expires_in: 0 });
    const { calls } = mockFetch({
      'POST /auth/session': json(200, { ...TOKENS, access_token: 'access-2' }),
      'GET /api/v1/me': json(200, ADA),
    });

    await request('/me');
    expect(calls.map((c) => c.path)).toEqual(['/auth/session', '/api/v1/me']);
    expect(calls[1]!.headers.authorization).toBe('Bearer access-2');
  });

  it('concurrent 401s share one refresh', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({
      'GET /api/v1/me': (call) => (call.headers.authorization === 'Bearer access-2' ? json(200, ADA) : json(401, EXPIRED)),
      'POST /auth/session': json(200, { ...TOKENS, access_token: 'access-2' }),
    });

    await Promise.all([getMe(), getMe(), getMe()]);
    expect(calls.filter((c) => c.path === '/auth/session')).toHaveLength(1);
    expect(calls.filter((c) => c.path === '/api/v1/me')).toHaveLength(6);
  });

  it('uses a token another caller already replaced instead of refreshing again', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({
      'GET /api/v1/me': (call) => {
        if (call.headers.authorization === 'Bearer access-2') return json(200, ADA);
        // Meanwhile someone else refreshed.
        session.save({ ...TOKENS, access_token: 'access-2' });
        return json(401, EXPIRED);
      },
    });

    await expect(getMe()).resolves.toEqual(ADA);
    expect(calls.map((c) => c.path)).toEqual(['/api/v1/me', '/api/v1/me']);
  });
});

describe('session upkeep', () => {
  it('refreshes the access token before it expires, in the background', async () => {
    vi.useFakeTimers();
    try {
      session.save({ ...TOKENS, expires_in: 120 });
      const { calls } = mockFetch({
        'POST /auth/session': json(200, { ...TOKENS, access_token: 'access-2', expires_in: 900 }),
      });
      const stop = session.keepFresh(60_000);
      await vi.advanceTimersByTimeAsync(50_000);
      expect(calls).toHaveLength(0);
      await vi.advanceTimersByTimeAsync(20_000); // 60 s before expiry (+ up to 5 s jitter)
      expect(calls.map((c) => c.path)).toEqual(['/auth/session']);
      expect(session.load()?.accessToken).toBe('access-2');
      // The next refresh is planned from the new expiry, not repeated now.
      await vi.advanceTimersByTimeAsync(60_000);
      expect(calls).toHaveLength(1);
      stop();
    } finally {
      vi.useRealTimers();
    }
  });
});
