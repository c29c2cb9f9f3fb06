import { describe, expect, it, vi } from 'vitest';
import * as session from './session';
import { TOKENS } from './test/fetch';

describe('session', () => {
  it('stores, reads and clears the token pair, notifying subscribers', () => {
    const listener = vi.fn();
    const unsubscribe = session.subscribe(listener);

    expect(session.load()).toBeNull();
    session.save(TOKENS, 1_000);
    expect(session.load()).toEqual({
      accessToken: 'access-1',
      refreshToken: 'refresh-1',
      tokenType: 'Bearer',
      expiresAt: 1_000 + 900_000,
    });
    expect(session.load()).toBe(session.load()); // stable snapshot for useSyncExternalStore
    session.clear();
    expect(session.load()).toBeNull();
    expect(listener).toHaveBeenCalledTimes(2);

    unsubscribe();
  });

  it('treats a corrupt stored value as signed out', () => {
    localStorage.setItem(session.STORAGE_KEY, '{"accessToken": 1');
    expect(session.load()).toBeNull();
  });

  it('knows when the access token is about to expire', () => {
    const s = session.save(TOKENS, 0);
    expect(session.isExpired(s, 0)).toBe(false);
    expect(session.isExpired(s, 900_000 - 10_000)).toBe(true);
  });
});
