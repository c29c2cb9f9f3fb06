import { describe, expect, it } from 'vitest';
import * as session from '../session';
import { TOKENS, json, mockFetch } from '../test/fetch';
import { MATRIX, card, catalogPage, tmdbMatch } from '../test/fixtures';
import { ApiError } from './client';
import { getMovie, play, sameOriginUrl, searchCatalog, searchTmdb } from './catalog';

describe('catalog api', () => {
  it('searches with q, genre, page and per_page, without a token', async () => {
    session.save(TOKENS);
    const page = catalogPage([card('tmdb-603', 'The Matrix')]);
    const { calls } = mockFetch({ 'GET /api/v1/catalog': json(200, page) });

    await expect(searchCatalog({ q: '  matrix 1999 ', genre: 'Science Fiction', page: 2, per_page: 10 })).resolves.toEqual(page);
    expect(calls[0]!.path).toBe('/api/v1/catalog?q=matrix+1999&genre=Science+Fiction&page=2&per_page=10');
    expect(calls[0]!.headers.authorization).toBeUndefined();
  });

  it('lists newest first with no query at all', async () => {
    const { calls } = mockFetch({ 'GET /api/v1/catalog': json(200, catalogPage([])) });
    await searchCatalog();
    expect(calls[0]!.path).toBe('/api/v1/catalog');
  });

  it('loads a movie and maps 404 to ApiError not_found', async () => {
    mockFetch({
      'GET /api/v1/movies/tmdb-603': json(200, MATRIX),
      'GET /api/v1/movies/tmdb-1': json(404, { error: 'not_found', message: 'No such movie.' }),
    });
    await expect(getMovie('tmdb-603')).resolves.toEqual(MATRIX);
    const err = await getMovie('tmdb-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe('not_found');
  });

  it('asks for playback with the bearer token', async () => {
    session.save(TOKENS);
    const answer = {
      movie_id: 'tmdb-603',
      master_url: 'http://127.0.0.1:8083/hls/tmdb-603/master.m3u8?token=pt',
      expires_at: 1764021600,
    };
    const { calls } = mockFetch({ 'GET /api/v1/movies/tmdb-603/play': json(200, answer) });
    await expect(play('tmdb-603')).resolves.toEqual(answer);
    expect(calls[0]!.headers.authorization).toBe('Bearer access-1');
  });

  it('passes email_not_verified through', async () => {
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/movies/tmdb-603/play': json(403, { error: 'email_not_verified', message: 'Verify your email first.' }),
    });
    const err = (await play('tmdb-603').catch((e: unknown) => e)) as ApiError;
    expect(err.status).toBe(403);
    expect(err.code).toBe('email_not_verified');
  });

  it('looks a title up on TMDb with the token, the query trimmed and encoded', async () => {
    session.save(TOKENS);
    const answer = { enabled: true, results: [tmdbMatch(194, 'Amélie', { year: 2001 })] };
    const { calls } = mockFetch({ 'GET /api/v1/tmdb/search': json(200, answer) });

    await expect(searchTmdb('  Amélie & co/2? #1+ ')).resolves.toEqual(answer);
    expect(calls[0]!.path).toBe('/api/v1/tmdb/search?q=Am%C3%A9lie+%26+co%2F2%3F+%231%2B');
    expect(new URL(calls[0]!.path, 'http://x').searchParams.get('q')).toBe('Amélie & co/2? #1+');
    expect(calls[0]!.headers.authorization).toBe('Bearer access-1');
  });

  it('passes a disabled lookup through and rejects an unreadable one', async () => {
    session.save(TOKENS);
    let body: unknown = { enabled: false, results: [] };
    mockFetch({ 'GET /api/v1/tmdb/search': () => json(200, body) });
    await expect(searchTmdb('matrix')).resolves.toEqual({ enabled: false, results: [] });

    body = { enabled: true };
    const err = (await searchTmdb('matrix').catch((e: unknown) => e)) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('bad_response');
  });

  it('plays the master playlist from the page origin', () => {
    expect(sameOriginUrl('http://127.0.0.1:8083/hls/tmdb-603/master.m3u8?token=a.b', 'http://localhost:8080')).toBe(
      '/hls/tmdb-603/master.m3u8?token=a.b',
    );
    expect(sameOriginUrl('/hls/x/master.m3u8?token=t', 'http://localhost')).toBe('/hls/x/master.m3u8?token=t');
  });
});
