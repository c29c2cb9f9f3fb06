/**
 * jsdom has no media pipeline: `play()` is "not implemented" and `paused`,
 * `currentTime`, `duration`, `volume`, `muted` never change. This replaces them
 * on `HTMLMediaElement.prototype` with plain state that fires the same events a
 * browser would (`play`/`playing`, `pause`, `seeked`, `volumechange`), so the
 * player's own logic runs for real.
 */
interface MediaState {
  paused: boolean;
  currentTime: number;
  duration: number;
  volume: number;
  muted: boolean;
}

const states = new WeakMap<HTMLMediaElement, MediaState>();
function state(el: HTMLMediaElement): MediaState {
  let s = states.get(el);
  if (!s) {
    s = { paused: true, currentTime: 0, duration: Number.NaN, volume: 1, muted: false };
    states.set(el, s);
  }
  return s;
}

const NAMES = ['play', 'pause', 'paused', 'currentTime', 'duration', 'volume', 'muted'] as const;

/** Install the fake; returns the function that restores jsdom's own (a `beforeEach` teardown). */
export function installFakeMedia(): () => void {
  const proto = HTMLMediaElement.prototype;
  const saved = NAMES.map((n) => [n, Object.getOwnPropertyDescriptor(proto, n)] as const);
  const fire = (el: HTMLMediaElement, type: string) => el.dispatchEvent(new Event(type));

  Object.defineProperties(proto, {
    play: {
      configurable: true,
      value(this: HTMLMediaElement) {
        const s = state(this);
        if (s.paused) {
          s.paused = false;
          fire(this, 'play');
          fire(this, 'playing');
        }
        return Promise.resolve();
      },
    },
    pause: {
      configurable: true,
      value(this: HTMLMediaElement) {
        const s = state(this);
        if (!s.paused) {
          s.paused = true;
          fire(this, 'pause');
        }
      },
    },
    paused: { configurable: true, get(this: HTMLMediaElement) { return state(this).paused; } },
    duration: { configurable: true, get(this: HTMLMediaElement) { return state(this).duration; } },
    currentTime: {
      configurable: true,
      get(this: HTMLMediaElement) { return state(this).currentTime; },
      set(this: HTMLMediaElement, v: number) {
        state(this).currentTime = v;
        fire(this, 'seeking');
        fire(this, 'timeupdate');
        fire(this, 'seeked');
      },
    },
    volume: {
      configurable: true,
      get(this: HTMLMediaElement) { return state(this).volume; },
      set(this: HTMLMediaElement, v: number) {
        state(this).volume = v;
        fire(this, 'volumechange');
      },
    },
    muted: {
      configurable: true,
      get(this: HTMLMediaElement) { return state(this).muted; },
      set(this: HTMLMediaElement, v: boolean) {
        state(this).muted = v;
        fire(this, 'volumechange');
      },
    },
  });

  return () => {
    for (const [name, desc] of saved) {
      if (desc) Object.defineProperty(proto, name, desc);
      else delete (proto as unknown as Record<string, unknown>)[name];
    }
  };
}

/** Move the playhead as playback would (no `seeked`), e.g. to simulate watching. */
export function advance(el: HTMLMediaElement, to: number): void {
  state(el).currentTime = to;
  el.dispatchEvent(new Event('timeupdate'));
}

/** Set what the media reports as its duration. */
export function setDuration(el: HTMLMediaElement, d: number): void {
  state(el).duration = d;
  el.dispatchEvent(new Event('durationchange'));
}
