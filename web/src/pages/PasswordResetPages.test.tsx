import { screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import * as session from '../session';
import { TOKENS, json, mockFetch } from '../test/fetch';
import { renderApp } from '../test/render';

describe('forgot password page', () => {
  it('is linked from sign-in, validates, and sends the reset email', async () => {
    const { calls } = mockFetch({ 'POST /api/v1/auth/password-reset': json(202, { status: 'accepted' }) });
    const { user } = renderApp('/login');

    await user.click(screen.getByRole('link', { name: 'Forgot your password?' }));
    await user.click(await screen.findByRole('button', { name: 'Send reset link' }));
    expect(screen.getByText('Enter your email address.')).toBeTruthy();
    expect(calls).toHaveLength(0);

    await user.type(screen.getByLabelText('Email'), ' ada@example.com ');
    await user.click(screen.getByRole('button', { name: 'Send reset link' }));
    expect(await screen.findByRole('heading', { name: 'Check your email' })).toBeTruthy();
    expect(calls[0]).toMatchObject({ path: '/api/v1/auth/password-reset', body: { email: 'ada@example.com' } });
  });
});

describe('reset password page (the emailed /reset-password?token=… link)', () => {
  it('sets the new password with the token and signs this device out', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({ 'POST /api/v1/auth/password-reset/confirm': new Response(null, { status: 204 }) });
    const { user } = renderApp('/reset-password?token=tok%2B1');

    await user.type(screen.getByLabelText('New password'), 'a new long password');
    await user.type(screen.getByLabelText('Repeat the new password'), 'a new long passwore');
    await user.click(screen.getByRole('button', { name: 'Change password' }));
    expect(screen.getByText('The passwords do not match.')).toBeTruthy();
    expect(calls).toHaveLength(0);

    await user.clear(screen.getByLabelText('Repeat the new password'));
    await user.type(screen.getByLabelText('Repeat the new password'), 'a new long password');
    await user.click(screen.getByRole('button', { name: 'Change password' }));
    expect(await screen.findByRole('heading', { name: 'Password changed' })).toBeTruthy();
    expect(calls[0]!.body).toEqual({ token: 'tok+1', password: 'a new long password' });
    expect(session.load()).toBeNull();
  });

  it("shows the server's reason and a way to get a new link", async () => {
    mockFetch({
      'POST /api/v1/auth/password-reset/confirm': json(400, { error: 'invalid_token', message: 'This link has expired; ask for a new one.' }),
    });
    const { user } = renderApp('/reset-password?token=old');
    await user.type(screen.getByLabelText('New password'), 'a new long password');
    await user.type(screen.getByLabelText('Repeat the new password'), 'a new long password');
    await user.click(screen.getByRole('button', { name: 'Change password' }));
    expect((await screen.findByRole('alert')).textContent).toBe('This link has expired; ask for a new one.');
    expect(screen.getByRole('link', { name: 'Ask for a new one' }).getAttribute('href')).toBe('/forgot-password');
  });

  it('explains a link without a token', () => {
    const { fn } = mockFetch({});
    renderApp('/reset-password');
    expect(screen.getByRole('alert').textContent).toMatch(/incomplete/);
    expect(fn).not.toHaveBeenCalled();
  });
});
