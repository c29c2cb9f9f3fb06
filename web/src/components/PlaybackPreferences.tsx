/**
 * The account page's playback preferences (`GET/PUT /me/preferences`): preferred audio
 * language, subtitles off/on/forced-only and their language, caption size and background.
 * The player applies them when a movie starts; its menus can save what plays as new ones.
 */
import { useEffect, useState, type FormEvent } from 'react';
import { getPreferences, putPreferences } from '../api/preferences';
import type { Preferences } from '../api/types';
import { errorMessage, useAsync } from '../hooks/useAsync';
import { storableLanguage } from '../player/tracks';
import { ErrorAlert } from './ErrorAlert';

const LANGUAGES: Array<[string, string]> = [
  ['', 'Movie default'],
  ['en', 'English'],
  ['de', 'German'],
  ['fr', 'French'],
  ['es', 'Spanish'],
  ['it', 'Italian'],
  ['pt', 'Portuguese'],
  ['nl', 'Dutch'],
  ['sv', 'Swedish'],
  ['pl', 'Polish'],
  ['ru', 'Russian'],
  ['ja', 'Japanese'],
  ['ko', 'Korean'],
  ['zh', 'Chinese'],
];

/** The options, with `current` added when it is not one of them (a tag saved elsewhere). */
function languageOptions(current: string | null): Array<[string, string]> {
  if (!current || LANGUAGES.some(([v]) => v === current)) return LANGUAGES;
  return [...LANGUAGES, [current, current]];
}

export function PlaybackPreferences() {
  const { state } = useAsync((signal) => getPreferences(signal), []);
  const [form, setForm] = useState<Preferences | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  useEffect(() => {
    if (state.status === 'ready') setForm(state.data);
  }, [state]);

  if (state.status === 'error') return <ErrorAlert message={state.error} />;
  if (!form) return null;
  const set = (p: Partial<Preferences>) => {
    setForm({ ...form, ...p });
    setStatus(null);
  };
  const lang = (v: string) => (storableLanguage(v) ? v : null);
  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    setSaving(true);
    setError(null);
    try {
      setForm(await putPreferences(form));
      setStatus('Saved. They apply from the next movie you start.');
    } catch (err) {
      setError(errorMessage(err, 'Could not save your preferences.'));
    } finally {
      setSaving(false);
    }
  };
  return (
    <form className="playback-prefs" onSubmit={onSubmit} aria-labelledby="playback-prefs-title" data-testid="playback-preferences">
      <h2 id="playback-prefs-title">Playback</h2>
      <div className="field">
        <label htmlFor="pref-audio">Audio language</label>
        <select id="pref-audio" value={form.audio_language ?? ''} onChange={(e) => set({ audio_language: lang(e.target.value) })}>
          {languageOptions(form.audio_language).map(([v, label]) => (
            <option key={v} value={v}>
              {label}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="pref-subtitles">Subtitles</label>
        <select
          id="pref-subtitles"
          value={form.subtitles}
          onChange={(e) => set({ subtitles: e.target.value as Preferences['subtitles'] })}
        >
          <option value="off">Off</option>
          <option value="on">On</option>
          <option value="forced_only">Only forced (signs and foreign dialogue)</option>
        </select>
      </div>
      <div className="field">
        <label htmlFor="pref-subtitle-language">Subtitle language</label>
        <select
          id="pref-subtitle-language"
          value={form.subtitle_language ?? ''}
          onChange={(e) => set({ subtitle_language: lang(e.target.value) })}
        >
          {languageOptions(form.subtitle_language).map(([v, label]) => (
            <option key={v} value={v}>
              {label}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="pref-size">Caption size</label>
        <select id="pref-size" value={form.subtitle_size} onChange={(e) => set({ subtitle_size: e.target.value as Preferences['subtitle_size'] })}>
          <option value="s">Small</option>
          <option value="m">Medium</option>
          <option value="l">Large</option>
          <option value="xl">Extra large</option>
        </select>
      </div>
      <label className="checkbox">
        <input type="checkbox" checked={form.subtitle_background} onChange={(e) => set({ subtitle_background: e.target.checked })} /> Caption
        background
      </label>
      {error && <ErrorAlert message={error} />}
      <p>
        <button type="submit" disabled={saving} data-testid="save-playback-preferences">
          {saving ? 'Saving…' : 'Save playback preferences'}
        </button>{' '}
        {status && (
          <span role="status" className="hint" data-testid="playback-preferences-status">
            {status}
          </span>
        )}
      </p>
    </form>
  );
}
