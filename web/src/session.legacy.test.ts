// In its own file: it loads a second copy of session.ts, which must not hear the other tests' signals.
import { describe, expect, it, vi } from 'vitest';

describe('session on load', () => {
  it('removes the old sign-in tokens from localStorage on load', async () => {
    localStorage.setItem('reelnet.session', JSON.stringify({ accessToken: 'old', refreshToken: 'old-refresh' }));
    vi.resetModules();
    const fresh = await import('./session');
    expect(localStorage.getItem('reelnet.session')).toBeNull();
    expect(fresh.load()).toBeNull();
    expect(fresh.getStatus()).toBe('unknown');
  });
});
