// useHlsPlayer on its own: a <video> with the hook, fetch mocked at the boundary and
// hls.js replaced by the fake in src/test/hls.ts.
import { act, render, waitFor } from '@testing-library/react';
import { useRef } from 'react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import * as session from '../session';
import { TOKENS, json, mockFetch } from '../test/fetch';
import FakeHls, { instances } from '../test/hls';
import { installFakeMedia } from '../test/media';
import { levelLabel, qualityLevels, useHlsPlayer, type HlsPlayer, type HlsPlayerOptions } from './useHlsPlayer';

vi.mock('hls.js', () => import('../test/hls'));

const PLAY = (id: string) => ({
  movie_id: id,
  master_url: `http://127.0.0.1:8083/hls/${id}/master.m3u8?token=pt`,
  expires_at: 1764021600,
});

const LEVELS = [
  { height: 480, bitrate: 1_000_000, name: '' },
  { height: 1080, bitrate: 5_000_000, name: '' },
  { height: 720, bitrate: 2_500_000, name: '' },
];

function routes(extra: Parameters<typeof mockFetch>[0] = {}) {
  session.save(TOKENS);
  return mockFetch({
    'GET /api/v1/movies/tmdb-603/play': json(200, PLAY('tmdb-603')),
    'GET /api/v1/movies/tmdb-604/play': json(200, PLAY('tmdb-604')),
    ...extra,
  });
}

/** Render a <video> played by the hook; `player()` is what the hook returned last. */
function mount(movieId: string, options: HlsPlayerOptions = {}) {
  let last: HlsPlayer | null = null;
  function Harness({ id, opts }: { id: string; opts: HlsPlayerOptions }) {
    const ref = useRef<HTMLVideoElement>(null);
    last = useHlsPlayer(ref, id, opts);
    return <video ref={ref} data-testid="video" />;
  }
  const utils = render(<Harness id={movieId} opts={options} />);
  const video = utils.getByTestId('video') as HTMLVideoElement;
  return {
    ...utils,
    video,
    player: () => last!,
    rerenderWith: (id: string, opts: HlsPlayerOptions = options) => utils.rerender(<Harness id={id} opts={opts} />),
  };
}

describe('quality levels', () => {
  it('are labelled by height, else name, else bitrate', () => {
    expect(levelLabel({ height: 720, bitrate: 2_500_000, name: 'hd' })).toBe('720p');
    expect(levelLabel({ height: 0, bitrate: 2_500_000, name: 'hd' })).toBe('hd');
    expect(levelLabel({ height: 0, bitrate: 2_499_600, name: '' })).toBe('2500 kb/s');
  });

  it('are listed best first, keeping hls.js indices', () => {
    const levels = [...LEVELS, { height: 720, bitrate: 4_000_000, name: '' }];
    expect(qualityLevels(levels)).toEqual([
      { index: 1, label: '1080p' },
      { index: 3, label: '720p' },
      { index: 2, label: '720p' },
      { index: 0, label: '480p' },
    ]);
  });
});

