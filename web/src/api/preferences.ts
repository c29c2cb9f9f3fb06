/**
 * The signed-in user's playback preferences on the tracker (`/me/preferences`): preferred
 * audio and subtitle languages, subtitles off/on/forced-only, caption size and background.
 * The player applies them when a movie starts (see `player/tracks.ts`).
 */
import { request } from './client';
import type { Preferences } from './types';

/** What the tracker answers for a user who never saved any. */
export const DEFAULT_PREFERENCES: Preferences = {
  audio_language: null,
  subtitle_language: null,
  subtitles: 'off',
  subtitle_size: 'm',
  subtitle_background: true,
};

/** `GET /me/preferences`: the stored preferences, or the defaults. */
export function getPreferences(signal?: AbortSignal): Promise<Preferences> {
  return request<Preferences>('/me/preferences', signal ? { signal } : {});
}

/** `PUT /me/preferences`: replace them; answers what is stored. */
export function putPreferences(prefs: Preferences): Promise<Preferences> {
  return request<Preferences>('/me/preferences', { method: 'PUT', body: prefs });
}
