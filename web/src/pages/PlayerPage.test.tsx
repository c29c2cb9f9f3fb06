import { act, fireEvent, screen, waitFor } from '@testing-library/react';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import * as session from '../session';
import { TOKENS, json, mockFetch, type Call } from '../test/fetch';
import { MATRIX, progress } from '../test/fixtures';
import { instances } from '../test/hls';
import { advance, installFakeMedia, setDuration } from '../test/media';
import { renderApp } from '../test/render';

vi.mock('hls.js', () => import('../test/hls'));

const LEVELS = [
  { height: 480, bitrate: 1_000_000, name: '' },
  { height: 1080, bitrate: 5_000_000, name: '' },
  { height: 720, bitrate: 2_500_000, name: '' },
];

function routes(stored: ReturnType<typeof progress> | null = null) {
  session.save(TOKENS);
  return mockFetch({
    'GET /api/v1/movies/tmdb-603': json(200, MATRIX),
    'GET /api/v1/me/progress/tmdb-603': stored ? json(200, stored) : json(404, { error: 'no_progress', message: 'none' }),
    'PUT /api/v1/me/progress/tmdb-603': (c: Call) => json(200, { ...progress('tmdb-603', 1, 2), ...(c.body as object) }),
    'GET /api/v1/movies/tmdb-603/play': json(200, {
      movie_id: 'tmdb-603',
      master_url: 'http://127.0.0.1:8083/hls/tmdb-603/master.m3u8?token=pt',
      expires_at: 1764021600,
    }),
    'GET /api/v1/me/watchlist': json(200, []),
  });
}

/** Open the player and let hls.js "parse the manifest": playback starts. */
async function openPlayer(path: string, stored: ReturnType<typeof progress> | null = null) {
  const fetchMock = routes(stored);
  const utils = renderApp(path);
  const video = await screen.findByTestId<HTMLVideoElement>('player-video');
  await waitFor(() => expect(instances).toHaveLength(1));
  const instance = instances[0]!;
  act(() => instance.emit('hlsManifestParsed', { levels: LEVELS }));
  setDuration(video, 8160);
  return { ...utils, ...fetchMock, video, instance };
}

const puts = (calls: Call[]) => calls.filter((c) => c.method === 'PUT').map((c) => c.body);

