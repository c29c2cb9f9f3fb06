import { screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import * as session from '../session';
import { TOKENS, json, mockFetch, type Call } from '../test/fetch';
import type { NewRequest } from '../api/requests';
import { MATRIX, createdRequest } from '../test/fixtures';
import { renderApp } from '../test/render';

const SUB = { tier: 'free', until: null, status: 'none', premium_features: [], request_quota: 3, requests_used: 0 };

function routes() {
  session.save(TOKENS);
  return mockFetch({
    'GET /api/v1/requests': json(200, []),
    'GET /api/v1/me/subscription': json(200, SUB),
    'POST /api/v1/requests': (call: Call) => json(201, createdRequest(call.body as NewRequest, '9')),
  });
}

describe('requests page', () => {
  it('fills in the title from ?title= and sends it with the request', async () => {
    const { calls } = routes();
    const { user } = renderApp('/requests?title=Am%C3%A9lie%20%26%20Co');

    const title = (await screen.findByLabelText('Title')) as HTMLInputElement;
    expect(title.value).toBe('Amélie & Co');
    await user.type(screen.getByLabelText('TMDb id'), '194');
    await user.click(screen.getByRole('button', { name: 'Request' }));

    expect(await screen.findByText('Amélie & Co')).toBeTruthy();
    expect(calls.find((c) => c.method === 'POST')!.body).toEqual({ tmdb_id: 194, title: 'Amélie & Co' });
  });

  it('opens the movie page when the network has the movie already', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({
      'GET /api/v1/requests': json(200, []),
      'GET /api/v1/me/subscription': json(200, SUB),
      'POST /api/v1/requests': json(409, {
        error: 'already_available',
        message: 'tmdb-603 is already available',
        movie_id: 'tmdb-603',
      }),
      'GET /api/v1/movies/tmdb-603': json(200, MATRIX),
    });
    const { user } = renderApp('/requests');

    await user.type(await screen.findByLabelText('TMDb id'), '603');
    await user.click(screen.getByRole('button', { name: 'Request' }));

    expect((await screen.findByTestId('movie-title')).textContent).toContain('The Matrix');
    expect(calls.some((c) => c.method === 'GET' && c.path === '/api/v1/movies/tmdb-603')).toBe(true);
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('shows other conflicts as errors on the form', async () => {
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/requests': json(200, []),
      'GET /api/v1/me/subscription': json(200, SUB),
      'POST /api/v1/requests': json(409, { error: 'something_else', message: 'Not now.' }),
    });
    const { user } = renderApp('/requests');

    await user.type(await screen.findByLabelText('TMDb id'), '603');
    await user.click(screen.getByRole('button', { name: 'Request' }));

    expect((await screen.findByRole('alert')).textContent).toContain('Not now.');
  });

  it('starts with an empty title without one', async () => {
    routes();
    renderApp('/requests');
    expect(((await screen.findByLabelText('Title')) as HTMLInputElement).value).toBe('');
  });
});
