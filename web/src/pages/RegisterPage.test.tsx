import { screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { json, mockFetch } from '../test/fetch';
import { renderApp } from '../test/render';

describe('register page', () => {
  it('asks for a password of at least 10 characters', async () => {
    const { fn } = mockFetch({});
    const { user } = renderApp('/register');

    await user.type(screen.getByLabelText('Email'), 'ada@example.com');
    await user.type(screen.getByLabelText('Display name'), 'Ada');
    await user.type(screen.getByLabelText('Password'), 'short');
    await user.click(screen.getByRole('button', { name: 'Create account' }));

    expect(screen.getByText('Use at least 10 characters.')).toBeTruthy();
    expect(document.activeElement).toBe(screen.getByLabelText('Password'));
    expect(fn).not.toHaveBeenCalled();
  });

  it('registers and tells the user to check their email', async () => {
    const { calls } = mockFetch({ 'POST /api/v1/auth/register': json(201, { id: 'u_01' }) });
    const { user } = renderApp('/register');

    await user.type(screen.getByLabelText('Email'), 'ada@example.com');
    await user.type(screen.getByLabelText('Display name'), ' Ada ');
    await user.type(screen.getByLabelText('Password'), 'long enough pw');
    await user.click(screen.getByRole('button', { name: 'Create account' }));

    expect(await screen.findByRole('heading', { name: 'Check your email' })).toBeTruthy();
    expect(screen.getByRole('status').textContent).toContain('ada@example.com');
    expect(calls[0]!.body).toEqual({
      email: 'ada@example.com',
      password: 'long enough pw',
      display_name: 'Ada',
    });
  });

  it("shows the server's reason when registration is refused", async () => {
    mockFetch({
      'POST /api/v1/auth/register': json(409, {
        error: 'email_taken',
        message: 'An account with this email already exists. Sign in instead.',
      }),
    });
    const { user } = renderApp('/register');

    await user.type(screen.getByLabelText('Email'), 'ada@example.com');
    await user.type(screen.getByLabelText('Display name'), 'Ada');
    await user.type(screen.getByLabelText('Password'), 'long enough pw');
    await user.click(screen.getByRole('button', { name: 'Create account' }));

    expect((await screen.findByRole('alert')).textContent).toMatch(/already exists/);
  });
});
