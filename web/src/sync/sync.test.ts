import { describe, expect, it } from 'vitest';
import { ClockSync, sample } from './clock';
import { correct, expectedPosition, stateAt, type PlayState } from './drift';

describe('clock sync', () => {
  it('computes offset and RTT from four timestamps', () => {
    // Server is 500 ms ahead; 20 ms each way; 2 ms processing.
    const s = sample(1000, 1520, 1522, 1042);
    expect(s.offset).toBe(500);
    expect(s.rtt).toBe(40);
  });

  it('trusts the lowest-RTT sample of the last 8', () => {
    const c = new ClockSync(8);
    expect(c.offset()).toBe(0);
    // A fast, accurate sample, then slow asymmetric ones.
    c.add(0, 505, 505, 10); // offset 500, rtt 10
    for (let i = 0; i < 5; i++) c.add(100, 900, 900, 400); // offset 650, rtt 300
    expect(c.offset()).toBe(500);
    expect(c.rtt()).toBe(10);
    expect(c.serverNow(1000)).toBe(1500);
    // Once it falls out of the window, the best remaining sample wins.
    for (let i = 0; i < 3; i++) c.add(100, 700, 700, 300); // offset 500, rtt 200
    expect(c.count).toBe(8);
    expect(c.rtt()).toBe(200);
    expect(c.offset()).toBe(500);
  });

  it('ignores garbage samples', () => {
    const c = new ClockSync();
    c.add(Number.NaN, 1, 2, 3);
    expect(c.count).toBe(0);
  });
});

describe('expected position', () => {
  const playing: PlayState = { playing: true, position: 10, at: 1000, rate: 1 };
  it('advances with server time while playing', () => {
    expect(expectedPosition(playing, 3000)).toBe(12);
    expect(expectedPosition({ ...playing, rate: 1.5 }, 3000)).toBe(13);
  });
  it('holds before the scheduled time and while paused', () => {
    expect(expectedPosition(playing, 500)).toBe(10);
    expect(expectedPosition({ ...playing, playing: false }, 99999)).toBe(10);
  });
  it('switches to a scheduled state when its time comes', () => {
    const next: PlayState = { playing: false, position: 15, at: 6000, rate: 1 };
    expect(stateAt(playing, next, 5999)).toEqual({ current: playing, next });
    expect(stateAt(playing, next, 6000)).toEqual({ current: next, next: null });
  });
});

describe('drift correction', () => {
  it('does nothing under 40 ms', () => {
    expect(correct(0.039, 5)).toEqual({ kind: 'none', rate: 1 });
    expect(correct(-0.02, 5).kind).toBe('none');
  });
  it('nudges the rate between 40 and 400 ms: slower when ahead, faster when behind', () => {
    expect(correct(0.05, 5)).toEqual({ kind: 'rate', rate: 0.95 });
    expect(correct(-0.05, 5)).toEqual({ kind: 'rate', rate: 1.05 });
    expect(correct(-0.3, 5)).toEqual({ kind: 'rate', rate: 1.1 });
    expect(correct(0.399, 5)).toEqual({ kind: 'rate', rate: 0.9 });
  });
  it('seeks from 400 ms on', () => {
    expect(correct(0.4, 5)).toEqual({ kind: 'seek', to: 5, rate: 1 });
    expect(correct(-12, 30)).toEqual({ kind: 'seek', to: 30, rate: 1 });
    expect(correct(Number.NaN, 30).kind).toBe('seek');
  });
});
