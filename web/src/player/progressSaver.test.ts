import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { advance, installFakeMedia, setDuration } from '../test/media';
import { ProgressSaver, SAVE_INTERVAL_MS } from './progressSaver';

describe('progress saver', () => {
  let video: HTMLVideoElement;
  let saver: ProgressSaver;
  const save = vi.fn((_p: number, _d: number, _k: boolean) => Promise.resolve());

  beforeEach(() => {
    vi.useFakeTimers();
    save.mockClear();
    video = document.createElement('video');
    return installFakeMedia();
  });
  afterEach(() => {
    saver?.stop();
    vi.useRealTimers();
  });

  it(`saves every ${SAVE_INTERVAL_MS / 1000} s while playing, and not while paused or unchanged`, async () => {
    saver = new ProgressSaver(video, { save, knownDuration: 600 }).start();
    await video.play();

    advance(video, 12);
    vi.advanceTimersByTime(SAVE_INTERVAL_MS);
    expect(save).toHaveBeenLastCalledWith(12, 600, false);
    advance(video, 17);
    vi.advanceTimersByTime(SAVE_INTERVAL_MS);
    expect(save).toHaveBeenLastCalledWith(17, 600, false);
    expect(save).toHaveBeenCalledTimes(2);

    vi.advanceTimersByTime(SAVE_INTERVAL_MS); // not moved (stalled): nothing new to say
    expect(save).toHaveBeenCalledTimes(2);

    advance(video, 20);
    video.pause(); // saves on pause
    expect(save).toHaveBeenCalledTimes(3);
    advance(video, 25); // (not playing)
    vi.advanceTimersByTime(SAVE_INTERVAL_MS * 3);
    expect(save).toHaveBeenCalledTimes(3);
  });

  it('never saves before playback started (a load at 0 keeps the resume point)', () => {
    saver = new ProgressSaver(video, { save, knownDuration: 600 }).start();
    video.currentTime = 0; // the initial seek
    window.dispatchEvent(new Event('pagehide'));
    vi.advanceTimersByTime(SAVE_INTERVAL_MS * 2);
    expect(save).not.toHaveBeenCalled();
  });

  it('saves with keepalive when the tab is hidden, and on stop', async () => {
    saver = new ProgressSaver(video, { save, knownDuration: 600 }).start();
    await video.play();
    advance(video, 42);
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    document.dispatchEvent(new Event('visibilitychange'));
    delete (document as unknown as Record<string, unknown>).visibilityState;
    expect(save).toHaveBeenLastCalledWith(42, 600, true);

    advance(video, 43);
    saver.stop();
    expect(save).toHaveBeenLastCalledWith(43, 600, true);
    vi.advanceTimersByTime(SAVE_INTERVAL_MS * 2);
    expect(save).toHaveBeenCalledTimes(2);
  });

  it('reports the longer of the known and the media duration, and the media one alone when unknown', async () => {
    saver = new ProgressSaver(video, { save, knownDuration: null }).start();
    await video.play();
    advance(video, 5);
    video.pause();
    expect(save).not.toHaveBeenCalled(); // no duration known yet: nothing valid to send
    setDuration(video, 120);
    await video.play();
    advance(video, 6);
    video.pause();
    expect(save).toHaveBeenLastCalledWith(6, 120, false);

    const other = new ProgressSaver(video, { save, knownDuration: 100 });
    expect(other.duration()).toBe(120);
  });

  it('forgets a failed write so the next save retries the same position', async () => {
    save.mockRejectedValueOnce(new Error('offline'));
    saver = new ProgressSaver(video, { save, knownDuration: 600 }).start();
    await video.play();
    advance(video, 30);
    video.pause();
    await Promise.resolve();
    await Promise.resolve();
    video.dispatchEvent(new Event('seeked'));
    expect(save).toHaveBeenCalledTimes(2);
  });
});
