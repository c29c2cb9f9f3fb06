import { describe, expect, it } from 'vitest';
import { DEFAULT_PREFERENCES } from '../api/preferences';
import type { Preferences } from '../api/types';
import {
  audioTrackLabel,
  chooseAudioTrack,
  chooseSubtitleTrack,
  preferencesFromChoice,
  primaryLanguage,
  sameLanguage,
  subtitleTrackLabel,
  toggleCaptions,
  type TrackInfo,
} from './tracks';

const a = (name: string, lang: string | undefined, extra: Partial<TrackInfo> = {}): TrackInfo => ({
  name,
  lang,
  default: false,
  ...extra,
});

// The test movie of issue 18: English stereo (DEFAULT), German 5.1, English commentary.
const AUDIO = [
  a('English', 'eng', { default: true, channels: '2' }),
  a('Deutsch', 'ger', { channels: '6' }),
  a('Director commentary', 'eng', { channels: '2' }),
];
// English and French subtitles, plus forced English and forced German.
const SUBS = [
  a('English', 'en', { default: true }),
  a('Français', 'fr'),
  a('English (signs)', 'en', { forced: true }),
  a('Deutsch erzwungen', 'de', { forced: true }),
];

const prefs = (p: Partial<Preferences>): Preferences => ({ ...DEFAULT_PREFERENCES, ...p });

describe('languages', () => {
  it('compare by primary subtag across ISO 639-1/639-2 spellings', () => {
    expect(primaryLanguage('de-AT')).toBe('de');
    expect(primaryLanguage('GER')).toBe('de');
    expect(primaryLanguage('deu')).toBe('de');
    expect(primaryLanguage('und')).toBeNull();
    expect(primaryLanguage(undefined)).toBeNull();
    expect(sameLanguage('fre', 'fr-CA')).toBe(true);
    expect(sameLanguage('en', 'de')).toBe(false);
    expect(sameLanguage('und', 'und')).toBe(false);
  });
});

describe('chooseAudioTrack', () => {
  it('picks the preferred language, else the DEFAULT track, else the first', () => {
    expect(chooseAudioTrack(AUDIO, prefs({ audio_language: 'de' }))).toBe(1);
    expect(chooseAudioTrack(AUDIO, prefs({ audio_language: 'deu' }))).toBe(1);
    expect(chooseAudioTrack(AUDIO, prefs({ audio_language: 'en' }))).toBe(0);
    expect(chooseAudioTrack(AUDIO, prefs({ audio_language: 'ja' }))).toBe(0);
    expect(chooseAudioTrack(AUDIO, null)).toBe(0);
    expect(chooseAudioTrack([a('x', 'en'), a('y', 'fr')], prefs({}))).toBe(0);
    expect(chooseAudioTrack([a('x', 'en'), a('y', 'fr', { default: true })], prefs({}))).toBe(1);
    expect(chooseAudioTrack([], prefs({ audio_language: 'de' }))).toBe(-1);
  });

  it('prefers a main track to a commentary in the same language', () => {
    const commentaryFirst = [a('Commentary', 'en'), a('French', 'fr', { default: true }), a('English', 'en')];
    expect(chooseAudioTrack(commentaryFirst, prefs({ audio_language: 'en' }))).toBe(2);
    // Only a commentary in that language: still that language.
    expect(chooseAudioTrack([a('French', 'fr', { default: true }), a('Commentary', 'en')], prefs({ audio_language: 'en' }))).toBe(1);
  });
});

describe('chooseSubtitleTrack', () => {
  it('off shows none', () => {
    expect(chooseSubtitleTrack(SUBS, prefs({ subtitles: 'off', subtitle_language: 'fr' }), 'en')).toBe(-1);
    expect(chooseSubtitleTrack(SUBS, null, 'en')).toBe(-1);
  });

  it('on picks a full track in the preferred language', () => {
    expect(chooseSubtitleTrack(SUBS, prefs({ subtitles: 'on', subtitle_language: 'fr' }), 'de')).toBe(1);
    expect(chooseSubtitleTrack(SUBS, prefs({ subtitles: 'on', subtitle_language: 'eng' }), 'de')).toBe(0);
    // Only a forced track in that language: that one.
    expect(chooseSubtitleTrack(SUBS, prefs({ subtitles: 'on', subtitle_language: 'de' }), 'en')).toBe(3);
    // None in that language: none (another language is not what was asked for).
    expect(chooseSubtitleTrack(SUBS, prefs({ subtitles: 'on', subtitle_language: 'es' }), 'en')).toBe(-1);
    // No language: the DEFAULT full track, else the first full one.
    expect(chooseSubtitleTrack(SUBS, prefs({ subtitles: 'on' }), 'en')).toBe(0);
    expect(chooseSubtitleTrack([a('f', 'en', { forced: true }), a('x', 'fr')], prefs({ subtitles: 'on' }), 'en')).toBe(1);
  });

  it('forced_only picks only a forced track in the audio language', () => {
    expect(chooseSubtitleTrack(SUBS, prefs({ subtitles: 'forced_only' }), 'eng')).toBe(2);
    expect(chooseSubtitleTrack(SUBS, prefs({ subtitles: 'forced_only' }), 'ger')).toBe(3);
    expect(chooseSubtitleTrack(SUBS, prefs({ subtitles: 'forced_only', subtitle_language: 'fr' }), 'fr')).toBe(-1);
    expect(chooseSubtitleTrack(SUBS, prefs({ subtitles: 'forced_only' }), undefined)).toBe(-1);
  });
});

