/**
 * Saves the playback position of one `<video>` while a movie plays: every few
 * seconds while playing, on pause, after a seek, when the page is hidden or
 * closed, and when the player goes away.
 *
 * Page hide/close uses a `keepalive` fetch (see `putProgress`): `sendBeacon`
 * cannot carry the bearer token the tracker's `PUT /me/progress` needs.
 */

/** How often the position is saved while playing. */
export const SAVE_INTERVAL_MS = 5000;

export type SaveFn = (position_s: number, duration_s: number, keepalive: boolean) => Promise<unknown>;

export interface ProgressSaverOptions {
  save: SaveFn;
  /** The movie's length from its metadata (the expected length while still ingesting). */
  knownDuration?: number | null;
  intervalMs?: number;
}

export class ProgressSaver {
  /** False until playback really started at the intended position, so a load at 0 never overwrites the resume point. */
  private armed = false;
  private lastSaved: number | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly cleanup: Array<() => void> = [];

  constructor(
    private readonly video: HTMLVideoElement,
    private readonly options: ProgressSaverOptions,
  ) {}

  /** The duration to report: the movie's known length, or the media's once known. */
  duration(): number {
    const media = Number.isFinite(this.video.duration) && this.video.duration > 0 ? this.video.duration : 0;
    const known = this.options.knownDuration ?? 0;
    return known > 0 ? Math.max(known, media) : media;
  }

  /** Start listening. Call `stop()` to save a last time and detach. */
  start(): this {
    const on = <K extends string>(target: EventTarget, type: K, fn: () => void) => {
      target.addEventListener(type, fn);
      this.cleanup.push(() => target.removeEventListener(type, fn));
    };
    on(this.video, 'playing', () => {
      this.armed = true;
    });
    on(this.video, 'pause', () => this.save());
    on(this.video, 'seeked', () => this.save());
    on(document, 'visibilitychange', () => {
      if (document.visibilityState === 'hidden') this.save(true);
    });
    on(window, 'pagehide', () => this.save(true));
    this.timer = setInterval(() => {
      if (!this.video.paused) this.save();
    }, this.options.intervalMs ?? SAVE_INTERVAL_MS);
    return this;
  }

  /** Stop saving until playback starts again (e.g. while the stream reloads after an error). */
  disarm(): void {
    this.armed = false;
  }

  /** Save the current position now (unless it has not moved since the last save). */
  save(keepalive = false): void {
    if (!this.armed) return;
    const position = this.video.currentTime;
    const duration = this.duration();
    if (!(duration > 0) || !Number.isFinite(position) || position < 0) return;
    if (!keepalive && this.lastSaved !== null && Math.abs(position - this.lastSaved) < 0.5) return;
    this.lastSaved = position;
    this.options.save(Math.min(position, duration), duration, keepalive).catch(() => {
      // A lost write costs at most a few seconds of resume point; the next one retries.
      this.lastSaved = null;
    });
  }

  /** Save a last time (with `keepalive`, since the page may be going away) and detach. */
  stop(): void {
    this.save(true);
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const undo of this.cleanup.splice(0)) undo();
    this.armed = false;
  }
}
