/**
 * Pure rules of playback the pages share: when to offer "Resume", and how to
 * write times and runtimes.
 */
import type { ProgressView } from './api/types';

/** Resume only past this share of the movie (Jellyfin's MinResumePct). */
export const MIN_RESUME_FRACTION = 0.05;
/** …and only before this share; later counts as watched (Jellyfin's MaxResumePct). */
export const MAX_RESUME_FRACTION = 0.9;

/**
 * Where to resume a movie from its stored progress, or `null` to start from the
 * beginning: only when the position is between 5% and 90% of the duration, and
 * the tracker has not marked it finished.
 */
export function resumePosition(progress: Pick<ProgressView, 'position_s' | 'duration_s' | 'finished'> | null): number | null {
  if (!progress || progress.finished) return null;
  const { position_s, duration_s } = progress;
  if (!Number.isFinite(position_s) || !Number.isFinite(duration_s) || duration_s <= 0) return null;
  const fraction = position_s / duration_s;
  if (fraction < MIN_RESUME_FRACTION || fraction > MAX_RESUME_FRACTION) return null;
  return position_s;
}

/** Watched share of a movie, 0..1, for progress bars. */
export function watchedFraction(progress: Pick<ProgressView, 'position_s' | 'duration_s'>): number {
  if (!(progress.duration_s > 0)) return 0;
  return Math.min(1, Math.max(0, progress.position_s / progress.duration_s));
}

/** `m:ss`, or `h:mm:ss` from an hour on (`75` → `1:15`, `3725` → `1:02:05`). */
export function formatTime(seconds: number): string {
  const total = Number.isFinite(seconds) && seconds > 0 ? Math.floor(seconds) : 0;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** `136` → `2h 16m`, `45` → `45m`. */
export function formatRuntime(minutes: number | null | undefined): string | null {
  if (minutes == null || !(minutes > 0)) return null;
  const h = Math.floor(minutes / 60);
  const m = Math.round(minutes % 60);
  if (h === 0) return `${m}m`;
  return m === 0 ? `${h}h` : `${h}h ${m}m`;
}
