import { describe, expect, it, vi } from 'vitest';
import * as session from '../session';
import { ADA, TOKENS, json, mockFetch } from '../test/fetch';
import { login, logout } from './auth';
import { ApiError, CLIENT_ERROR, keepSessionFresh, request } from './client';
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

describe('api client', () => {
  it('maps the server error JSON to ApiError', async () => {
    mockFetch({
      'POST /api/v1/auth/login': json(401, {
        error: 'invalid_credentials',
        message: 'Wrong email or password.',
      }),
    });

    const err = await caught(login('ada@example.com', 'nope'));
    expect(err.status).toBe(401);
    expect(err.code).toBe('invalid_credentials');
    expect(err.message).toBe('Wrong email or password.');
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
    const { calls } = mockFetch({ 'POST /api/v1/auth/login': json(200, TOKENS) });

    await expect(login('ada@example.com', 'secret')).resolves.toEqual(TOKENS);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.path).toBe('/api/v1/auth/login');
    expect(calls[0]!.headers['content-type']).toBe('application/json');
    expect(calls[0]!.headers.authorization).toBeUndefined();
    expect(calls[0]!.body).toEqual({ email: 'ada@example.com', password: 'secret' });
  });

  it('adds the stored access token as a Bearer header', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({ 'GET /api/v1/me': json(200, ADA) });

    await expect(getMe()).resolves.toEqual(ADA);
    expect(calls[0]!.headers.authorization).toBe('Bearer access-1');
  });

  it('resolves an empty 204 answer to undefined', async () => {
    mockFetch({ 'POST /api/v1/auth/logout': new Response(null, { status: 204 }) });
    await expect(logout('refresh-1')).resolves.toBeUndefined();
  });

  it('on 401 refreshes the tokens once and retries with the new access token', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({
      'GET /api/v1/me': (call) =>
        call.headers.authorization === 'Bearer access-2'
          ? json(200, ADA)
          : json(401, { error: 'token_expired', message: 'Sign in again.' }),
      'POST /api/v1/auth/refresh': json(200, {
        ...TOKENS,
        access_token: 'access-2',
        refresh_token: 'refresh-2',
      }),
    });

    await expect(getMe()).resolves.toEqual(ADA);
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      'GET /api/v1/me',
      'POST /api/v1/auth/refresh',
      'GET /api/v1/me',
    ]);
    expect(calls[1]!.body).toEqual({ refresh_token: 'refresh-1' });
    expect(session.load()).toMatchObject({ accessToken: 'access-2', refreshToken: 'refresh-2' });
  });

  it('signs out when the server rejects the refresh token', async () => {
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/me': json(401, { error: 'token_expired', message: 'Sign in again.' }),
      'POST /api/v1/auth/refresh': json(401, { error: 'invalid_token', message: 'Sign in again.' }),
    });

    const err = await caught(getMe());
    expect(err.status).toBe(401);
    expect(session.load()).toBeNull();
  });

  it('refreshes an expired access token before sending', async () => {
    session.save({ ...TOKENS, expires_in: 0 });
    const { calls } = mockFetch({
      'POST /api/v1/auth/refresh': json(200, { ...TOKENS, access_token: 'access-2' }),
      'GET /api/v1/me': json(200, ADA),
    });

    await request('/me');
    expect(calls.map((c) => c.path)).toEqual(['/api/v1/auth/refresh', '/api/v1/me']);
    expect(calls[1]!.headers.authorization).toBe('Bearer access-2');
  });
});

describe('session upkeep', () => {
  it('uses a pair another tab already rotated instead of spending the old refresh token', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({
      'GET /api/v1/me': (call) =>
        call.headers.authorization === 'Bearer access-2'
          ? json(200, ADA)
          : (() => {
              // Meanwhile another tab refreshed and stored a new pair.
              session.save({ ...TOKENS, access_token: 'access-2', refresh_token: 'refresh-2' });
              return json(401, { error: 'token_expired', message: 'Sign in again.' });
            })(),
    });

    await expect(getMe()).resolves.toEqual(ADA);
    expect(calls.map((c) => c.path)).toEqual(['/api/v1/me', '/api/v1/me']);
  });

  it('refreshes the access token before it expires, in the background', async () => {
    vi.useFakeTimers();
    try {
      session.save({ ...TOKENS, expires_in: 120 });
      const { calls } = mockFetch({
        'POST /api/v1/auth/refresh': json(200, { ...TOKENS, access_token: 'access-2', refresh_token: 'refresh-2', expires_in: 900 }),
      });
      const stop = keepSessionFresh(60_000);
      await vi.advanceTimersByTimeAsync(50_000);
      expect(calls).toHaveLength(0);
      await vi.advanceTimersByTimeAsync(20_000); // 60 s before expiry (+ up to 5 s jitter)
      expect(calls.map((c) => c.path)).toEqual(['/api/v1/auth/refresh']);
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
