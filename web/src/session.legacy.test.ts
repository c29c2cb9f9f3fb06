// In its own file: these load fresh copies of session.ts, which must not hear the other tests' signals.
import { describe, expect, it, vi } from 'vitest';
import { TOKENS } from './test/fetch';

describe('session on load', () => {
  it('removes the old sign-in tokens from localStorage on load', async () => {
    localStorage.setItem('reelnet.session', JSON.stringify({ accessToken: 'old', refreshToken: 'old-refresh' }));
    vi.resetModules();
    const fresh = await import('./session');
    expect(localStorage.getItem('reelnet.session')).toBeNull();
    expect(fresh.load()).toBeNull();
    expect(fresh.getStatus()).toBe('unknown');
  });

  it('without BroadcastChannel, tells other tabs through a storage event that carries no token', async () => {
    vi.stubGlobal('BroadcastChannel', undefined);
    vi.resetModules();
    const fresh = await import('./session');

    fresh.save(TOKENS);
    const signal = localStorage.getItem('reelnet.session-signal');
    expect(JSON.parse(signal ?? '{}')).toMatchObject({ signal: 'signed-in' });
    expect(signal).not.toContain('access-1');

    // Another tab signs out.
    window.dispatchEvent(
      new StorageEvent('storage', {
        key: 'reelnet.session-signal',
        newValue: JSON.stringify({ signal: 'signed-out', at: 1 }),
      }),
    );
    expect(fresh.getStatus()).toBe('signed-out');
    expect(fresh.load()).toBeNull();
  });
});
