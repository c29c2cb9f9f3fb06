import { describe, expect, it, vi } from 'vitest';
import { handlePlayerKey, type PlayerActions } from './keys';

function actions() {
  return {
    togglePlay: vi.fn<() => void>(),
    seekBy: vi.fn<(s: number) => void>(),
    changeVolume: vi.fn<(d: number) => void>(),
    toggleMute: vi.fn<() => void>(),
    toggleFullscreen: vi.fn<() => void>(),
    toggleCaptions: vi.fn<() => void>(),
  } satisfies PlayerActions;
}

function key(k: string, target: EventTarget = document.body, init: KeyboardEventInit = {}) {
  const e = new KeyboardEvent('keydown', { key: k, bubbles: true, ...init });
  Object.defineProperty(e, 'target', { value: target });
  return e;
}

describe('player keys', () => {
  it('maps the shortcuts', () => {
    const a = actions();
    expect(handlePlayerKey(key(' '), a)).toBe(true);
    expect(handlePlayerKey(key('ArrowLeft'), a)).toBe(true);
    expect(handlePlayerKey(key('ArrowRight'), a)).toBe(true);
    expect(handlePlayerKey(key('ArrowUp'), a)).toBe(true);
    expect(handlePlayerKey(key('ArrowDown'), a)).toBe(true);
    expect(handlePlayerKey(key('F'), a)).toBe(true);
    expect(handlePlayerKey(key('m'), a)).toBe(true);
    expect(a.togglePlay).toHaveBeenCalledTimes(1);
    expect(a.seekBy.mock.calls).toEqual([[-10], [10]]);
    expect(a.changeVolume.mock.calls).toEqual([[0.1], [-0.1]]);
    expect(a.toggleFullscreen).toHaveBeenCalledTimes(1);
    expect(a.toggleMute).toHaveBeenCalledTimes(1);
  });

  it('leaves typing, modified keys and other keys alone', () => {
    const a = actions();
    const input = document.createElement('input');
    const select = document.createElement('select');
    const range = document.createElement('input');
    range.type = 'range';
    expect(handlePlayerKey(key('m', input), a)).toBe(false);
    expect(handlePlayerKey(key(' ', select), a)).toBe(false);
    expect(handlePlayerKey(key('ArrowLeft', range), a)).toBe(false);
    expect(handlePlayerKey(key('f', document.body, { ctrlKey: true }), a)).toBe(false);
    expect(handlePlayerKey(key('x'), a)).toBe(false);
    expect(handlePlayerKey(key(' ', document.createElement('button')), a)).toBe(false);
    expect(Object.values(a).every((f) => f.mock.calls.length === 0)).toBe(true);
    // Space on a focused slider still plays/pauses.
    expect(handlePlayerKey(key(' ', range), a)).toBe(true);
  });

  it('c toggles captions, only where the player offers it', () => {
    const a = actions();
    expect(handlePlayerKey(key('c'), a)).toBe(true);
    expect(handlePlayerKey(key('C'), a)).toBe(true);
    expect(a.toggleCaptions).toHaveBeenCalledTimes(2);
    // Typed into a text field, or with a modifier (Ctrl+C copies): not a shortcut.
    expect(handlePlayerKey(key('c', document.createElement('input')), a)).toBe(false);
    expect(handlePlayerKey(key('c', document.body, { ctrlKey: true }), a)).toBe(false);
    expect(a.toggleCaptions).toHaveBeenCalledTimes(2);
    const { toggleCaptions: _, ...without } = a;
    expect(handlePlayerKey(key('c'), without)).toBe(false);
  });
});
