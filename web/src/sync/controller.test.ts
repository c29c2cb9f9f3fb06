import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SyncController } from './controller';

/** The parts of a <video> the controller uses. */
class FakeVideo {
  currentTime = 0;
  paused = true;
  playbackRate = 1;
  readyState = 4;
  seeking = false;
  ended = false;
  play() {
    this.paused = false;
    return Promise.resolve();
  }
  pause() {
    this.paused = true;
  }
}

describe('SyncController', () => {
  let now = 1_000_000;
  const sent: string[] = [];
  const link = { serverNow: () => now, send: (f: { type: string }) => sent.push(f.type) };
  let video: FakeVideo;
  let c: SyncController;

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'performance'] });
    sent.length = 0;
    video = new FakeVideo();
    c = new SyncController(video as unknown as HTMLVideoElement, link, () => {}, 100);
  });
  afterEach(() => {
    c.stop();
    vi.useRealTimers();
  });

  it('starts playing at the scheduled time, not before', () => {
    c.apply({ playing: false, position: 0, at: now - 1000, rate: 1 }, 1);
    c.apply({ playing: true, position: 10, at: now + 500, rate: 1 }, 2);
    c.tick();
    expect(video.paused).toBe(true);
    now += 600;
    c.tick();
    expect(video.paused).toBe(false);
    // It was at 0, far behind the expected 10.6 s: it seeks there.
    expect(video.currentTime).toBeGreaterThan(10);
  });

  it('nudges the rate for small drift and seeks for large drift', () => {
    c.apply({ playing: true, position: 20, at: now, rate: 1 }, 1);
    video.paused = false;
    video.currentTime = 20 - 0.1; // 100 ms behind
    c.tick();
    expect(video.playbackRate).toBe(1.05);
    video.currentTime = 20 + 0.02; // within the dead band
    c.tick();
    expect(video.playbackRate).toBe(1); // back in the dead band: the normal rate again
    video.currentTime = 25; // 5 s ahead
    c.tick();
    expect(video.currentTime).toBeCloseTo(20.15, 5);
    expect(video.playbackRate).toBe(1);
  });

  it('reports buffering after a stall and ready when data is back', () => {
    c.apply({ playing: true, position: 0, at: now, rate: 1 }, 1);
    video.paused = false;
    video.readyState = 2;
    c.tick();
    expect(sent).toEqual([]);
    vi.advanceTimersByTime(400);
    c.tick();
    expect(sent).toEqual(['buffering']);
    video.readyState = 4;
    c.tick();
    expect(sent).toEqual(['buffering', 'ready']);
  });

  it('ignores states older than the newest', () => {
    c.apply({ playing: false, position: 50, at: now - 10, rate: 1 }, 5);
    c.apply({ playing: true, position: 0, at: now - 10, rate: 1 }, 4);
    c.tick();
    expect(video.paused).toBe(true);
    expect(video.currentTime).toBe(50);
  });
});
