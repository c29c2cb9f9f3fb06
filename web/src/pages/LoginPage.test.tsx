import { screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import * as session from '../session';
import { ADA, TOKENS, json, mockFetch } from '../test/fetch';
import { renderApp } from '../test/render';

describe('sign-in page', () => {
  it('validates the form before sending anything', async () => {
    const { fn } = mockFetch({});
    const { user } = renderApp('/login');

    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    const email = screen.getByLabelText('Email');
    expect(email.getAttribute('aria-invalid')).toBe('true');
    expect(screen.getByText('Enter your email address.')).toBeTruthy();
    expect(screen.getByText('Enter your password.')).toBeTruthy();
    expect(document.activeElement).toBe(email);

    await user.type(email, 'ada@example');
    await user.type(screen.getByLabelText('Password'), 'pw');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(screen.getByText('Enter an email address like name@example.com.')).toBeTruthy();
    expect(screen.queryByText('Enter your password.')).toBeNull();
    // The error is tied to the input for screen readers.
    expect(email.getAttribute('aria-describedby')).toBe('login-email-error');

    expect(fn).not.toHaveBeenCalled();
  });

  it('signs in, stores the tokens and returns to the page that asked for it', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/login': json(200, TOKENS),
      'GET /api/v1/me': json(200, ADA),
    });
    const { user } = renderApp('/account');
    expect(await screen.findByRole('heading', { name: 'Sign in' })).toBeTruthy();

    await user.type(screen.getByLabelText('Email'), ' ada@example.com ');
    await user.type(screen.getByLabelText('Password'), 'correct horse');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));

    expect(await screen.findByText(/Signed in as/)).toBeTruthy();
    expect(screen.getByText('Ada')).toBeTruthy();
    expect(screen.getAllByRole('button', { name: 'Sign out' }).length).toBeGreaterThan(0);

    expect(session.load()).toMatchObject({ accessToken: 'access-1', refreshToken: 'refresh-1' });
    expect(calls[0]!.body).toEqual({ email: 'ada@example.com', password: 'correct horse' });
    expect(calls[1]!.path).toBe('/api/v1/me');
    expect(calls[1]!.headers.authorization).toBe('Bearer access-1');
  });

  it("shows the server's error message in an alert", async () => {
    mockFetch({
      'POST /api/v1/auth/login': json(401, {
        error: 'invalid_credentials',
        message: 'Wrong email or password.',
      }),
    });
    const { user } = renderApp('/login');

    await user.type(screen.getByLabelText('Email'), 'ada@example.com');
    await user.type(screen.getByLabelText('Password'), 'wrong');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));

    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toBe('Wrong email or password.');
    expect(session.load()).toBeNull();
    expect((screen.getByRole('button', { name: 'Sign in' }) as HTMLButtonElement).disabled).toBe(false);
  });
});
