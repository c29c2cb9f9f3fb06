import { screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { json, mockFetch } from '../test/fetch';
import { renderApp } from '../test/render';

describe('verify page', () => {
  it('verifies the token from the link, once', async () => {
    const { calls } = mockFetch({ 'POST /api/v1/auth/verify': new Response(null, { status: 204 }) });
    renderApp('/verify?token=abc%2B123');

    expect(await screen.findByText('Your email is verified.')).toBeTruthy();
    expect(within(screen.getByRole('main')).getByRole('link', { name: 'Sign in' })).toBeTruthy();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.body).toEqual({ token: 'abc+123' });
  });

  it("shows the server's message when the token is refused", async () => {
    mockFetch({
      'POST /api/v1/auth/verify': json(400, {
        error: 'invalid_token',
        message: 'This link has expired. Register again to get a new one.',
      }),
    });
    renderApp('/verify?token=old');

    expect((await screen.findByRole('alert')).textContent).toBe(
      'This link has expired. Register again to get a new one.',
    );
  });

  it('explains a link without a token', () => {
    const { fn } = mockFetch({});
    renderApp('/verify');

    expect(screen.getByRole('alert').textContent).toMatch(/incomplete/);
    expect(fn).not.toHaveBeenCalled();
  });
});
