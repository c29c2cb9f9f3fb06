/**
 * Where a room member should be, and how to get there: the room's play state says the
 * position at a server time; with the clock offset every member computes the same expected
 * position. Small drift is corrected by nudging `playbackRate`, large drift by seeking.
 */

/** The room's play state (the server's `PlayState`). */
export interface PlayState {
  playing: boolean;
  /** Seconds into the movie at `at`. */
  position: number;
  /** Server time (ms since the epoch) from which this state holds. */
  at: number;
  rate: number;
}

/** Where playback should be at server time `serverNow` (ms). */
export function expectedPosition(state: PlayState, serverNow: number): number {
  if (state.playing && serverNow > state.at) {
    return state.position + ((serverNow - state.at) / 1000) * state.rate;
  }
  return state.position;
}

/** Thresholds of the correction, seconds. */
export interface DriftPolicy {
  /** Below this, do nothing. */
  deadband: number;
  /** At or above this, seek. */
  seekAbove: number;
  /** Rate change for drift under `bigNudgeAbove`. */
  smallNudge: number;
  /** Rate change for larger drift. */
  bigNudge: number;
  bigNudgeAbove: number;
}

export const DEFAULT_POLICY: DriftPolicy = {
  deadband: 0.04,
  seekAbove: 0.4,
  smallNudge: 0.05,
  bigNudge: 0.1,
  bigNudgeAbove: 0.15,
};

export type Correction =
  | { kind: 'none'; rate: number }
  | { kind: 'rate'; rate: number }
  | { kind: 'seek'; to: number; rate: number };

/**
 * What to do about `drift` = actual − expected position (seconds) while playing at
 * `baseRate`. Ahead (positive drift) slows down, behind speeds up.
 */
export function correct(
  drift: number,
  expected: number,
  baseRate = 1,
  policy: DriftPolicy = DEFAULT_POLICY,
): Correction {
  const size = Math.abs(drift);
  if (!Number.isFinite(drift) || size >= policy.seekAbove) {
    return { kind: 'seek', to: Math.max(0, expected), rate: baseRate };
  }
  if (size < policy.deadband) return { kind: 'none', rate: baseRate };
  const nudge = size >= policy.bigNudgeAbove ? policy.bigNudge : policy.smallNudge;
  return { kind: 'rate', rate: baseRate * (drift > 0 ? 1 - nudge : 1 + nudge) };
}

/**
 * The state in force at `serverNow` given the current one and a scheduled next one:
 * the next state takes over once its time has come.
 */
export function stateAt(
  current: PlayState,
  next: PlayState | null,
  serverNow: number,
): { current: PlayState; next: PlayState | null } {
  if (next && serverNow >= next.at) return { current: next, next: null };
  return { current, next };
}
