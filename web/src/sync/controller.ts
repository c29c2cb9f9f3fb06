/**
 * Keeps one `<video>` in step with a room: applies scheduled states at their server time,
 * corrects drift (rate nudge or seek, see `drift.ts`), and reports buffering and ready.
 */
import { correct, expectedPosition, stateAt, type PlayState } from './drift';

/** What the controller needs from the room connection. */
export interface RoomLink {
  serverNow(): number;
  send(frame: { type: 'buffering' } | { type: 'ready' }): void;
}

export interface SyncStatus {
  /** Actual − expected position, ms (null before there is a state or while seeking). */
  driftMs: number | null;
  playing: boolean;
  buffering: boolean;
}

/** How long a stall lasts before the room is told, ms. */
const STALL_REPORT_MS = 300;

export class SyncController {
  private current: PlayState | null = null;
  private next: PlayState | null = null;
  private seq = -1;
  private timer: ReturnType<typeof setInterval>;
  private stalledSince: number | null = null;
  private reportedBuffering = false;
  private lastDrift: number | null = null;
  /** Set when the browser refused to start playback without a user gesture. */
  blocked = false;

  constructor(
    private readonly video: HTMLVideoElement,
    private readonly link: RoomLink,
    private readonly onStatus: (s: SyncStatus) => void = () => {},
    tickMs = 100,
  ) {
    this.timer = setInterval(() => this.tick(), tickMs);
  }

  /** A state from the server (welcome or state frame); older `seq`s are ignored. */
  apply(state: PlayState, seq: number): void {
    if (seq < this.seq) return;
    this.seq = seq;
    if (!this.current) {
      this.current = state;
      this.next = null;
    } else {
      // A pending state not yet in force is superseded by the newer one.
      if (this.next && this.link.serverNow() >= this.next.at) this.current = this.next;
      this.next = state;
    }
    this.tick();
  }

  /** The state in force now. */
  state(): PlayState | null {
    return this.current;
  }

  /** Where the room is now, seconds. */
  expected(): number | null {
    if (!this.current) return null;
    const now = this.link.serverNow();
    const { current } = stateAt(this.current, this.next, now);
    return expectedPosition(current, now);
  }

  /** One correction step. */
  tick(): void {
    const v = this.video;
    if (!this.current) return;
    const now = this.link.serverNow();
    const s = stateAt(this.current, this.next, now);
    this.current = s.current;
    this.next = s.next;
    const st = this.current;
    const expected = expectedPosition(st, now);

    // Buffering: a stall while we should be playing, reported after a short grace.
    const stalled = st.playing && v.readyState < 3 && !v.ended;
    if (stalled) {
      this.stalledSince ??= performance.now();
      if (!this.reportedBuffering && performance.now() - this.stalledSince > STALL_REPORT_MS) {
        this.reportedBuffering = true;
        this.link.send({ type: 'buffering' });
      }
    } else {
      this.stalledSince = null;
      if (this.reportedBuffering && (v.readyState >= 3 || (!st.playing && v.readyState >= 2))) {
        this.reportedBuffering = false;
        this.link.send({ type: 'ready' });
      }
    }

    if (v.readyState < 1) {
      this.emit(null, st.playing);
      return;
    }
    if (v.seeking) {
      this.emit(null, st.playing);
      return;
    }
    const drift = v.currentTime - expected;
    if (!st.playing) {
      if (!v.paused) v.pause();
      v.playbackRate = st.rate;
      if (Math.abs(drift) > 0.05) v.currentTime = expected;
      this.emit(drift, false);
      return;
    }
    if (v.paused && !this.blocked) {
      const p = v.play() as Promise<void> | undefined;
      p?.catch(() => {
        this.blocked = true;
      });
    }
    const c = correct(drift, expected, st.rate);
    if (c.kind === 'seek') {
      // Land a little ahead when far away: the seek itself takes time.
      v.currentTime = c.to + (Math.abs(drift) > 2 ? 0.15 : 0.05);
      v.playbackRate = st.rate;
    } else if (v.playbackRate !== c.rate) {
      v.playbackRate = c.rate;
    }
    this.emit(drift, true);
  }

  /** Lets a user gesture retry playback the browser refused. */
  unblock(): void {
    this.blocked = false;
    this.tick();
  }

  private emit(drift: number | null, playing: boolean): void {
    this.lastDrift = drift;
    this.onStatus({
      driftMs: drift === null ? null : Math.round(drift * 1000),
      playing,
      buffering: this.reportedBuffering,
    });
  }

  /** The last measured drift, seconds. */
  drift(): number | null {
    return this.lastDrift;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