describe('player page', () => {
  beforeEach(() => {
    instances.length = 0;
    return installFakeMedia();
  });

  it('loads the stream from its own origin and resumes from the saved position (5–90%)', async () => {
    const { instance, video } = await openPlayer('/watch/tmdb-603', progress('tmdb-603', 2448, 8160));
    expect(instance.src).toBe('/hls/tmdb-603/master.m3u8?token=pt');
    expect(instance.media).toBe(video);
    expect(instance.config.startPosition).toBe(2448);
    expect(video.paused).toBe(false);
    expect(screen.getByTestId('player').getAttribute('data-state')).toBe('playing');
  });

  it('starts from the beginning past 90%, and where the link says with ?t=', async () => {
    const first = await openPlayer('/watch/tmdb-603', progress('tmdb-603', 7900, 8160, { finished: false }));
    expect(first.instance.config.startPosition).toBe(0);
    first.unmount();
    instances.length = 0;

    const second = await openPlayer('/watch/tmdb-603?t=0', progress('tmdb-603', 2448, 8160));
    expect(second.instance.config.startPosition).toBe(0);
    expect(second.calls.some((c) => c.method === 'GET' && c.path.startsWith('/api/v1/me/progress'))).toBe(false);
  });

  it('offers Auto and every level in the quality menu', async () => {
    const { instance, user } = await openPlayer('/watch/tmdb-603');
    const select = screen.getByLabelText<HTMLSelectElement>('Quality');
    expect([...select.options].map((o) => o.textContent)).toEqual(['Auto', '1080p', '720p', '480p']);

    act(() => instance.emit('hlsLevelSwitched', { level: 1 }));
    expect(select.options[0]!.textContent).toBe('Auto (1080p)');

    await user.selectOptions(select, '720p');
    expect(instance.currentLevel).toBe(2);
    await user.selectOptions(select, '-1');
    expect(instance.currentLevel).toBe(-1);
  });

  it('saves progress on pause and seek, not before playback started', async () => {
    const { calls, video, user } = await openPlayer('/watch/tmdb-603?t=100');
    expect(puts(calls)).toEqual([]);

    advance(video, 130.5);
    await user.keyboard(' '); // pause
    expect(video.paused).toBe(true);
    await waitFor(() => expect(puts(calls)).toHaveLength(1));
    expect(puts(calls)[0]).toMatchObject({ position_s: 130.5, duration_s: 8160 });

    await user.keyboard('{ArrowRight}'); // seek +10 s
    expect(video.currentTime).toBe(140.5);
    await waitFor(() => expect(puts(calls)).toHaveLength(2));
    expect(puts(calls)[1]).toMatchObject({ position_s: 140.5 });

    await user.keyboard('{ArrowLeft}{ArrowLeft}');
    expect(video.currentTime).toBe(120.5);
  });

  it('saves with a keepalive request when the page is hidden or closed', async () => {
    const { calls, fn, video } = await openPlayer('/watch/tmdb-603?t=100');
    advance(video, 200);
    window.dispatchEvent(new Event('pagehide'));
    await waitFor(() => expect(puts(calls)).toHaveLength(1));
    expect(puts(calls)[0]).toMatchObject({ position_s: 200, duration_s: 8160 });
    const init = fn.mock.calls.find(([, i]) => i?.method === 'PUT')![1]!;
    expect(init.keepalive).toBe(true);
    expect(new Headers(init.headers).get('authorization')).toBe('Bearer access-1');
  });

  it('saves when leaving the player', async () => {
    const { calls, video, user } = await openPlayer('/watch/tmdb-603?t=100');
    advance(video, 321);
    await user.click(screen.getByRole('link', { name: /Back to The Matrix/ }));
    await waitFor(() => expect(puts(calls)).toHaveLength(1));
    expect(puts(calls)[0]).toMatchObject({ position_s: 321 });
  });

  it('has keyboard shortcuts for play, volume, mute and fullscreen', async () => {
    const { video, user } = await openPlayer('/watch/tmdb-603');
    const requestFullscreen = vi.fn(() => Promise.resolve());
    screen.getByTestId('player').requestFullscreen = requestFullscreen;

    await user.keyboard(' ');
    expect(video.paused).toBe(true);
    await user.keyboard(' ');
    expect(video.paused).toBe(false);
    await user.keyboard('{ArrowDown}{ArrowDown}');
    expect(video.volume).toBe(0.8);
    await user.keyboard('{ArrowUp}');
    expect(video.volume).toBe(0.9);
    await user.keyboard('m');
    expect(video.muted).toBe(true);
    expect(screen.getByRole('button', { name: 'Unmute' })).toBeTruthy();
    await user.keyboard('f');
    expect(requestFullscreen).toHaveBeenCalledTimes(1);
  });

  it('keeps Space for a focused button', async () => {
    const { video, user } = await openPlayer('/watch/tmdb-603');
    screen.getByTestId('mute').focus();
    await user.keyboard(' ');
    expect(video.muted).toBe(true); // the button's own action, not play/pause
    expect(video.paused).toBe(false);
  });

  it('shows a fatal hls.js error and retries from where it stopped', async () => {
    const { instance, video, user, calls } = await openPlayer('/watch/tmdb-603?t=100');
    advance(video, 150);
    act(() => instance.emit('hlsError', { fatal: false, type: 'networkError', details: 'fragLoadError' }));
    expect(screen.queryByTestId('player-error')).toBeNull();

    act(() => instance.emit('hlsError', { fatal: true, type: 'networkError', details: 'manifestLoadError' }));
    const error = await screen.findByTestId('player-error');
    expect(screen.getByRole('alert').textContent).toMatch(/stopped loading \(manifestLoadError\)/);
    expect(screen.getByTestId('player').getAttribute('data-fatal-errors')).toBe('1');
    expect(instance.destroyed).toBe(true);
    expect(error).toBeTruthy();

    await user.click(screen.getByTestId('player-retry'));
    await waitFor(() => expect(instances).toHaveLength(2));
    expect(instances[1]!.config.startPosition).toBe(150);
    expect(calls.filter((c) => c.path === '/api/v1/movies/tmdb-603/play')).toHaveLength(2);
    act(() => instances[1]!.emit('hlsManifestParsed', { levels: LEVELS }));
    await waitFor(() => expect(screen.queryByTestId('player-error')).toBeNull());
  });

  it('explains a refused play call (email not verified)', async () => {
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/movies/tmdb-603': json(200, MATRIX),
      'GET /api/v1/me/progress/tmdb-603': json(404, { error: 'no_progress', message: 'none' }),
      'GET /api/v1/movies/tmdb-603/play': json(403, { error: 'email_not_verified', message: 'Verify your email address first.' }),
    });
    renderApp('/watch/tmdb-603');
    expect((await screen.findByRole('alert')).textContent).toBe('Verify your email address first.');
    expect(screen.getByRole('link', { name: 'Verify your email' }).getAttribute('href')).toBe('/account');
    expect(instances).toHaveLength(0);
  });

  it('seeks with the slider', async () => {
    const { video } = await openPlayer('/watch/tmdb-603');
    fireEvent.change(screen.getByRole('slider', { name: 'Seek' }), { target: { value: '600' } });
    expect(video.currentTime).toBe(600);
  });
});
