import { screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import * as session from './session';
import { browserNavigation, safeReturnPath, signInUrl } from './signin';
import { ADA, TOKENS, json, mockFetch } from './test/fetch';
import { catalogPage } from './test/fixtures';
import { renderApp } from './test/render';

const assign = () => browserNavigation.assign;

describe('sign-in is a trip to the tracker', () => {
  it('keeps only same-origin relative return paths', () => {
    expect(safeReturnPath('/movie/tmdb-603?t=1#x')).toBe('/movie/tmdb-603?t=1#x');
    for (const bad of ['', null, undefined, 'https://evil.example/', '//evil.example/x', '/\\evil.example', 'movie/1', '/auth/login?return=/', '/auth/callback', '/login', '/register', '/verify?token=x', '/a\nb']) {
      expect(safeReturnPath(bad)).toBe('/');
    }
    expect(signInUrl('/room/ab?x=1')).toBe('/auth/login?return=%2Froom%2Fab%3Fx%3D1');
  });

  it('a page that needs a session sends a signed-out viewer to /auth/login with the way back', async () => {
    mockFetch({});
    renderApp('/room/0123456789abcdef0123456789abcdef');
    await waitFor(() =>
      expect(assign()).toHaveBeenCalledWith('/auth/login?return=%2Froom%2F0123456789abcdef0123456789abcdef'),
    );
  });

  it('asks the gateway first when nothing is known yet, then shows the page', async () => {
    session.resetForTests('unknown');
    const { calls } = mockFetch({
      'POST /auth/session': json(200, TOKENS),
      'GET /api/v1/me': json(200, ADA),
    });
    renderApp('/account');
    expect(screen.getByText('Checking your session…')).toBeTruthy();
    expect(await screen.findByText('ada@example.com')).toBeTruthy();
    expect(calls[0]).toMatchObject({ method: 'POST', path: '/auth/session' });
    expect(assign()).not.toHaveBeenCalled();
  });

  it('a gateway that says 401 on start means sign in', async () => {
    session.resetForTests('unknown');
    mockFetch({ 'POST /auth/session': json(401, { error: 'no_session', message: 'Sign in.' }) });
    renderApp('/history');
    await waitFor(() => expect(assign()).toHaveBeenCalledWith('/auth/login?return=%2Fhistory'));
  });

  it('an unreachable gateway offers to try again instead of signing in', async () => {
    session.resetForTests('unknown');
    const { fn } = mockFetch({ 'GET /api/v1/me': json(200, ADA) });
    fn.mockRejectedValueOnce(new TypeError('Failed to fetch'));
    const { user } = renderApp('/account');
    expect(await screen.findByRole('alert')).toBeTruthy();
    expect(assign()).not.toHaveBeenCalled();

    mockFetch({ 'POST /auth/session': json(200, TOKENS), 'GET /api/v1/me': json(200, ADA) });
    await user.click(screen.getByRole('button', { name: 'Try again' }));
    expect(await screen.findByText('ada@example.com')).toBeTruthy();
  });

  it('/login goes to the gateway, back to its return parameter (same-origin only)', async () => {
    renderApp('/login?return=%2Fwatch-later');
    await waitFor(() => expect(assign()).toHaveBeenCalledWith('/auth/login?return=%2Fwatch-later'));
  });

  it('/login with a foreign return goes back to /', async () => {
    renderApp('/login?return=https%3A%2F%2Fevil.example%2F');
    await waitFor(() => expect(assign()).toHaveBeenCalledWith('/auth/login?return=%2F'));
  });

  it('/login when signed in goes to the return path', async () => {
    session.save(TOKENS);
    mockFetch({ 'GET /api/v1/me/watchlist': json(200, []) });
    renderApp('/login?return=%2Fwatch-later');
    expect(await screen.findByRole('heading', { name: 'Watch later' })).toBeTruthy();
    expect(assign()).not.toHaveBeenCalled();
  });

  it('the old account-form routes take no credentials and go to sign in, never passing a token on', async () => {
    for (const path of ['/register', '/verify?token=secret-verify', '/forgot-password', '/reset-password?token=secret-reset']) {
      const { unmount } = renderApp(path);
      await waitFor(() => expect(assign()).toHaveBeenLastCalledWith('/auth/login?return=%2F'));
      expect(document.querySelector('input')).toBeNull();
      unmount();
    }
    for (const [url] of (assign() as unknown as { mock: { calls: string[][] } }).mock.calls) {
      expect(url).not.toContain('secret');
    }
  });

  it('after signing out here, pages offer sign-in instead of going there', async () => {
    mockFetch({ 'POST /auth/logout': new Response(null, { status: 204 }) });
    session.save(TOKENS);
    await session.signOut();
    mockFetch({ 'GET /api/v1/catalog': json(200, catalogPage([])) });
    renderApp('/');
    expect(await screen.findByRole('heading', { name: 'Signed out' })).toBeTruthy();
    expect(assign()).not.toHaveBeenCalled();
  });
});

describe('coming back from the tracker without signing in', () => {
  it('after declining at the tracker, offers sign-in instead of asking again at once', async () => {
    renderApp('/?error=access_denied');
    expect(await screen.findByRole('heading', { name: 'Signed out' })).toBeTruthy();
    expect(screen.getByText(/was not allowed to use your account/)).toBeTruthy();
    expect(within(screen.getByRole('main')).getByRole('link', { name: 'Sign in' }).getAttribute('href')).toBe(
      '/auth/login?return=%2F',
    );
    expect(assign()).not.toHaveBeenCalled();
  });
});
