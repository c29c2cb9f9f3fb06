import { screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import * as session from '../session';
import { TOKENS, json, mockFetch } from '../test/fetch';
import { MATRIX, progress } from '../test/fixtures';
import { renderApp } from '../test/render';

describe('history page', () => {
  it('lists what was watched with how far, and pages on', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({
      'GET /api/v1/me/history': (call) =>
        call.path.includes('cursor=')
          ? json(200, { items: [progress('tmdb-949', 8000, 8160, { finished: true })], next_cursor: null })
          : json(200, { items: [progress('tmdb-603', 2448, 8160)], next_cursor: 'ab' }),
      'GET /api/v1/movies/tmdb-603': json(200, MATRIX),
      'GET /api/v1/movies/tmdb-949': json(404, { error: 'not_found', message: 'No such movie.' }),
    });
    const { user } = renderApp('/history');

    const items = await screen.findAllByTestId('history-item');
    expect(items).toHaveLength(1);
    expect(within(items[0]!).getByRole('link', { name: 'The Matrix (1999)' }).getAttribute('href')).toBe('/movie/tmdb-603');
    expect(items[0]!.textContent).toContain('Stopped at 40:48 of 2:16:00');
    expect(within(items[0]!).getByRole('progressbar').getAttribute('aria-valuenow')).toBe('30');

    await user.click(screen.getByRole('button', { name: 'Show more' }));
    const all = await screen.findAllByTestId('history-item');
    expect(all).toHaveLength(2);
    // A movie the network no longer knows still shows, by id.
    expect(all[1]!.textContent).toContain('tmdb-949');
    expect(all[1]!.textContent).toContain('Watched');
    expect(screen.queryByRole('button', { name: 'Show more' })).toBeNull();
    expect(calls.filter((c) => c.path.startsWith('/api/v1/me/history')).map((c) => c.path)).toEqual([
      '/api/v1/me/history?limit=20',
      '/api/v1/me/history?limit=20&cursor=ab',
    ]);
  });

  it('says when nothing was watched yet', async () => {
    session.save(TOKENS);
    mockFetch({ 'GET /api/v1/me/history': json(200, { items: [], next_cursor: null }) });
    renderApp('/history');
    expect(await screen.findByText('You have not watched anything yet.')).toBeTruthy();
  });
});
