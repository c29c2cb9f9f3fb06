import { describe, expect, it } from 'vitest';
import { formatRuntime, formatTime, resumePosition, watchedFraction } from './playback';

describe('resume rule (Jellyfin-like: only between 5% and 90%)', () => {
  const at = (position_s: number, duration_s = 1000, finished = false) => ({ position_s, duration_s, finished });

  it('resumes inside the window', () => {
    expect(resumePosition(at(50))).toBe(50); // exactly 5%
    expect(resumePosition(at(400))).toBe(400);
    expect(resumePosition(at(900))).toBe(900); // exactly 90%
  });

  it('starts over before 5% and after 90%', () => {
    expect(resumePosition(at(49.9))).toBeNull();
    expect(resumePosition(at(0))).toBeNull();
    expect(resumePosition(at(900.1))).toBeNull();
    expect(resumePosition(at(1000))).toBeNull();
  });

  it('starts over when finished, without progress, or with a broken duration', () => {
    expect(resumePosition(at(500, 1000, true))).toBeNull();
    expect(resumePosition(null)).toBeNull();
    expect(resumePosition(at(10, 0))).toBeNull();
    expect(resumePosition(at(Number.NaN))).toBeNull();
  });

  it('measures the watched share for progress bars', () => {
    expect(watchedFraction({ position_s: 30, duration_s: 120 })).toBe(0.25);
    expect(watchedFraction({ position_s: 130, duration_s: 120 })).toBe(1);
    expect(watchedFraction({ position_s: 5, duration_s: 0 })).toBe(0);
  });
});

describe('formatting', () => {
  it('writes times as m:ss or h:mm:ss', () => {
    expect(formatTime(0)).toBe('0:00');
    expect(formatTime(75.9)).toBe('1:15');
    expect(formatTime(600)).toBe('10:00');
    expect(formatTime(3725)).toBe('1:02:05');
    expect(formatTime(Number.NaN)).toBe('0:00');
  });

  it('writes runtimes in hours and minutes', () => {
    expect(formatRuntime(136)).toBe('2h 16m');
    expect(formatRuntime(45)).toBe('45m');
    expect(formatRuntime(120)).toBe('2h');
    expect(formatRuntime(null)).toBeNull();
  });
});
