import { screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import * as session from '../../session';
import { job } from '../../test/console';
import { TOKENS, json, mockFetch, type Call } from '../../test/fetch';
import { renderApp } from '../../test/render';
import { jobFraction } from './JobsPage';

describe('console: jobs page', () => {
  it('lists jobs with progress, speed, ETA, tracks and errors in plain words', async () => {
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/console/jobs': json(200, [
        job(3, { state: 'failed', error: 'the source has no video stream', position_fraction: 0 }),
        job(2),
        job(1, {
          state: 'done',
          position_fraction: 1,
          eta_s: 0,
          tracks: [
            { name: '720p', kind: 'video', language: null },
            { name: 'audio-en', kind: 'audio', language: 'en' },
          ],
        }),
      ]),
    });
    renderApp('/console/jobs');
    const running = await screen.findByTestId('job-2');
    expect(within(running).getByRole('progressbar').getAttribute('aria-valuenow')).toBe('25');
    expect(running.textContent).toContain('3.5× realtime');
    expect(running.textContent).toContain('ETA 26 s');
    expect(running.textContent).toContain('at 30 s of 2 min 0 s');
    const done = screen.getByTestId('job-1');
    expect(done.getAttribute('data-state')).toBe('done');
    expect(within(done).getByRole('progressbar').getAttribute('aria-valuenow')).toBe('100');
    expect(done.textContent).toContain('audio-en (en)');
    expect(within(done).queryByRole('button', { name: 'Cancel' })).toBeNull();
    expect(within(screen.getByTestId('job-3')).getByRole('alert').textContent).toBe(
      'It failed: the source has no video stream',
    );
  });

  it('starts a job from a path and cancels a running one', async () => {
    session.save(TOKENS);
    let list = [job(1)];
    const { calls } = mockFetch({
      'GET /api/v1/console/jobs': () => json(200, list),
      'POST /api/v1/console/jobs': (call: Call) => {
        list = [job(2, { state: 'queued', source: (call.body as { source: string }).source, position_fraction: null }), ...list];
        return json(202, { id: 2 });
      },
      'POST /api/v1/console/jobs/1/cancel': () => {
        list = list.map((j) => (j.id === 1 ? job(1, { state: 'failed', error: 'cancelled' }) : j));
        return json(200, { id: 1, cancelled: true });
      },
    });
    const { user } = renderApp('/console/jobs');
    await screen.findByTestId('job-1');
    await user.type(screen.getByLabelText('Magnet link or file path on the node'), '/srv/new.mkv');
    await user.type(screen.getByLabelText('Title (optional)'), 'New');
    await user.click(screen.getByRole('button', { name: 'Start ingest' }));
    expect(await screen.findByTestId('job-2')).toBeTruthy();
    expect(calls.find((c) => c.method === 'POST')!.body).toEqual({ source: '/srv/new.mkv', title: 'New' });

    await user.click(within(screen.getByTestId('job-1')).getByRole('button', { name: 'Cancel' }));
    expect((await within(screen.getByTestId('job-1')).findByRole('alert')).textContent).toBe('Cancelled.');
  });

  it('uploads a .torrent file as the body', async () => {
    session.save(TOKENS);
    const seen: { type?: string; size?: number } = {};
    mockFetch({
      'GET /api/v1/console/jobs': json(200, []),
      'POST /api/v1/console/jobs/torrent': (call: Call) => {
        seen.type = call.headers['content-type'];
        return json(202, { id: 7 });
      },
    });
    const { user } = renderApp('/console/jobs');
    expect(await screen.findByText('No ingest jobs since the node started.')).toBeTruthy();
    const file = new File(['d4:infod6:lengthi1eee'], 'movie.torrent', { type: 'application/x-bittorrent' });
    await user.upload(screen.getByLabelText('…or a .torrent file'), file);
    await user.click(screen.getByRole('button', { name: 'Start ingest' }));
    await screen.findByText('No ingest jobs since the node started.');
    expect(seen.type).toBe('application/x-bittorrent');
  });

  it('shows the error of a refused start on the form', async () => {
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/console/jobs': json(200, []),
      'POST /api/v1/console/jobs': json(400, { error: 'invalid_source', message: '/nope: no such file' }),
    });
    const { user } = renderApp('/console/jobs');
    await user.type(await screen.findByLabelText('Magnet link or file path on the node'), '/nope');
    await user.click(screen.getByRole('button', { name: 'Start ingest' }));
    expect((await screen.findByRole('alert')).textContent).toContain('/nope: no such file');
  });

  it('refuses viewers (403) without the form', async () => {
    session.save(TOKENS);
    mockFetch({ 'GET /api/v1/console/jobs': json(403, { error: 'not_operator', message: 'no' }) });
    renderApp('/console/jobs');
    expect(await screen.findByTestId('not-operator')).toBeTruthy();
    expect(screen.queryByRole('form', { name: 'Start an ingest' })).toBeNull();
  });

  it('weighs download and transcode for torrents', () => {
    expect(jobFraction(job(1, { total_bytes: 100, downloaded_fraction: 1, position_fraction: 0 }) as never)).toBe(0.5);
    expect(jobFraction(job(1, { state: 'done' }) as never)).toBe(1);
  });
});
