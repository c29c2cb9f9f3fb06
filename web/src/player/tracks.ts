/**
 * Which audio and subtitle track to play: the pure rules behind the player's audio and
 * subtitle menus, the `c` key and the per-user preferences (`/me/preferences`) applied when
 * a movie starts. Everything here works on plain track lists (hls.js's `audioTracks` /
 * `subtitleTracks`, reduced to {@link TrackInfo}) so it is tested without a browser.
 */
import type { Preferences } from '../api/types';

/** What the rules need of an hls.js `MediaPlaylist` (an audio or subtitle rendition). */
export interface TrackInfo {
  /** NAME. */
  name: string;
  /** LANGUAGE (BCP 47 or ISO 639-2, as the source had it). */
  lang?: string;
  /** DEFAULT=YES. */
  default: boolean;
  /** FORCED=YES (subtitles only). */
  forced?: boolean;
  /** CHANNELS (`"2"`, `"6"`; audio only). */
  channels?: string;
  /** CHARACTERISTICS (e.g. `public.accessibility.describes-video`). */
  characteristics?: string;
}

/** ISO 639-2 (bibliographic and terminology) codes of common languages → ISO 639-1. */
const ISO_639_2: Record<string, string> = {
  eng: 'en', ger: 'de', deu: 'de', fre: 'fr', fra: 'fr', spa: 'es', ita: 'it', por: 'pt',
  dut: 'nl', nld: 'nl', rus: 'ru', jpn: 'ja', chi: 'zh', zho: 'zh', kor: 'ko', ara: 'ar',
  hin: 'hi', swe: 'sv', nor: 'no', nob: 'nb', nno: 'nn', dan: 'da', fin: 'fi', pol: 'pl',
  cze: 'cs', ces: 'cs', slo: 'sk', slk: 'sk', hun: 'hu', gre: 'el', ell: 'el', tur: 'tr',
  heb: 'he', ukr: 'uk', rum: 'ro', ron: 'ro', bul: 'bg', hrv: 'hr', srp: 'sr', slv: 'sl',
  tha: 'th', vie: 'vi', ind: 'id', may: 'ms', msa: 'ms', per: 'fa', fas: 'fa', cat: 'ca',
  ice: 'is', isl: 'is', est: 'et', lav: 'lv', lit: 'lt', baq: 'eu', eus: 'eu', glg: 'gl',
};

/**
 * The primary language of a tag, comparable across spellings: lowercased, ISO 639-2 mapped
 * to ISO 639-1 (`deu`, `ger`, `de-AT` → `de`). `null` for no tag or `und` (undetermined).
 */
export function primaryLanguage(tag: string | null | undefined): string | null {
  if (!tag) return null;
  const primary = tag.trim().toLowerCase().split(/[-_]/)[0] ?? '';
  if (!primary || primary === 'und' || primary === 'zxx' || primary === 'mul') return null;
  return ISO_639_2[primary] ?? primary;
}

/** Whether two language tags name the same language (by their primary subtag). */
export function sameLanguage(a: string | null | undefined, b: string | null | undefined): boolean {
  const pa = primaryLanguage(a);
  return pa !== null && pa === primaryLanguage(b);
}

/** A commentary track (no HLS characteristic says so: the name does). */
export function isCommentary(t: TrackInfo): boolean {
  return /comment/i.test(t.name) || /commentary/i.test(t.characteristics ?? '');
}

/** An audio description for the blind (`public.accessibility.describes-video`). */
export function isDescription(t: TrackInfo): boolean {
  return /describes-video/i.test(t.characteristics ?? '') || /audio description|descriptive/i.test(t.name);
}

/** `"6"` → `5.1`, `"8"` → `7.1`, `"2"` → `Stereo`, `"1"` → `Mono`, else `N ch`. */
export function channelLabel(channels: string | undefined): string | null {
  const n = Number.parseInt(channels ?? '', 10);
  if (!Number.isFinite(n) || n <= 0) return null;
  if (n === 1) return 'Mono';
  if (n === 2) return 'Stereo';
  if (n === 6) return '5.1';
  if (n === 8) return '7.1';
  return `${n} ch`;
}

/** The language's name in the reader's language (`de` → `German`), or the tag itself. */
export function languageName(tag: string | null | undefined, locale = 'en'): string | null {
  const primary = primaryLanguage(tag);
  if (!primary) return null;
  try {
    const names = new Intl.DisplayNames([locale], { type: 'language' });
    return names.of(primary) ?? primary;
  } catch {
    return primary;
  }
}

/**
 * The NAME with the language's name when the NAME does not say it already (`Deutsch
 * (German)`); the language's name alone when the NAME is empty or just the tag.
 */
function trackName(t: TrackInfo): string {
  const lang = languageName(t.lang);
  const name = t.name.trim();
  if (!name || name.toLowerCase() === (t.lang ?? '').toLowerCase()) return lang ?? (name || 'Unknown');
  if (!lang || name.toLowerCase().includes(lang.toLowerCase())) return name;
  return `${name} (${lang})`;
}

/** A menu entry for an audio track: `English · 5.1 · Commentary`. */
export function audioTrackLabel(t: TrackInfo): string {
  const parts: string[] = [trackName(t)];
  const ch = channelLabel(t.channels);
  if (ch) parts.push(ch);
  if (isCommentary(t) && !/comment/i.test(parts[0] ?? '')) parts.push('Commentary');
  if (isDescription(t) && !/descri/i.test(parts[0] ?? '')) parts.push('Audio description');
  return parts.join(' · ');
}