describe('useHlsPlayer', () => {
  beforeEach(() => {
    instances.length = 0;
    FakeHls.supported = true;
    return installFakeMedia();
  });
  afterEach(() => {
    FakeHls.supported = true;
  });

  it('asks for a playback URL and attaches hls.js to the video from the start position', async () => {
    const { calls } = routes();
    const onLoad = vi.fn();
    const onReady = vi.fn();
    const { video, player } = mount('tmdb-603', { startPosition: () => 42, onLoad, onReady });
    expect(onLoad).toHaveBeenCalledTimes(1);
    await waitFor(() => expect(instances).toHaveLength(1));
    const hls = instances[0]!;
    expect(calls.map((c) => c.path)).toEqual(['/api/v1/movies/tmdb-603/play']);
    expect(hls.src).toBe('/hls/tmdb-603/master.m3u8?token=pt');
    expect(hls.media).toBe(video);
    expect(hls.config.startPosition).toBe(42);
    expect(player().levels).toEqual([]);
    expect(onReady).not.toHaveBeenCalled();

    act(() => hls.emit('hlsManifestParsed', { levels: LEVELS }));
    expect(onReady).toHaveBeenCalledTimes(1);
    expect(player().levels.map((l) => l.label)).toEqual(['1080p', '720p', '480p']);
  });

  it('applies the preferences to the first audio and subtitle tracks, and c toggles captions', async () => {
    routes();
    const prefs = {
      audio_language: 'de',
      subtitle_language: 'fr',
      subtitles: 'on' as const,
      subtitle_size: 'm' as const,
      subtitle_background: true,
    };
    const { player } = mount('tmdb-603', { preferences: () => prefs });
    await waitFor(() => expect(instances).toHaveLength(1));
    const hls = instances[0]!;
    const track = (id: number, name: string, lang: string, extra = {}) => ({ id, name, lang, default: false, forced: false, ...extra });
    act(() =>
      hls.emit('hlsAudioTracksUpdated', {
        audioTracks: [track(0, 'English', 'en', { default: true, channels: '2' }), track(1, 'Deutsch', 'de', { channels: '6' })],
      }),
    );
    expect(hls.audioTrack).toBe(1);
    expect(player().audioTracks.map((t) => t.lang)).toEqual(['en', 'de']);
    expect(player().audioTrack).toBe(1);
    // hls.js picks the DEFAULT English track itself just after the event; the preference wins.
    hls.autoSubtitle = true;
    await act(async () => {
      hls.emit('hlsSubtitleTracksUpdated', {
        subtitleTracks: [track(0, 'English', 'en', { default: true }), track(1, 'Français', 'fr')],
      });
      await Promise.resolve();
    });
    expect(hls.subtitleTrack).toBe(1);
    expect(player().subtitleTrack).toBe(1);

    // A later update (another level's audio group) does not undo a viewer's choice.
    act(() => player().chooseAudio(0));
    expect(hls.audioTrack).toBe(0);
    act(() => hls.emit('hlsAudioTracksUpdated', { audioTracks: hls.audioTracks }));
    expect(hls.audioTrack).toBe(0);

    // c: off, then back on in French (not the DEFAULT English).
    act(() => player().toggleCaptions());
    expect(hls.subtitleTrack).toBe(-1);
    expect(player().subtitleTrack).toBe(-1);
    act(() => player().toggleCaptions());
    expect(hls.subtitleTrack).toBe(1);
    act(() => player().chooseSubtitle(0));
    act(() => player().toggleCaptions());
    act(() => player().toggleCaptions());
    expect(hls.subtitleTrack).toBe(0);
  });

  it('without preferences keeps the DEFAULT audio and shows no subtitles', async () => {
    routes();
    mount('tmdb-603');
    await waitFor(() => expect(instances).toHaveLength(1));
    const hls = instances[0]!;
    const t = (id: number, lang: string, d: boolean) => ({ id, name: lang, lang, default: d, forced: false });
    act(() => hls.emit('hlsAudioTracksUpdated', { audioTracks: [t(0, 'fr', false), t(1, 'en', true)] }));
    expect(hls.audioTrack).toBe(1);
    hls.autoSubtitle = true; // hls.js selects the DEFAULT subtitle track
    await act(async () => {
      hls.emit('hlsSubtitleTracksUpdated', { subtitleTracks: [t(0, 'en', true)] });
      await Promise.resolve();
    });
    expect(hls.subtitleTrack).toBe(-1);
  });

  it('hands the thumbnail index URL of the play answer on', async () => {
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/movies/tmdb-603/play': json(200, {
        ...PLAY('tmdb-603'),
        thumbnails_url: 'http://127.0.0.1:8083/hls/tmdb-603/thumbnails.vtt?token=pt',
      }),
    });
    const onThumbnails = vi.fn();
    mount('tmdb-603', { onThumbnails });
    await waitFor(() => expect(onThumbnails).toHaveBeenCalledWith('/hls/tmdb-603/thumbnails.vtt?token=pt'));
  });

  it('starts at 0 without a start position', async () => {
    routes();
    mount('tmdb-603');
    await waitFor(() => expect(instances).toHaveLength(1));
    expect(instances[0]!.config.startPosition).toBe(0);
  });

  it('follows the playing level and sets the chosen one on hls.js', async () => {
    routes();
    const { player } = mount('tmdb-603');
    await waitFor(() => expect(instances).toHaveLength(1));
    const hls = instances[0]!;
    act(() => hls.emit('hlsManifestParsed', { levels: LEVELS }));
    expect(player().playingLevel).toBe(-1);
    act(() => hls.emit('hlsLevelSwitched', { level: 2 }));
    expect(player().playingLevel).toBe(2);

    act(() => player().chooseLevel(1));
    expect(player().chosenLevel).toBe(1);
    expect(hls.currentLevel).toBe(1);
    act(() => player().chooseLevel(-1));
    expect(player().chosenLevel).toBe(-1);
    expect(hls.currentLevel).toBe(-1);
  });

  it('reports fatal errors only, and keeps hls.js unless told to destroy it', async () => {
    routes();
    const onFatal = vi.fn();
    mount('tmdb-603', { onFatal });
    await waitFor(() => expect(instances).toHaveLength(1));
    const hls = instances[0]!;
    act(() => hls.emit('hlsError', { fatal: false, type: 'networkError', details: 'fragLoadError' }));
    expect(onFatal).not.toHaveBeenCalled();
    act(() => hls.emit('hlsError', { fatal: true, type: 'mediaError', details: 'bufferStalledError' }));
    expect(onFatal).toHaveBeenCalledTimes(1);
    expect(onFatal.mock.calls[0]![0]).toMatchObject({ fatal: true, details: 'bufferStalledError' });
    expect(hls.destroyed).toBe(false);
  });

  it('destroys hls.js after a fatal error when asked, and reload() starts again from a fresh start position', async () => {
    const { calls } = routes();
    let start = 10;
    const onLoad = vi.fn();
    const onFatal = vi.fn(() => {
      // The page saves what it needs before the instance goes.
      expect(instances[0]!.destroyed).toBe(false);
      start = 150;
    });
    const { player } = mount('tmdb-603', { startPosition: () => start, onLoad, onFatal, destroyOnFatal: true });
    await waitFor(() => expect(instances).toHaveLength(1));
    const first = instances[0]!;
    act(() => first.emit('hlsError', { fatal: true, type: 'networkError', details: 'manifestLoadError' }));
    expect(onFatal).toHaveBeenCalledTimes(1);
    expect(first.destroyed).toBe(true);
    act(() => player().chooseLevel(2));
    expect(first.currentLevel).toBe(-1); // no hls.js attached any more

    act(() => player().reload());
    expect(onLoad).toHaveBeenCalledTimes(2);
    await waitFor(() => expect(instances).toHaveLength(2));
    expect(instances[1]!.config.startPosition).toBe(150);
    expect(calls.filter((c) => c.path === '/api/v1/movies/tmdb-603/play')).toHaveLength(2);
  });

  it('destroys hls.js when the movie changes and when unmounted', async () => {
    routes();
    const { rerenderWith, unmount } = mount('tmdb-603');
    await waitFor(() => expect(instances).toHaveLength(1));
    rerenderWith('tmdb-604');
    expect(instances[0]!.destroyed).toBe(true);
    await waitFor(() => expect(instances).toHaveLength(2));
    expect(instances[1]!.src).toBe('/hls/tmdb-604/master.m3u8?token=pt');
    unmount();
    expect(instances[1]!.destroyed).toBe(true);
  });

  it('reads the latest callbacks without reloading the stream', async () => {
    routes();
    const first = vi.fn();
    const second = vi.fn();
    const { rerenderWith } = mount('tmdb-603', { onReady: first });
    await waitFor(() => expect(instances).toHaveLength(1));
    rerenderWith('tmdb-603', { onReady: second });
    act(() => instances[0]!.emit('hlsManifestParsed', { levels: LEVELS }));
    expect(first).not.toHaveBeenCalled();
    expect(second).toHaveBeenCalledTimes(1);
    expect(instances).toHaveLength(1);
  });

  it('reports a refused play call', async () => {
    routes({
      'GET /api/v1/movies/tmdb-603/play': json(403, { error: 'email_not_verified', message: 'Verify your email address first.' }),
    });
    const onError = vi.fn();
    mount('tmdb-603', { onError });
    await waitFor(() => expect(onError).toHaveBeenCalledTimes(1));
    expect(onError.mock.calls[0]![0]).toMatchObject({ code: 'email_not_verified' });
    expect(instances).toHaveLength(0);
  });

  it('forgets a stream left before it loaded', async () => {
    let answer!: (r: Response) => void;
    const { fn } = routes({
      'GET /api/v1/movies/tmdb-603/play': () => new Promise<Response>((resolve) => (answer = resolve)),
    });
    const onError = vi.fn();
    const { unmount } = mount('tmdb-603', { onError });
    await waitFor(() => expect(fn).toHaveBeenCalledTimes(1));
    expect(fn.mock.calls[0]![1]!.signal!.aborted).toBe(false);
    unmount();
    expect(fn.mock.calls[0]![1]!.signal!.aborted).toBe(true);
    answer(json(200, PLAY('tmdb-603')));
    await new Promise((r) => setTimeout(r, 20));
    expect(instances).toHaveLength(0);
    expect(onError).not.toHaveBeenCalled();
  });

  describe('without hls.js (native HLS)', () => {
    beforeEach(() => {
      FakeHls.supported = false;
    });

    it('gives the URL to the video, seeks to the start once the metadata is in, then is ready', async () => {
      routes();
      vi.spyOn(HTMLMediaElement.prototype, 'canPlayType').mockReturnValue('maybe');
      const onReady = vi.fn();
      const { video } = mount('tmdb-603', { startPosition: () => 42, onReady });
      await waitFor(() => expect(video.getAttribute('src')).toBe('/hls/tmdb-603/master.m3u8?token=pt'));
      expect(instances).toHaveLength(0);
      expect(onReady).not.toHaveBeenCalled();
      act(() => {
        video.dispatchEvent(new Event('loadedmetadata'));
      });
      expect(video.currentTime).toBe(42);
      expect(onReady).toHaveBeenCalledTimes(1);
    });

    it('reports a media error of the video', async () => {
      routes();
      vi.spyOn(HTMLMediaElement.prototype, 'canPlayType').mockReturnValue('maybe');
      const onMediaError = vi.fn();
      const { video } = mount('tmdb-603', { onMediaError });
      await waitFor(() => expect(video.getAttribute('src')).not.toBeNull());
      Object.defineProperty(video, 'error', { configurable: true, value: { code: 4 } });
      act(() => {
        video.dispatchEvent(new Event('error'));
      });
      expect(onMediaError).toHaveBeenCalledWith({ code: 4 });
    });

    it('says so when the browser cannot play HLS at all', async () => {
      routes();
      vi.spyOn(HTMLMediaElement.prototype, 'canPlayType').mockReturnValue('');
      const onUnsupported = vi.fn();
      const { video } = mount('tmdb-603', { onUnsupported });
      await waitFor(() => expect(onUnsupported).toHaveBeenCalledTimes(1));
      expect(video.getAttribute('src')).toBeNull();
    });

    it('lets the browser try when no onUnsupported is given', async () => {
      routes();
      vi.spyOn(HTMLMediaElement.prototype, 'canPlayType').mockReturnValue('');
      const { video } = mount('tmdb-603');
      await waitFor(() => expect(video.getAttribute('src')).toBe('/hls/tmdb-603/master.m3u8?token=pt'));
    });
  });
});
