import { describe, expect, it, vi } from 'vitest';
import * as session from './session';
import { ADA, TOKENS, json, mockFetch } from './test/fetch';

/** Every value in localStorage, as text. */
function storedText(): string {
  return Object.keys(localStorage)
    .map((k) => `${k}=${localStorage.getItem(k)}`)
    .join('\n');
}

/** A promise and the function that settles it. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Waits until `cond` holds (signals from another "tab" arrive asynchronously). */
async function until(cond: () => boolean) {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
}

describe('session', () => {
  it('keeps the access token in memory only, notifying subscribers', () => {
    const listener = vi.fn();
    const unsubscribe = session.subscribe(listener);

    expect(session.load()).toBeNull();
    session.save(TOKENS, 1_000);
    expect(session.load()).toEqual({
      accessToken: 'access-1',
      tokenType: 'Bearer',
      expiresAt: 1_000 + 900_000,
      user: ADA,
    });
    expect(session.getStatus()).toBe('signed-in');
    expect(session.load()).toBe(session.load()); // stable snapshot for useSyncExternalStore
    expect(storedText()).not.toContain('access-1');
    expect(sessionStorage.length).toBe(0);

    session.clear();
    expect(session.load()).toBeNull();
    expect(session.getStatus()).toBe('signed-out');
    expect(listener).toHaveBeenCalledTimes(2);
    unsubscribe();
  });

  it('gets the session from the gateway and writes no token to storage', async () => {
    session.resetForTests('unknown');
    const { calls, fn } = mockFetch({ 'POST /auth/session': json(200, { ...TOKENS, access_token: 'secret-access' }) });

    const s = await session.refresh();
    expect(s?.accessToken).toBe('secret-access');
    expect(s?.user).toEqual(ADA);
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual(['POST /auth/session']);
    expect(fn.mock.calls[0]![1]).toMatchObject({ method: 'POST', credentials: 'same-origin' });
    expect(storedText()).not.toContain('secret-access');
    expect(sessionStorage.length).toBe(0);
  });

  it('shares one in-flight request between concurrent callers', async () => {
    session.resetForTests('unknown');
    const answer = deferred<Response>();
    const { calls } = mockFetch({ 'POST /auth/session': () => answer.promise });

    const all = Promise.all([session.refresh(), session.ensure(), session.refresh(), session.ensure()]);
    answer.resolve(json(200, TOKENS));
    const results = await all;
    expect(calls).toHaveLength(1);
    for (const r of results) expect(r?.accessToken).toBe('access-1');

    // Done: the next refresh is a new request.
    mockFetch({ 'POST /auth/session': json(200, { ...TOKENS, access_token: 'access-2' }) });
    expect((await session.refresh())?.accessToken).toBe('access-2');
  });

  it('401 from the gateway means signed out', async () => {
    session.save(TOKENS);
    mockFetch({ 'POST /auth/session': json(401, { error: 'no_session', message: 'Sign in.' }) });

    await expect(session.refresh()).resolves.toBeNull();
    expect(session.load()).toBeNull();
    expect(session.getStatus()).toBe('signed-out');
    // Signed out: requests go without a token, and nobody asks again.
    await expect(session.ensure()).resolves.toBeNull();
  });

  it('an unreachable gateway keeps a known session and marks a first check unreachable', async () => {
    session.save(TOKENS);
    const { fn } = mockFetch({});
    fn.mockRejectedValue(new TypeError('Failed to fetch'));
    await expect(session.refresh()).rejects.toBeInstanceOf(session.SessionUnavailableError);
    expect(session.load()?.accessToken).toBe('access-1');

    session.resetForTests('unknown');
    await expect(session.refresh()).rejects.toMatchObject({ status: 0 });
    expect(session.getStatus()).toBe('unreachable');

    mockFetch({ 'POST /auth/session': json(502, { error: 'bad_gateway', message: 'Tracker down.' }) });
    await expect(session.ensure()).resolves.toBeNull();
    expect(session.getStatus()).toBe('unreachable');
  });

  it('an answer that arrives after signing out does not sign back in', async () => {
    session.resetForTests('unknown');
    const answer = deferred<Response>();
    mockFetch({ 'POST /auth/session': () => answer.promise });

    const pending = session.refresh();
    session.clear();
    answer.resolve(json(200, TOKENS));
    await expect(pending).resolves.toBeNull();
    expect(session.getStatus()).toBe('signed-out');
  });

  it('signs out at the gateway, forgets the token and remembers the choice (not a secret)', async () => {
    session.save(TOKENS);
    const { calls, fn } = mockFetch({ 'POST /auth/logout': new Response(null, { status: 204 }) });

    await session.signOut();
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual(['POST /auth/logout']);
    expect(fn.mock.calls[0]![1]).toMatchObject({ credentials: 'same-origin' });
    expect(session.load()).toBeNull();
    expect(session.signedOutByUser()).toBe(true);

    // Signing in again forgets the choice.
    session.save(TOKENS);
    expect(session.signedOutByUser()).toBe(false);
  });

  it('signs out locally even when the gateway cannot be reached', async () => {
    session.save(TOKENS);
    const { fn } = mockFetch({});
    fn.mockRejectedValue(new TypeError('Failed to fetch'));
    await session.signOut();
    expect(session.load()).toBeNull();
  });

  it('follows "signed out" and "signed in" from other tabs', async () => {
    const otherTab = new BroadcastChannel(session.CHANNEL_NAME);
    try {
      session.save(TOKENS);
      otherTab.postMessage('signed-out');
      await until(() => session.getStatus() === 'signed-out');
      expect(session.load()).toBeNull();

      // Signed in elsewhere: this tab gets its own token from the gateway (shared cookie).
      const { calls } = mockFetch({ 'POST /auth/session': json(200, { ...TOKENS, access_token: 'access-2' }) });
      otherTab.postMessage('signed-in');
      await until(() => session.getStatus() === 'signed-in');
      expect(session.load()?.accessToken).toBe('access-2');
      expect(calls).toHaveLength(1);
    } finally {
      otherTab.close();
    }
  });

  it('tells other tabs when it signs in or out, never with a token', async () => {
    const otherTab = new BroadcastChannel(session.CHANNEL_NAME);
    const heard: unknown[] = [];
    otherTab.onmessage = (e: MessageEvent) => heard.push(e.data);
    try {
      session.save(TOKENS);
      session.save({ ...TOKENS, access_token: 'access-2' }); // a refresh: nothing to tell
      mockFetch({ 'POST /auth/logout': new Response(null, { status: 204 }) });
      await session.signOut();
      await until(() => heard.length === 2);
      expect(heard).toEqual(['signed-in', 'signed-out']);
    } finally {
      otherTab.close();
    }
  });

  it('knows when the access token is about to expire', () => {
    const s = session.save(TOKENS, 0);
    expect(session.isExpired(s, 0)).toBe(false);
    expect(session.isExpired(s, 900_000 - 10_000)).toBe(true);
  });
});
