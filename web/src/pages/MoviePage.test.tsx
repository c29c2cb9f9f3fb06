import { act, screen, waitFor } from '@testing-library/react';
import { describe, expect, it, vi } from 'vitest';
import type { MovieDetail, ProgressView } from '../api/types';
import * as session from '../session';
import { TOKENS, json, mockFetch } from '../test/fetch';
import { MATRIX, progress } from '../test/fixtures';
import { renderApp } from '../test/render';
import { INGEST_POLL_MS } from './MoviePage';

function routes({ movie = MATRIX, stored = null as ProgressView | null, list = [] as string[] } = {}) {
  session.save(TOKENS);
  return mockFetch({
    [`GET /api/v1/movies/${movie.id}`]: json(200, movie),
    [`GET /api/v1/me/progress/${movie.id}`]: stored
      ? json(200, stored)
      : json(404, { error: 'no_progress', message: 'No progress recorded.' }),
    'GET /api/v1/me/watchlist': json(200, list.map((movie_id) => ({ movie_id, added_at: 1 }))),
    [`PUT /api/v1/me/watchlist/${movie.id}`]: json(201, { movie_id: movie.id, added_at: 2 }),
    [`DELETE /api/v1/me/watchlist/${movie.id}`]: new Response(null, { status: 204 }),
  });
}

describe('movie page', () => {
  it('shows the details and Play when nothing was watched', async () => {
    routes();
    renderApp('/movie/tmdb-603');

    expect((await screen.findByTestId('movie-title')).textContent).toBe('The Matrix');
    // The title is set in an effect after the render: wait for it (a loaded CI machine
    // read it before the effect ran).
    await waitFor(() => expect(document.title).toBe('The Matrix · reelnet'));
    expect(screen.getByText('1999')).toBeTruthy();
    expect(screen.getByText('2h 16m')).toBeTruthy();
    expect(screen.getByText('Action, Science Fiction')).toBeTruthy();
    expect(screen.getByText(MATRIX.overview!)).toBeTruthy();
    expect(screen.getByTestId('availability').textContent).toBe('Available on 2 nodes');
    expect(screen.getByRole('img', { name: 'Poster of The Matrix' }).getAttribute('src')).toBe(MATRIX.poster_url);
    const play = await screen.findByTestId('play-button');
    expect(play.getAttribute('href')).toBe('/watch/tmdb-603');
    expect(screen.queryByTestId('resume-button')).toBeNull();
  });

  it('offers Resume at mm:ss and Start over between 5% and 90%', async () => {
    routes({ stored: progress('tmdb-603', 2448.6, 8160) });
    renderApp('/movie/tmdb-603');

    const resume = await screen.findByTestId('resume-button');
    expect(resume.textContent).toBe('Resume at 40:48');
    expect(resume.getAttribute('href')).toBe('/watch/tmdb-603?t=2448');
    expect(screen.getByTestId('start-over-button').getAttribute('href')).toBe('/watch/tmdb-603?t=0');
    expect(screen.queryByTestId('play-button')).toBeNull();
  });

  it('starts over (Play) when past 90%', async () => {
    routes({ stored: progress('tmdb-603', 7500, 8160, { finished: false }) });
    renderApp('/movie/tmdb-603');
    expect(await screen.findByTestId('play-button')).toBeTruthy();
    expect(screen.queryByTestId('resume-button')).toBeNull();
  });

  it('says how far a movie being prepared is', async () => {
    const preparing: MovieDetail = { ...MATRIX, availability: { state: 'ingesting', percent: 42.9 } };
    routes({ movie: preparing });
    renderApp('/movie/tmdb-603');
    expect((await screen.findByTestId('availability')).textContent).toMatch(/^Being prepared — 42%/);
    expect(await screen.findByTestId('play-button')).toBeTruthy();
  });

  it('keeps the percentage of a movie being prepared current', async () => {
    let percent = 10;
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/movies/tmdb-603': () => json(200, { ...MATRIX, availability: { state: 'ingesting', percent } }),
      'GET /api/v1/me/progress/tmdb-603': json(404, { error: 'no_progress', message: 'none' }),
      'GET /api/v1/me/watchlist': json(200, []),
    });
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      renderApp('/movie/tmdb-603');
      expect((await screen.findByTestId('availability')).textContent).toMatch(/— 10%/);
      percent = 55;
      await act(() => vi.advanceTimersByTimeAsync(INGEST_POLL_MS));
      await waitFor(() => expect(screen.getByTestId('availability').textContent).toMatch(/— 55%/));
    } finally {
      vi.useRealTimers();
    }
  });

  it('disables Play when no node holds the movie', async () => {
    routes({ movie: { ...MATRIX, availability: { state: 'unavailable', percent: 100 }, nodes: 0 } });
    renderApp('/movie/tmdb-603');
    expect((await screen.findByTestId('availability')).textContent).toMatch(/Not available right now/);
    expect((await screen.findByTestId<HTMLButtonElement>('play-button')).disabled).toBe(true);
  });

  it('adds to and removes from watch later', async () => {
    const { calls } = routes();
    const { user } = renderApp('/movie/tmdb-603');

    const toggle = await screen.findByRole('button', { name: 'Add to watch later' });
    await screen.findByTestId('play-button');
    expect(toggle.getAttribute('data-state')).toBe('off');
    await user.click(toggle);
    expect(await screen.findByRole('button', { name: 'Remove from watch later' })).toBe(toggle);
    expect(toggle.getAttribute('data-state')).toBe('on');
    await user.click(toggle);
    expect(await screen.findByRole('button', { name: 'Add to watch later' })).toBe(toggle);

    expect(calls.filter((c) => c.method !== 'GET').map((c) => `${c.method} ${c.path}`)).toEqual([
      'PUT /api/v1/me/watchlist/tmdb-603',
      'DELETE /api/v1/me/watchlist/tmdb-603',
    ]);
  });

  it('knows a movie already on the list', async () => {
    routes({ list: ['tmdb-603'] });
    renderApp('/movie/tmdb-603');
    expect(await screen.findByRole('button', { name: 'Remove from watch later' })).toBeTruthy();
  });

  it('shows not found for an unknown movie', async () => {
    session.save(TOKENS);
    mockFetch({ 'GET /api/v1/movies/tmdb-1': json(404, { error: 'not_found', message: 'No such movie.' }) });
    renderApp('/movie/tmdb-1');
    expect(await screen.findByRole('heading', { name: 'Page not found' })).toBeTruthy();
  });
});
