import { screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import * as session from '../session';
import { TOKENS, json, mockFetch, type Call } from '../test/fetch';
import type { NewRequest } from '../api/requests';
import { MATRIX, card, catalogPage, createdRequest, detail, progress, tmdbMatch } from '../test/fixtures';
import { browserNavigation } from '../signin';
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

// TMDb's matches for "matr": the network has The Matrix, not the other two.
const RELOADED = tmdbMatch(604, 'The Matrix Reloaded', { year: 2003 });
const RESURRECTIONS = tmdbMatch(624860, 'The Matrix Resurrections', { year: null, poster_url: null });
const TMDB_MATR = {
  enabled: true,
  results: [tmdbMatch(603, 'The Matrix', { on_network: true }), RELOADED, RESURRECTIONS],
};

function tmdbSearch(call: Call) {
  const q = new URL(call.path, 'http://x').searchParams.get('q');
  return json(200, q === 'matr' ? TMDB_MATR : { enabled: true, results: [] });
}

/** A request as the tracker answers `POST /requests`. */
function requestAnswer(call: Call) {
  return json(201, createdRequest(call.body as NewRequest));
}

/** A promise and the function that settles it. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function signedInRoutes(overrides: Record<string, (c: Call) => Response | Promise<Response>> = {}) {
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
    'GET /api/v1/tmdb/search': tmdbSearch,
    ...overrides,
  });
}

describe('home page', () => {
  it('sends a signed-out visitor to sign in', async () => {
    const { fn } = mockFetch({});
    renderApp('/');
    await waitFor(() => expect(browserNavigation.assign).toHaveBeenCalledWith('/auth/login?return=%2F'));
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
    expect(searches.map((c) => c.path).sort()).toEqual(['/api/v1/catalog?q=matr&per_page=48', '/api/v1/tmdb/search?q=matr']);
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

  it('offers the TMDb matches the network lacks, after the catalog results', async () => {
    const { calls } = signedInRoutes();
    const { user } = renderApp('/');
    await user.type(screen.getByTestId('search-input'), 'matr');

    const section = await screen.findByTestId('tmdb-results');
    expect(within(section).getByRole('heading', { name: 'Not on reelnet yet' })).toBeTruthy();
    const items = within(section).getAllByTestId('tmdb-match');
    // The Matrix is on the network, so only the catalog shows it.
    expect(items.map((i) => i.getAttribute('data-tmdb-id'))).toEqual(['604', '624860']);
    expect(within(items[0]!).getByText('The Matrix Reloaded')).toBeTruthy();
    expect(within(items[0]!).getByText('2003')).toBeTruthy();
    expect(items[0]!.querySelector('img')?.getAttribute('src')).toBe(RELOADED.poster_url);
    expect(items[1]!.querySelector('img')).toBeNull();
    expect(items[1]!.querySelector('.poster-fallback')?.textContent).toBe('T');
    expect(within(section).getAllByRole('button').map((b) => b.getAttribute('aria-label'))).toEqual([
      'Request The Matrix Reloaded (2003)',
      'Request The Matrix Resurrections',
    ]);

    const results = screen.getByTestId('search-results');
    expect(within(results).getAllByTestId('movie-card').map((c) => c.getAttribute('data-movie-id'))).toEqual(['tmdb-603']);
    // The catalog's results come first in the page (and in focus order).
    expect(results.compareDocumentPosition(section) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();
    expect(screen.queryByTestId('request-hint')).toBeNull();
    expect(calls.find((c) => c.path.startsWith('/api/v1/tmdb/'))!.headers.authorization).toBe('Bearer access-1');
  });

  it('requests a match and then points to My requests', async () => {
    const answer = deferred<Response>();
    const { calls } = signedInRoutes({ 'POST /api/v1/requests': () => answer.promise });
    const { user } = renderApp('/');
    await user.type(screen.getByTestId('search-input'), 'matr');

    const button = await screen.findByRole('button', { name: 'Request The Matrix Reloaded (2003)' });
    await user.click(button);
    expect((button as HTMLButtonElement).disabled).toBe(true);
    expect(button.textContent).toBe('Requesting…');
    const posts = calls.filter((c) => c.method === 'POST');
    expect(posts).toHaveLength(1);
    expect(posts[0]).toMatchObject({ path: '/api/v1/requests', body: { tmdb_id: 604, title: 'The Matrix Reloaded', year: 2003 } });
    expect(posts[0]!.headers.authorization).toBe('Bearer access-1');

    answer.resolve(requestAnswer(posts[0]!));
    const item = screen.getAllByTestId('tmdb-match')[0]!;
    const done = await within(item).findByRole('status');
    expect(done.textContent).toBe('Requested — see My requests');
    const link = within(done).getByRole('link', { name: 'see My requests' });
    expect(link.getAttribute('href')).toBe('/requests');
    expect(document.activeElement).toBe(link);
    expect(within(item).queryByRole('button')).toBeNull();
    // The other match is untouched.
    expect(screen.getByRole('button', { name: 'Request The Matrix Resurrections' })).toBeTruthy();
  });

  it('sends a match without a year as title only', async () => {
    const { calls } = signedInRoutes({ 'POST /api/v1/requests': requestAnswer });
    const { user } = renderApp('/');
    await user.type(screen.getByTestId('search-input'), 'matr');
    await user.click(await screen.findByRole('button', { name: 'Request The Matrix Resurrections' }));
    expect(await screen.findByRole('link', { name: 'see My requests' })).toBeTruthy();
    expect(calls.find((c) => c.method === 'POST')!.body).toEqual({ tmdb_id: 624860, title: 'The Matrix Resurrections' });
  });

  it.each([
    [429, 'quota_exceeded', 'You have used all 3 of your requests this month.'],
    [403, 'email_not_verified', 'Verify your email address first.'],
  ])('shows a %i %s next to the button, which stays usable', async (status, error, message) => {
    signedInRoutes({ 'POST /api/v1/requests': () => json(status, { error, message }) });
    const { user } = renderApp('/');
    await user.type(screen.getByTestId('search-input'), 'matr');

    const button = await screen.findByRole('button', { name: 'Request The Matrix Reloaded (2003)' });
    await user.click(button);
    const item = screen.getAllByTestId('tmdb-match')[0]!;
    expect((await within(item).findByRole('alert')).textContent).toBe(message);
    expect((button as HTMLButtonElement).disabled).toBe(false);
    expect(button.textContent).toBe('Request');
    expect(within(item).queryByRole('link')).toBeNull();
    // Only that match shows the error.
    expect(screen.getAllByRole('alert')).toHaveLength(1);
  });

  it('opens the movie page when the network has the requested movie already', async () => {
    // TMDb's result predates the movie's arrival: the tracker answers 409 with its id.
    signedInRoutes({
      'POST /api/v1/requests': () =>
        json(409, { error: 'already_available', message: 'tmdb-949 is already available', movie_id: 'tmdb-949' }),
    });
    const { user } = renderApp('/');
    await user.type(screen.getByTestId('search-input'), 'matr');
    await user.click(await screen.findByRole('button', { name: 'Request The Matrix Reloaded (2003)' }));
    expect((await screen.findByTestId('movie-title')).textContent).toContain('Heat');
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('links to the request form with the query when the node has no TMDb key', async () => {
    signedInRoutes({ 'GET /api/v1/tmdb/search': () => json(200, { enabled: false, results: [] }) });
    const { user } = renderApp('/');
    await user.type(screen.getByTestId('search-input'), 'matr');

    const hint = await screen.findByTestId('request-hint');
    expect(hint.textContent).toBe('Can’t find it? Request a movie');
    expect(within(hint).getByRole('link', { name: 'Request a movie' }).getAttribute('href')).toBe('/requests?title=matr');
    expect(screen.queryByTestId('tmdb-results')).toBeNull();
    expect(within(screen.getByTestId('search-results')).getAllByTestId('movie-card')).toHaveLength(1);
  });

  it('keeps the catalog results when the TMDb lookup fails', async () => {
    signedInRoutes({
      'GET /api/v1/tmdb/search': () => json(502, { error: 'tmdb_unavailable', message: 'TMDb timed out.' }),
    });
    const { user } = renderApp('/');
    await user.type(screen.getByTestId('search-input'), 'matr');

    const hint = await screen.findByTestId('request-hint');
    expect(within(hint).getByRole('link', { name: 'Request a movie' }).getAttribute('href')).toBe('/requests?title=matr');
    const results = screen.getByTestId('search-results');
    expect(within(results).getAllByTestId('movie-card').map((c) => c.getAttribute('data-movie-id'))).toEqual(['tmdb-603']);
    expect(within(results).getByRole('status').textContent).toBe('1 movie');
    expect(screen.queryByRole('alert')).toBeNull();
    expect(screen.queryByText('TMDb timed out.')).toBeNull();
  });

  it('does not wait for a slow TMDb lookup to show the catalog results', async () => {
    const never = deferred<Response>();
    signedInRoutes({ 'GET /api/v1/tmdb/search': () => never.promise });
    const { user } = renderApp('/');
    await user.type(screen.getByTestId('search-input'), 'matr');

    const results = await screen.findByTestId('search-results');
    expect(await within(results).findAllByTestId('movie-card')).toHaveLength(1);
    expect(screen.queryByTestId('tmdb-results')).toBeNull();
    expect(screen.queryByTestId('request-hint')).toBeNull();
  });

  it('points an empty search to the request form, or to the matches to request', async () => {
    signedInRoutes({
      'GET /api/v1/catalog': (c) => (c.path.includes('q=') ? json(200, catalogPage([])) : catalog(c)),
    });
    const { user } = renderApp('/');
    const input = screen.getByLabelText('Search movies');

    await user.type(input, 'zzz');
    const results = await screen.findByTestId('search-results');
    expect((await within(results).findByText('No movies match “zzz”.')).getAttribute('role')).toBe('status');
    const hint = within(results).getByTestId('request-hint');
    expect(within(hint).getByRole('link', { name: 'Request a movie' }).getAttribute('href')).toBe('/requests?title=zzz');
    // TMDb found nothing either: just the one way forward.
    await waitFor(() => expect(screen.getAllByTestId('request-hint')).toHaveLength(1));

    await user.clear(input);
    await user.type(input, 'matr');
    await screen.findByTestId('tmdb-results');
    expect(screen.getByTestId('request-hint').textContent).toBe('It is not on reelnet yet, but you can request it below.');
    expect(screen.getAllByTestId('tmdb-match')).toHaveLength(2);
  });

  it('takes the query to the request form', async () => {
    signedInRoutes({
      'GET /api/v1/tmdb/search': () => json(200, { enabled: false, results: [] }),
      'GET /api/v1/requests': () => json(200, []),
      'GET /api/v1/me/subscription': () =>
        json(200, { tier: 'free', until: null, status: 'none', premium_features: [], request_quota: 3, requests_used: 0 }),
    });
    const { user } = renderApp('/');
    await user.type(screen.getByTestId('search-input'), 'blade runner');
    await user.click(await screen.findByRole('link', { name: 'Request a movie' }));

    expect(await screen.findByRole('heading', { name: 'My requests' })).toBeTruthy();
    expect((await screen.findByLabelText('Title') as HTMLInputElement).value).toBe('blade runner');
  });
});
