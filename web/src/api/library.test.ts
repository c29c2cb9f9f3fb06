import { describe, expect, it } from 'vitest';
import * as session from '../session';
import { TOKENS, json, mockFetch } from '../test/fetch';
import { progress } from '../test/fixtures';
import { ApiError } from './client';
import {
  addToWatchlist,
  getHistory,
  getProgress,
  getWatchlist,
  putProgress,
  removeFromWatchlist,
} from './library';

describe('library api', () => {
  it('adds, lists and removes watch-later entries', async () => {
    session.save(TOKENS);
    const item = { movie_id: 'tmdb-603', added_at: 1764000000000 };
    const { calls } = mockFetch({
      'PUT /api/v1/me/watchlist/tmdb-603': json(201, item),
      'GET /api/v1/me/watchlist': json(200, [item]),
      'DELETE /api/v1/me/watchlist/tmdb-603': new Response(null, { status: 204 }),
    });

    await expect(addToWatchlist('tmdb-603')).resolves.toEqual(item);
    await expect(getWatchlist()).resolves.toEqual([item]);
    await expect(removeFromWatchlist('tmdb-603')).resolves.toBeUndefined();
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      'PUT /api/v1/me/watchlist/tmdb-603',
      'GET /api/v1/me/watchlist',
      'DELETE /api/v1/me/watchlist/tmdb-603',
    ]);
    expect(calls.every((c) => c.headers.authorization === 'Bearer access-1')).toBe(true);
    expect(calls[0]!.body).toBeUndefined();
  });

  it('reads missing progress as null, and other errors as errors', async () => {
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/me/progress/tmdb-1': json(404, { error: 'no_progress', message: 'Nothing recorded.' }),
      'GET /api/v1/me/progress/tmdb-2': json(200, progress('tmdb-2', 60, 600)),
      'GET /api/v1/me/progress/tmdb-3': json(500, { error: 'internal', message: 'Oops.' }),
    });
    await expect(getProgress('tmdb-1')).resolves.toBeNull();
    await expect(getProgress('tmdb-2')).resolves.toMatchObject({ position_s: 60, resume_at: 60 });
    await expect(getProgress('tmdb-3')).rejects.toBeInstanceOf(ApiError);
  });

  it('writes progress as a PUT with the bearer token, clamped, and stamped with the client clock', async () => {
    session.save(TOKENS);
    const { calls, fn } = mockFetch({
      'PUT /api/v1/me/progress/tmdb-603': json(200, { ...progress('tmdb-603', 120, 120), applied: true }),
    });

    await putProgress('tmdb-603', 120.4, 120, { now: 1764000000123.7 });
    expect(calls[0]).toMatchObject({
      method: 'PUT',
      body: { position_s: 120, duration_s: 120, timestamp_ms: 1764000000123 },
    });
    expect(calls[0]!.headers.authorization).toBe('Bearer access-1');
    expect(fn.mock.calls[0]![1]!.keepalive).toBeUndefined();
  });

  it('sends the page-close write with keepalive (sendBeacon cannot carry the bearer token)', async () => {
    session.save(TOKENS);
    const { calls, fn } = mockFetch({
      'PUT /api/v1/me/progress/tmdb-603': json(200, progress('tmdb-603', 30, 120)),
    });
    await putProgress('tmdb-603', 30, 120, { keepalive: true });
    expect(fn.mock.calls[0]![1]!.keepalive).toBe(true);
    expect(calls[0]!.headers.authorization).toBe('Bearer access-1');
  });

  it('pages through history with limit and cursor', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({
      'GET /api/v1/me/history': (call) =>
        json(200, call.path.includes('cursor=') ? { items: [], next_cursor: null } : { items: [progress('a', 1, 2)], next_cursor: '0a0b' }),
    });
    const first = await getHistory({ limit: 5 });
    expect(first.next_cursor).toBe('0a0b');
    await getHistory({ limit: 5, cursor: first.next_cursor });
    expect(calls.map((c) => c.path)).toEqual(['/api/v1/me/history?limit=5', '/api/v1/me/history?limit=5&cursor=0a0b']);
  });
});

describe('progress read after write', () => {
  it('waits for a pending write to the same movie before reading', async () => {
    session.save(TOKENS);
    let release: (r: Response) => void = () => undefined;
    const order: string[] = [];
    mockFetch({
      'PUT /api/v1/me/progress/tmdb-603': () =>
        new Promise<Response>((resolve) => {
          release = (r) => {
            order.push('put done');
            resolve(r);
          };
        }),
      'GET /api/v1/me/progress/tmdb-603': () => {
        order.push('get');
        return json(200, progress('tmdb-603', 42, 120));
      },
    });
    const write = putProgress('tmdb-603', 42, 120, { keepalive: true });
    const read = getProgress('tmdb-603');
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual([]);
    release(json(200, progress('tmdb-603', 42, 120)));
    await write;
    await expect(read).resolves.toMatchObject({ position_s: 42 });
    expect(order).toEqual(['put done', 'get']);
  });
});
