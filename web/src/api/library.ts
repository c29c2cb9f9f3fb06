/**
 * The signed-in user's library on the tracker: the watch-later list, watch
 * progress per movie, and history. Every call needs a session.
 */
import { ApiError, request } from './client';
import type { HistoryPage, ProgressRequest, ProgressView, WatchItem } from './types';

const opts = (signal?: AbortSignal) => (signal ? { signal } : {});
const movie = (id: string) => encodeURIComponent(id);

/** `GET /me/watchlist`: the watch-later list, oldest first. */
export function getWatchlist(signal?: AbortSignal): Promise<WatchItem[]> {
  return request<WatchItem[]>('/me/watchlist', opts(signal));
}

/** `PUT /me/watchlist/{id}`: add a movie (idempotent). */
export function addToWatchlist(movieId: string): Promise<WatchItem> {
  return request<WatchItem>(`/me/watchlist/${movie(movieId)}`, { method: 'PUT' });
}

/** `DELETE /me/watchlist/{id}`: remove a movie (idempotent). */
export async function removeFromWatchlist(movieId: string): Promise<void> {
  await request<unknown>(`/me/watchlist/${movie(movieId)}`, { method: 'DELETE' });
}

// Progress writes still on their way, per movie: a read waits for them, so the movie
// page opened right after leaving the player shows the position just saved.
const pendingWrites = new Map<string, Set<Promise<unknown>>>();

/**
 * `GET /me/progress/{id}`: the stored progress, or `null` when nothing was recorded.
 * Waits for this tab's own progress writes to the movie to finish first.
 */
export async function getProgress(movieId: string, signal?: AbortSignal): Promise<ProgressView | null> {
  const pending = pendingWrites.get(movieId);
  if (pending) await Promise.allSettled([...pending]);
  try {
    return await request<ProgressView>(`/me/progress/${movie(movieId)}`, opts(signal));
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

/**
 * `PUT /me/progress/{id}`: record the playback position, stamped with this
 * client's clock so a late write cannot move the resume point back.
 *
 * With `keepalive` the request outlives the page: it is how the last position is
 * saved when the tab is hidden or closed. (`navigator.sendBeacon` cannot do it: a
 * beacon is a POST without an `Authorization` header, and the tracker's progress
 * route is a `PUT` that needs the bearer token.)
 */
export function putProgress(
  movieId: string,
  position_s: number,
  duration_s: number,
  { keepalive = false, now = Date.now() }: { keepalive?: boolean; now?: number } = {},
): Promise<ProgressView> {
  const body: ProgressRequest = {
    position_s: Math.max(0, Math.min(position_s, duration_s)),
    duration_s,
    timestamp_ms: Math.floor(now),
  };
  const write = request<ProgressView>(`/me/progress/${movie(movieId)}`, { method: 'PUT', body, keepalive });
  const set = pendingWrites.get(movieId) ?? new Set();
  pendingWrites.set(movieId, set);
  set.add(write);
  const done = () => {
    set.delete(write);
    if (set.size === 0 && pendingWrites.get(movieId) === set) pendingWrites.delete(movieId);
  };
  write.then(done, done);
  return write;
}

/** `GET /me/history`: movies with recorded progress, newest first; pass `next_cursor` on. */
export function getHistory(
  { limit, cursor }: { limit?: number; cursor?: string | null } = {},
  signal?: AbortSignal,
): Promise<HistoryPage> {
  const params = new URLSearchParams();
  if (limit !== undefined) params.set('limit', String(limit));
  if (cursor) params.set('cursor', cursor);
  const qs = params.toString();
  return request<HistoryPage>(`/me/history${qs ? `?${qs}` : ''}`, opts(signal));
}
