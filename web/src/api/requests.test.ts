import { describe, expect, it } from 'vitest';
import * as session from '../session';
import { TOKENS, json, mockFetch } from '../test/fetch';
import { ApiError } from './client';
import { createRequest, getMyRequests, getSubscription, stateLabel, type MovieRequest } from './requests';

const REQ: MovieRequest = {
  id: '7',
  tmdb_id: 603,
  title: 'The Matrix',
  year: 1999,
  state: 'downloading',
  percent: 41.6,
  reason: null,
  movie_id: null,
  requesters: 2,
  has_source: true,
  created_at_ms: 1,
  updated_at_ms: 2,
};

describe('requests api', () => {
  it('creates and lists requests, and reads the subscription', async () => {
    session.save(TOKENS);
    const sub = {
      tier: 'free',
      until: null,
      status: 'none',
      premium_features: ['top_renditions'],
      request_quota: 3,
      requests_used: 1,
    };
    const { calls } = mockFetch({
      'POST /api/v1/requests': json(201, REQ),
      'GET /api/v1/requests': json(200, [REQ]),
      'GET /api/v1/me/subscription': json(200, sub),
    });
    await expect(createRequest({ tmdb_id: 603, title: 'The Matrix' })).resolves.toEqual(REQ);
    await expect(getMyRequests()).resolves.toEqual([REQ]);
    await expect(getSubscription()).resolves.toEqual(sub);
    expect(calls[0]!.body).toEqual({ tmdb_id: 603, title: 'The Matrix' });
    expect(calls.every((c) => c.headers.authorization === 'Bearer access-1')).toBe(true);
  });

  it('surfaces the quota error', async () => {
    session.save(TOKENS);
    mockFetch({
      'POST /api/v1/requests': json(429, { error: 'quota_exceeded', message: '3 of 3 used' }),
    });
    const err = await createRequest({ tmdb_id: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe('quota_exceeded');
  });

  it('labels states', () => {
    expect(stateLabel(REQ)).toBe('Downloading 42%');
    expect(stateLabel({ ...REQ, state: 'failed', reason: 'no seeders' })).toBe('Failed: no seeders');
    expect(stateLabel({ ...REQ, state: 'ready' })).toBe('Ready to watch');
  });
});
