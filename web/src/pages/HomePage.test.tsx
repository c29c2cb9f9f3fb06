import { screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import * as session from '../session';
import { ADA, TOKENS, json, mockFetch } from '../test/fetch';
import { renderApp } from '../test/render';

describe('home page', () => {
  it('sends a signed-out visitor to sign in', async () => {
    const { fn } = mockFetch({});
    renderApp('/');

    expect(await screen.findByRole('heading', { name: 'Sign in' })).toBeTruthy();
    expect(fn).not.toHaveBeenCalled();
  });

  it('signs out: revokes the refresh token and forgets the session', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({
      'GET /api/v1/me': json(200, { ...ADA, email_verified: false }),
      'POST /api/v1/auth/logout': new Response(null, { status: 204 }),
    });
    const { user } = renderApp('/');

    expect(await screen.findByText(/not verified yet/)).toBeTruthy();
    await user.click(screen.getByRole('button', { name: 'Sign out' }));

    expect(await screen.findByRole('heading', { name: 'Sign in' })).toBeTruthy();
    expect(session.load()).toBeNull();
    expect(calls.at(-1)).toMatchObject({
      path: '/api/v1/auth/logout',
      body: { refresh_token: 'refresh-1' },
    });
  });

  it('shows why the account could not be loaded', async () => {
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/me': json(503, { error: 'unavailable', message: 'The tracker is restarting. Try again in a minute.' }),
    });
    renderApp('/');

    expect((await screen.findByRole('alert')).textContent).toBe(
      'The tracker is restarting. Try again in a minute.',
    );
  });
});
