import { screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import * as session from '../session';
import { ADA, TOKENS, json, mockFetch } from '../test/fetch';
import { renderApp } from '../test/render';

describe('account page', () => {
  it('sends a signed-out visitor to sign in', async () => {
    const { fn } = mockFetch({});
    renderApp('/account');

    expect(await screen.findByRole('heading', { name: 'Sign in' })).toBeTruthy();
    expect(fn).not.toHaveBeenCalled();
  });

  it('signs out: revokes the refresh token and forgets the session', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({
      'GET /api/v1/me': json(200, { ...ADA, email_verified: false }),
      'POST /api/v1/auth/logout': new Response(null, { status: 204 }),
    });
    const { user } = renderApp('/account');

    expect(await screen.findByText(/not verified yet/)).toBeTruthy();
    await user.click(within(screen.getByRole('main')).getByRole('button', { name: 'Sign out' }));

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
    renderApp('/account');

    expect((await screen.findByRole('alert')).textContent).toBe(
      'The tracker is restarting. Try again in a minute.',
    );
  });

  it('sends the verification link again', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({
      'GET /api/v1/me': json(200, { ...ADA, email_verified: false }),
      'POST /api/v1/auth/resend-verification': json(202, { status: 'accepted' }),
    });
    const { user } = renderApp('/account');

    await user.click(await screen.findByRole('button', { name: 'Send the link again' }));
    expect((await screen.findByText('A new link is on its way.')).getAttribute('role')).toBe('status');
    expect(calls.at(-1)).toMatchObject({
      method: 'POST',
      path: '/api/v1/auth/resend-verification',
      body: { email: 'ada@example.com' },
    });
  });
});
