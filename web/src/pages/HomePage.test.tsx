import { screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import * as session from '../session';
import { TOKENS, json, mockFetch, type Call } from '../test/fetch';
import { MATRIX, card, catalogPage, detail, progress } from '../test/fixtures';
import { renderApp } from '../test/render';

const HEAT = card('tmdb-949', 'Heat', { year: 1995, genres: ['Drama'] });
const ALIEN = card('tmdb-348', 'Alien', { year: 1979, availability: { state: 'ingesting', percent: 42.7 } });

function movies(call: Call) {
  const id = call.path.split('/').pop();
  const found = [MATRIX, detail(HEAT), detail(ALIEN)].find((m) => m.id === id);
  return found ? json(200, found) : json(404, { error: 'not_found', message: 'No such movie.' });
}

function catalog(call: Call) {
  const q = new URL(call.path, 'http://x').searchParams;
  if (q.get('q')) return json(200, catalogPage(q.get('q') === 'zzz' ? [] : [MATRIX], ['Action', 'Drama']));
  if (q.get('genre') === 'Drama') return json(200, catalogPage([HEAT], ['Action', 'Drama']));
  if (q.get('genre') === 'Action') return json(200, catalogPage([MATRIX], ['Action', 'Drama']));
  return json(200, catalogPage([ALIEN, HEAT, MATRIX], ['Action', 'Drama']));
}

function signedInRoutes(overrides: Record<string, (c: Call) => Response> = {}) {
  session.save(TOKENS);
  return mockFetch({
    'GET /api/v1/me/history': () =>
      json(200, {
        items: [progress('tmdb-603', 2448, 8160), progress('tmdb-949', 8100, 8160, { finished: true }), progress('gone-1', 50, 100)],
        next_cursor: null,
      }),
    'GET /api/v1/me/watchlist': () => json(200, [{ movie_id: 'tmdb-949', added_at: 1 }]),
    'GET /api/v1/catalog': catalog,
    'GET /api/v1/movies/tmdb-603': movies,
    'GET /api/v1/movies/tmdb-949': movies,
    'GET /api/v1/movies/tmdb-348': movies,
    'GET /api/v1/movies/gone-1': movies,
    ...overrides,
  });
}

describe('home page', () => {
  it('sends a signed-out visitor to sign in', async () => {
    const { fn } = mockFetch({});
    renderApp('/');
    expect(await screen.findByRole('heading', { name: 'Sign in' })).toBeTruthy();
    expect(fn).not.toHaveBeenCalled();
  });

  it('shows rows: continue watching with progress, watch later, recently added, one per genre', async () => {
    signedInRoutes();
    renderApp('/');

    const cont = await screen.findByTestId('row-continue');
    const contCards = await within(cont).findAllByTestId('movie-card');
    // Only the movie between 5% and 90% (the finished one and the unknown one are left out).
    expect(contCards.map((c) => c.getAttribute('data-movie-id'))).toEqual(['tmdb-603']);
    expect(within(cont).getByRole('progressbar').getAttribute('aria-valuenow')).toBe('30');
    expect(contCards[0]!.getAttribute('aria-label')).toBe('The Matrix (1999), 30% watched');

    const later = screen.getByTestId('row-watch-later');
    expect((await within(later).findAllByTestId('movie-card')).map((c) => c.getAttribute('data-movie-id'))).toEqual(['tmdb-949']);

    const recent = screen.getByTestId('row-recent');
    const recentCards = await within(recent).findAllByTestId('movie-card');
    expect(recentCards).toHaveLength(3);
    expect(recentCards[0]!.getAttribute('href')).toBe('/movie/tmdb-348');
    expect(within(recent).getByText('Preparing 42%')).toBeTruthy();

    const drama = await screen.findByTestId('row-genre-drama');
    expect(within(drama).getByRole('heading', { name: 'Drama' })).toBeTruthy();
    expect(await within(drama).findByRole('link', { name: 'Heat (1995)' })).toBeTruthy();
    expect(screen.getByTestId('row-genre-action')).toBeTruthy();
  });

  it('searches as you type, once per pause, and shows posters', async () => {
    const { calls } = signedInRoutes();
    const { user } = renderApp('/');

    await user.type(screen.getByTestId('search-input'), 'matr');
    const results = await screen.findByTestId('search-results');
    const cards = await within(results).findAllByTestId('movie-card');
    expect(cards.map((c) => c.getAttribute('data-movie-id'))).toEqual(['tmdb-603']);
    expect(within(results).getByRole('status').textContent).toBe('1 movie');
    const searches = calls.filter((c) => c.path.includes('q='));
    expect(searches.map((c) => c.path)).toEqual(['/api/v1/catalog?q=matr&per_page=48']);
    expect(cards[0]!.querySelector('img')?.getAttribute('src')).toBe(MATRIX.poster_url);
  });

  it('says so when a search finds nothing, and clearing it brings the rows back', async () => {
    signedInRoutes();
    const { user } = renderApp('/');
    const input = screen.getByLabelText('Search movies');

    await user.type(input, 'zzz');
    expect(await screen.findByText('No movies match “zzz”.')).toBeTruthy();
    await user.clear(input);
    await waitFor(() => expect(screen.queryByTestId('search-results')).toBeNull());
    expect(screen.getByTestId('row-recent')).toBeTruthy();
  });

  it('shows empty states for an empty library and list', async () => {
    signedInRoutes({
      'GET /api/v1/catalog': () => json(200, catalogPage([], [])),
      'GET /api/v1/me/watchlist': () => json(200, []),
      'GET /api/v1/me/history': () => json(200, { items: [], next_cursor: null }),
    });
    renderApp('/');
    expect(await screen.findByText(/No movies in the network yet/)).toBeTruthy();
    expect(await screen.findByText(/Nothing saved yet/)).toBeTruthy();
    expect(screen.queryByTestId('row-continue')).toBeNull();
  });

  it('shows a row error with a retry', async () => {
    let fail = true;
    signedInRoutes({
      'GET /api/v1/me/watchlist': () =>
        fail ? json(503, { error: 'tracker_unavailable', message: 'The tracker is not answering.' }) : json(200, []),
    });
    const { user } = renderApp('/');
    const later = screen.getByTestId('row-watch-later');
    expect((await within(later).findByRole('alert')).textContent).toBe('The tracker is not answering.');
    fail = false;
    await user.click(within(later).getByRole('button', { name: 'Try again' }));
    expect(await within(later).findByText(/Nothing saved yet/)).toBeTruthy();
  });
});
