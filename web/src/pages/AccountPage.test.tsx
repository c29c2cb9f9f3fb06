import { screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import * as session from '../session';
import { browserNavigation } from '../signin';
import { ADA, TOKENS, json, mockFetch } from '../test/fetch';
import { renderApp } from '../test/render';

describe('account page', () => {
  it('sends a signed-out visitor to sign in at the tracker, and back here', async () => {
    const { fn } = mockFetch({});
    renderApp('/account');

    await waitFor(() => expect(browserNavigation.assign).toHaveBeenCalledWith('/auth/login?return=%2Faccount'));
    expect(fn).not.toHaveBeenCalled();
  });

  it('shows the profile, says where passwords are typed, and links to the account at the tracker', async () => {
    session.save(TOKENS);
    mockFetch({ 'GET /api/v1/me': json(200, { ...ADA, email_verified: false }) });
    renderApp('/account');

    expect(await screen.findByText('Ada')).toBeTruthy();
    expect(screen.getByText('ada@example.com')).toBeTruthy();
    expect(screen.getByText(/not verified yet/)).toBeTruthy();
    const manage = screen.getByRole('link', { name: 'Manage account, password, passkeys and sessions' });
    expect(manage.getAttribute('href')).toBe('/auth/account');
    expect(screen.getByTestId('password-notice').textContent).toMatch(/only ever typed on the tracker.s own site/);
    // Nothing here changes the account or takes a password.
    expect(document.querySelector('input[type="password"]')).toBeNull();
    expect(screen.queryByRole('button', { name: /send the link again|delete/i })).toBeNull();
  });

  it('signs out: the gateway ends the session, the token is forgotten, no bounce back into sign-in', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({
      'GET /api/v1/me': json(200, ADA),
      'POST /auth/logout': new Response(null, { status: 204 }),
    });
    const { user } = renderApp('/account');

    expect(await screen.findByText('Ada')).toBeTruthy();
    await user.click(within(screen.getByRole('main')).getByRole('button', { name: 'Sign out' }));

    expect(await screen.findByRole('heading', { name: 'Signed out' })).toBeTruthy();
    expect(session.load()).toBeNull();
    expect(calls.at(-1)).toMatchObject({ method: 'POST', path: '/auth/logout' });
    expect(browserNavigation.assign).not.toHaveBeenCalled();
    const again = within(screen.getByRole('main')).getByRole('link', { name: 'Sign in' });
    expect(again.getAttribute('href')).toBe('/auth/login?return=%2F');
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

  it('edits the playback preferences and saves them at the tracker', async () => {
    session.save(TOKENS);
    const stored = { audio_language: null, subtitle_language: null, subtitles: 'off', subtitle_size: 'm', subtitle_background: true };
    const { calls } = mockFetch({
      'GET /api/v1/me': json(200, ADA),
      'GET /api/v1/me/preferences': json(200, stored),
      'PUT /api/v1/me/preferences': (call) => json(200, call.body),
    });
    const { user } = renderApp('/account');

    const form = await screen.findByTestId('playback-preferences');
    await user.selectOptions(within(form).getByLabelText('Audio language'), 'de');
    await user.selectOptions(within(form).getByLabelText('Subtitles'), 'on');
    await user.selectOptions(within(form).getByLabelText('Subtitle language'), 'fr');
    await user.selectOptions(within(form).getByLabelText('Caption size'), 'l');
    await user.click(within(form).getByLabelText(/Caption\s+background/));
    await user.click(within(form).getByRole('button', { name: 'Save playback preferences' }));

    expect((await screen.findByTestId('playback-preferences-status')).textContent).toMatch(/Saved/);
    expect(calls.at(-1)).toMatchObject({
      method: 'PUT',
      path: '/api/v1/me/preferences',
      body: { audio_language: 'de', subtitle_language: 'fr', subtitles: 'on', subtitle_size: 'l', subtitle_background: false },
    });
    // Back to the movie's default audio: null, not an empty tag.
    await user.selectOptions(within(form).getByLabelText('Audio language'), '');
    await user.click(within(form).getByRole('button', { name: 'Save playback preferences' }));
    await waitFor(() => expect(calls.at(-1)?.body).toMatchObject({ audio_language: null }));
  });
});