describe('toggleCaptions (the c key)', () => {
  it('turns captions off, then back on in the language last shown', () => {
    expect(toggleCaptions(SUBS, 1, 'fr', null)).toBe(-1);
    expect(toggleCaptions(SUBS, -1, 'fr', null)).toBe(1);
    // Nothing shown before: the preferred language, else the DEFAULT full track.
    expect(toggleCaptions(SUBS, -1, null, prefs({ subtitle_language: 'fr' }))).toBe(1);
    expect(toggleCaptions(SUBS, -1, null, prefs({}))).toBe(0);
    // The last language is gone (another movie): the preference, then the default.
    expect(toggleCaptions(SUBS, -1, 'ja', prefs({ subtitle_language: 'fra' }))).toBe(1);
    expect(toggleCaptions(SUBS, -1, 'ja', null)).toBe(0);
    // Only forced tracks: the first one.
    expect(toggleCaptions([a('signs', 'en', { forced: true })], -1, null, null)).toBe(0);
    // No subtitles: stays off.
    expect(toggleCaptions([], -1, 'fr', null)).toBe(-1);
  });

  it('round trips: off and on again lands on the same track', () => {
    let current = 1;
    const last = SUBS[current]!.lang ?? null;
    current = toggleCaptions(SUBS, current, last, null);
    expect(current).toBe(-1);
    current = toggleCaptions(SUBS, current, last, null);
    expect(current).toBe(1);
  });
});

describe('labels', () => {
  it('name the language, channels and commentary', () => {
    expect(audioTrackLabel(AUDIO[0]!)).toBe('English · Stereo');
    expect(audioTrackLabel(AUDIO[1]!)).toBe('Deutsch (German) · 5.1');
    expect(audioTrackLabel(AUDIO[2]!)).toBe('Director commentary (English) · Stereo');
    expect(audioTrackLabel(a('ger', 'ger', { channels: '8' }))).toBe('German · 7.1');
    expect(audioTrackLabel(a('Track 3', 'en', { characteristics: 'public.accessibility.describes-video' }))).toBe(
      'Track 3 (English) · Audio description',
    );
    expect(audioTrackLabel(a('Bonus', undefined, { name: 'Bonus' }))).toBe('Bonus');
  });

  it('flag forced subtitles', () => {
    expect(subtitleTrackLabel(SUBS[1]!)).toBe('Français (French)');
    expect(subtitleTrackLabel(a('fr', 'fr', { forced: true }))).toBe('French (forced)');
    expect(subtitleTrackLabel(a('French forced', 'fr', { forced: true }))).toBe('French forced');
  });
});

describe('preferencesFromChoice', () => {
  const base = prefs({ subtitle_size: 'l', subtitle_background: false, subtitle_language: 'es' });
  it('keeps the style and records what plays', () => {
    expect(preferencesFromChoice(base, AUDIO[1]!, SUBS[1]!)).toEqual({
      ...base,
      audio_language: 'ger',
      subtitles: 'on',
      subtitle_language: 'fr',
    });
    expect(preferencesFromChoice(base, AUDIO[0]!, null)).toEqual({ ...base, audio_language: 'eng', subtitles: 'off' });
    expect(preferencesFromChoice(base, AUDIO[0]!, SUBS[2]!)).toEqual({ ...base, audio_language: 'eng', subtitles: 'forced_only' });
  });
  it('keeps the stored language when a track has none the tracker accepts', () => {
    const stored = { ...base, audio_language: 'de' };
    expect(preferencesFromChoice(stored, a('x', 'und'), a('y', 'en_US')).audio_language).toBe('de');
    expect(preferencesFromChoice(stored, a('x', undefined), a('y', 'en_US')).subtitle_language).toBe('es');
  });
});
