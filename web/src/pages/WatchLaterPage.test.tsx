import { screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import * as session from '../session';
import { TOKENS, json, mockFetch } from '../test/fetch';
import { MATRIX, card, detail } from '../test/fixtures';
import { renderApp } from '../test/render';

const HEAT = detail(card('tmdb-949', 'Heat', { year: 1995 }));

describe('watch later page', () => {
  it('lists the movies newest first and removes one', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({
      'GET /api/v1/me/watchlist': json(200, [
        { movie_id: 'tmdb-603', added_at: 1 },
        { movie_id: 'tmdb-949', added_at: 2 },
      ]),
      'GET /api/v1/movies/tmdb-603': json(200, MATRIX),
      'GET /api/v1/movies/tmdb-949': json(200, HEAT),
      'DELETE /api/v1/me/watchlist/tmdb-603': new Response(null, { status: 204 }),
    });
    const { user } = renderApp('/watch-later');

    const list = await screen.findByTestId('watch-later-list');
    const ids = () => within(list).queryAllByTestId('movie-card').map((c) => c.getAttribute('data-movie-id'));
    expect(ids()).toEqual(['tmdb-949', 'tmdb-603']);

    await user.click(screen.getByRole('button', { name: 'Remove The Matrix from watch later' }));
    expect(await within(list).findAllByTestId('movie-card')).toHaveLength(1);
    expect(ids()).toEqual(['tmdb-949']);
    expect(calls.at(-1)).toMatchObject({ method: 'DELETE', path: '/api/v1/me/watchlist/tmdb-603' });
  });

  it('says when the list is empty', async () => {
    session.save(TOKENS);
    mockFetch({ 'GET /api/v1/me/watchlist': json(200, []) });
    renderApp('/watch-later');
    expect(await screen.findByText('Your watch-later list is empty.')).toBeTruthy();
    expect(screen.getByRole('link', { name: 'Find something to watch' }).getAttribute('href')).toBe('/');
  });

  it('shows a load error with a retry', async () => {
    session.save(TOKENS);
    mockFetch({ 'GET /api/v1/me/watchlist': json(503, { error: 'tracker_unavailable', message: 'The tracker is not answering.' }) });
    renderApp('/watch-later');
    expect((await screen.findByRole('alert')).textContent).toBe('The tracker is not answering.');
    expect(screen.getByRole('button', { name: 'Try again' })).toBeTruthy();
  });
});