/** A menu entry for a subtitle track: `French`, `English (forced)`. */
export function subtitleTrackLabel(t: TrackInfo): string {
  const base = trackName(t);
  return t.forced && !/forced/i.test(base) ? `${base} (forced)` : base;
}

/** Index of the first track matching `pred`, else -1. */
function firstIndex(tracks: readonly TrackInfo[], pred: (t: TrackInfo) => boolean): number {
  return tracks.findIndex(pred);
}

/**
 * The audio track to start with: in the preferred language when there is one (a main
 * track before a commentary or description, the DEFAULT one among equals), else the
 * DEFAULT track, else the first. -1 only for an empty list.
 */
export function chooseAudioTrack(tracks: readonly TrackInfo[], prefs: Pick<Preferences, 'audio_language'> | null): number {
  if (tracks.length === 0) return -1;
  const plain = (t: TrackInfo) => !isCommentary(t) && !isDescription(t);
  const wanted = prefs?.audio_language;
  if (wanted) {
    for (const pred of [
      (t: TrackInfo) => sameLanguage(t.lang, wanted) && plain(t) && t.default,
      (t: TrackInfo) => sameLanguage(t.lang, wanted) && plain(t),
      (t: TrackInfo) => sameLanguage(t.lang, wanted),
    ]) {
      const i = firstIndex(tracks, pred);
      if (i >= 0) return i;
    }
  }
  const d = firstIndex(tracks, (t) => t.default);
  return d >= 0 ? d : 0;
}

/**
 * The subtitle track to start with (-1: none) under `prefs.subtitles`:
 * - `off`: none;
 * - `on`: a full (not forced) track in `subtitle_language`, else a forced one in it; with no
 *   language set, the DEFAULT full track, else the first full one; none when the movie has
 *   no subtitles in the wanted language (subtitles in another language are not what was asked);
 * - `forced_only`: a FORCED track in the language of the audio being played (`audioLang`).
 */
export function chooseSubtitleTrack(
  tracks: readonly TrackInfo[],
  prefs: Pick<Preferences, 'subtitles' | 'subtitle_language'> | null,
  audioLang: string | null | undefined,
): number {
  if (!prefs || tracks.length === 0) return -1;
  switch (prefs.subtitles) {
    case 'off':
      return -1;
    case 'forced_only':
      return firstIndex(tracks, (t) => !!t.forced && sameLanguage(t.lang, audioLang));
    case 'on': {
      const wanted = prefs.subtitle_language;
      if (wanted) {
        const full = firstIndex(tracks, (t) => !t.forced && sameLanguage(t.lang, wanted));
        return full >= 0 ? full : firstIndex(tracks, (t) => sameLanguage(t.lang, wanted));
      }
      const d = firstIndex(tracks, (t) => !t.forced && t.default);
      return d >= 0 ? d : firstIndex(tracks, (t) => !t.forced);
    }
    default:
      return -1;
  }
}

/**
 * What `c` (or the captions button) does: captions on → off; off → back on in the language
 * last shown (`lastLanguage`), else the preferred subtitle language, else the DEFAULT full
 * track, else the first full track, else the first track. Returns the new track index
 * (-1: off; also when there are no subtitles at all).
 */
export function toggleCaptions(
  tracks: readonly TrackInfo[],
  current: number,
  lastLanguage: string | null,
  prefs: Pick<Preferences, 'subtitle_language'> | null,
): number {
  if (current >= 0 && current < tracks.length) return -1;
  if (tracks.length === 0) return -1;
  for (const lang of [lastLanguage, prefs?.subtitle_language ?? null]) {
    if (!lang) continue;
    const full = firstIndex(tracks, (t) => !t.forced && sameLanguage(t.lang, lang));
    if (full >= 0) return full;
    const any = firstIndex(tracks, (t) => sameLanguage(t.lang, lang));
    if (any >= 0) return any;
  }
  const d = firstIndex(tracks, (t) => !t.forced && t.default);
  if (d >= 0) return d;
  const full = firstIndex(tracks, (t) => !t.forced);
  return full >= 0 ? full : 0;
}

/** Whether the tracker accepts `tag` as a language (see `PUT /me/preferences`). */
export function storableLanguage(tag: string | null | undefined): tag is string {
  return !!tag && tag.length <= 35 && /^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/.test(tag) && primaryLanguage(tag) !== null;
}

/**
 * The preferences that reproduce what is playing now (the menus' "Save as my default"):
 * the audio track's language, the subtitle state (off, on in its language, or forced-only
 * when a forced track is on), and the caption style kept from `base`.
 */
export function preferencesFromChoice(
  base: Preferences,
  audio: TrackInfo | null,
  subtitle: TrackInfo | null,
): Preferences {
  const audioLang = storableLanguage(audio?.lang) ? audio.lang : base.audio_language;
  if (!subtitle) {
    return { ...base, audio_language: audioLang ?? null, subtitles: 'off' };
  }
  if (subtitle.forced) {
    return { ...base, audio_language: audioLang ?? null, subtitles: 'forced_only' };
  }
  const subLang = storableLanguage(subtitle.lang) ? subtitle.lang : base.subtitle_language;
  return { ...base, audio_language: audioLang ?? null, subtitles: 'on', subtitle_language: subLang ?? null };
}
