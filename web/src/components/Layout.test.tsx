import { screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import * as session from '../session';
import { TOKENS, json, mockFetch } from '../test/fetch';
import { renderApp } from '../test/render';

describe('layout', () => {
  it('offers the main navigation when signed in and moves focus to the content on navigation', async () => {
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/me/history': json(200, { items: [], next_cursor: null }),
      'GET /api/v1/me/watchlist': json(200, []),
    });
    const { user } = renderApp('/history');
    const nav = screen.getByRole('navigation', { name: 'Main' });
    expect(within(nav).getByRole('link', { name: 'History' }).getAttribute('aria-current')).toBe('page');

    await user.click(within(nav).getByRole('link', { name: 'Watch later' }));
    expect(await screen.findByRole('heading', { name: 'Watch later' })).toBeTruthy();
    expect(document.activeElement).toBe(screen.getByRole('main'));
  });

  it('signs out from the header', async () => {
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/me/history': json(200, { items: [], next_cursor: null }),
      'POST /auth/logout': new Response(null, { status: 204 }),
    });
    const { user } = renderApp('/history');
    await user.click(within(screen.getByRole('navigation', { name: 'Main' })).getByRole('button', { name: 'Sign out' }));
    expect(await screen.findByRole('heading', { name: 'Signed out' })).toBeTruthy();
    expect(session.load()).toBeNull();
    expect(screen.queryByRole('navigation', { name: 'Main' })).toBeNull();
    const signIn = within(screen.getByRole('navigation', { name: 'Account' })).getByRole('link', { name: 'Sign in' });
    expect(signIn.getAttribute('href')).toBe('/auth/login?return=%2F');
  });

  it('offers sign-in (at the tracker, back to this page) and no account forms when signed out', async () => {
    session.resetForTests('signed-out');
    localStorage.setItem(session.SIGNED_OUT_KEY, '1'); // no automatic trip to sign-in
    renderApp('/movie/tmdb-603?from=search');
    const nav = screen.getByRole('navigation', { name: 'Account' });
    expect(within(nav).getAllByRole('link').map((a) => a.getAttribute('href'))).toEqual([
      '/auth/login?return=%2Fmovie%2Ftmdb-603%3Ffrom%3Dsearch',
    ]);
    expect(screen.queryByRole('link', { name: /create account/i })).toBeNull();
  });
});
