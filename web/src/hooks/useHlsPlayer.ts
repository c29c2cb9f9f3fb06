// The HLS stream of a <video>, shared by the player page and the watch-party room: ask the
// gateway for a playback URL (`GET /movies/{id}/play`), load hls.js on demand and attach it
// (or hand the URL to a browser that plays HLS itself), report fatal errors, destroy it when
// the movie changes or the page goes, and offer the stream's quality levels, audio tracks and
// subtitle tracks. When the tracks arrive, the viewer's preferences choose the audio and
// subtitle track to start with (player/tracks.ts). What to show while loading, after an
// error, and when to play stay with the page (its callbacks).
import type Hls from 'hls.js';
import type { ErrorData, Level, MediaPlaylist } from 'hls.js';
import { useCallback, useEffect, useLayoutEffect, useRef, useState, type RefObject } from 'react';
import { play, sameOriginUrl } from '../api/catalog';
import type { Preferences } from '../api/types';
import { chooseAudioTrack, chooseSubtitleTrack, toggleCaptions as nextCaptions, type TrackInfo } from '../player/tracks';

/** The fields of an hls.js rendition the menus and rules use. */
export function trackInfo(t: MediaPlaylist): TrackInfo {
  return {
    name: t.name,
    lang: t.lang,
    default: t.default,
    forced: t.forced,
    channels: t.channels,
    characteristics: t.characteristics,
  };
}

/** One entry of the quality menu; `index` is hls.js's level index. */
export interface QualityLevel {
  index: number;
  label: string;
}

/** `1080p`, else the level's name, else its bitrate. */
export function levelLabel(level: Pick<Level, 'height' | 'bitrate' | 'name'>): string {
  if (level.height) return `${level.height}p`;
  if (level.name) return level.name;
  return `${Math.round(level.bitrate / 1000)} kb/s`;
}

/** The levels for a menu: best (tallest, then highest bitrate) first. */
export function qualityLevels(levels: ReadonlyArray<Pick<Level, 'height' | 'bitrate' | 'name'>>): QualityLevel[] {
  return levels
    .map((l, index) => ({ index, label: levelLabel(l), height: l.height, bitrate: l.bitrate }))
    .sort((a, b) => b.height - a.height || b.bitrate - a.bitrate)
    .map(({ index, label }) => ({ index, label }));
}

export interface HlsPlayerOptions {
  /** Where to start, in seconds; read each time the stream (re)loads. Default 0. */
  startPosition?: () => number;
  /** A (re)load begins: before the playback URL is asked for. */
  onLoad?: () => void;
  /** The stream can play: hls.js parsed the manifest, or native HLS loaded the metadata. */
  onReady?: () => void;
  /** A fatal hls.js error (hls.js recovers from the others itself). */
  onFatal?: (data: ErrorData) => void;
  /** Destroy the hls.js instance after a fatal error (after `onFatal`); `reload()` starts a new one. */
  destroyOnFatal?: boolean;
  /** The playback URL or hls.js could not be had (not called once the stream was left). */
  onError?: (err: unknown) => void;
  /**
   * Neither hls.js nor native HLS (`canPlayType`) works in this browser. Without it the URL
   * is given to the <video> anyway and the browser tries.
   */
  onUnsupported?: () => void;
  /** The <video> failed while playing native HLS (never called while hls.js is attached). */
  onMediaError?: (error: MediaError) => void;
  /** The viewer's preferences, read when the tracks arrive: they pick the tracks to start with. */
  preferences?: () => Preferences | null;
  /** The play answer: its `thumbnails_url` (the seek-bar thumbnail index), when the movie has one. */
  onThumbnails?: (url: string) => void;
}

export interface HlsPlayer {
  /** The stream's levels, best first; empty until the manifest is parsed (and with native HLS). */
  levels: QualityLevel[];
  /** The level hls.js plays now, -1 until it says. */
  playingLevel: number;
  /** The level chosen in the menu, -1 for automatic. */
  chosenLevel: number;
  /** Choose a level (-1: automatic) for the attached hls.js. */
  chooseLevel: (index: number) => void;
  /** Load the stream again (a retry), from `startPosition()`. */
  reload: () => void;
  /** The audio renditions hls.js offers for the playing level (empty with one muxed audio). */
  audioTracks: TrackInfo[];
  /** Index into `audioTracks` being played, -1 until known. */
  audioTrack: number;
  chooseAudio: (index: number) => void;
  /** The subtitle renditions. */
  subtitleTracks: TrackInfo[];
  /** Index into `subtitleTracks` shown, -1 for none. */
  subtitleTrack: number;
  chooseSubtitle: (index: number) => void;
  /** Captions off, or back on in the language last shown (the `c` key). */
  toggleCaptions: () => void;
}

const HLS_MIME = 'application/vnd.apple.mpegurl';

/**
 * Play `movieId` in `videoRef`'s element. The stream is loaded again when `movieId` changes
 * or on `reload()`; the options are read when they are needed, so they may change freely.
 */
export function useHlsPlayer(
  videoRef: RefObject<HTMLVideoElement | null>,
  movieId: string,
  options: HlsPlayerOptions = {},
): HlsPlayer {
  const optionsRef = useRef(options);
  useLayoutEffect(() => {
    optionsRef.current = options;
  });
  const hlsRef = useRef<Hls | null>(null);
  const [attempt, setAttempt] = useState(0);
  const [levels, setLevels] = useState<QualityLevel[]>([]);
  const [playingLevel, setPlayingLevel] = useState(-1);
  const [chosenLevel, setChosenLevel] = useState(-1);
  const [audioTracks, setAudioTracks] = useState<TrackInfo[]>([]);
  const [audioTrack, setAudioTrack] = useState(-1);
  const [subtitleTracks, setSubtitleTracks] = useState<TrackInfo[]>([]);
  const [subtitleTrack, setSubtitleTrack] = useState(-1);
  // The language of the captions last shown, for `c` (kept across reloads of the stream).
  const lastCaptions = useRef<string | null>(null);

  useEffect(() => {
    const video = videoRef.current;
    if (!video) return;
    const opts = () => optionsRef.current;
    const controller = new AbortController();
    let hls: Hls | null = null;
    let disposed = false;
    opts().onLoad?.();
    const start = opts().startPosition?.() ?? 0;
    setAudioTracks([]);
    setAudioTrack(-1);
    setSubtitleTracks([]);
    setSubtitleTrack(-1);

    (async () => {
      const answer = await play(movieId, controller.signal);
      const src = sameOriginUrl(answer.master_url);
      const thumbs = (answer as { thumbnails_url?: unknown }).thumbnails_url;
      if (typeof thumbs === 'string' && thumbs && !disposed) opts().onThumbnails?.(sameOriginUrl(thumbs));
      const { default: HlsCtor } = await import('hls.js');
      if (disposed) return;
      if (HlsCtor.isSupported()) {
        const instance = new HlsCtor({ startPosition: start });
        hls = instance;
        hlsRef.current = instance;
        instance.on(HlsCtor.Events.MANIFEST_PARSED, (_e, data) => {
          setLevels(qualityLevels(data.levels));
          opts().onReady?.();
        });
        // A level of another audio group (stereo / surround) carries other audio tracks, and
        // hls.js does not always announce them with AUDIO_TRACKS_UPDATED: read them again.
        const syncAudio = () => {
          setAudioTracks(instance.audioTracks.map(trackInfo));
          setAudioTrack(instance.audioTrack);
        };
        instance.on(HlsCtor.Events.LEVEL_SWITCHED, (_e, data) => {
          setPlayingLevel(data.level);
          syncAudio();
        });
        // The preferences pick the first audio and subtitle tracks of each load; later
        // updates (another level's audio group) keep what hls.js carries over.
        let audioChosen = false;
        let subtitlesChosen = false;
        instance.on(HlsCtor.Events.AUDIO_TRACKS_UPDATED, (_e, data) => {
          const tracks = data.audioTracks.map(trackInfo);
          setAudioTracks(tracks);
          if (!audioChosen && tracks.length > 0) {
            audioChosen = true;
            const i = chooseAudioTrack(tracks, opts().preferences?.() ?? null);
            if (i >= 0 && i !== instance.audioTrack) instance.audioTrack = i;
          }
          setAudioTrack(instance.audioTrack);
        });
        instance.on(HlsCtor.Events.AUDIO_TRACK_SWITCHED, () => syncAudio());
        instance.on(HlsCtor.Events.SUBTITLE_TRACKS_UPDATED, (_e, data) => {
          const tracks = data.subtitleTracks.map(trackInfo);
          setSubtitleTracks(tracks);
          setSubtitleTrack(instance.subtitleTrack);
          if (!subtitlesChosen && tracks.length > 0) {
            subtitlesChosen = true;
            // hls.js selects its own initial track right after this event: choose after it.
            queueMicrotask(() => {
              if (disposed) return;
              const audio = instance.audioTracks[instance.audioTrack];
              const i = chooseSubtitleTrack(tracks, opts().preferences?.() ?? null, audio?.lang);
              instance.subtitleDisplay = true;
              instance.subtitleTrack = i;
              const lang = tracks[i]?.lang;
              if (lang) lastCaptions.current = lang;
              setSubtitleTrack(instance.subtitleTrack);
            });
          }
        });
        instance.on(HlsCtor.Events.SUBTITLE_TRACK_SWITCH, (_e, data) => setSubtitleTrack(data.id));
        // For the browser tests and for debugging, like the room's `__room`.
        (window as unknown as { __hls?: Hls }).__hls = instance;
        instance.on(HlsCtor.Events.ERROR, (_e, data) => {
          if (!data.fatal || disposed) return;
          opts().onFatal?.(data);
          if (opts().destroyOnFatal) {
            instance.destroy();
            if (hlsRef.current === instance) hlsRef.current = null;
          }
        });
        instance.loadSource(src);
        instance.attachMedia(video);
      } else if (video.canPlayType(HLS_MIME) || !opts().onUnsupported) {
        // Safari plays HLS itself.
        video.addEventListener(
          'loadedmetadata',
          () => {
            if (start > 0) video.currentTime = start;
            opts().onReady?.();
          },
          { once: true },
        );
        video.src = src;
      } else {
        opts().onUnsupported?.();
      }
    })().catch((err: unknown) => {
      if (controller.signal.aborted || disposed) return;
      opts().onError?.(err);
    });

    const onNativeError = () => {
      if (hls || disposed || !video.error) return;
      opts().onMediaError?.(video.error);
    };
    video.addEventListener('error', onNativeError);

    return () => {
      disposed = true;
      controller.abort();
      video.removeEventListener('error', onNativeError);
      hls?.destroy();
      if (hlsRef.current === hls) hlsRef.current = null;
    };
  }, [videoRef, movieId, attempt]);

  const chooseLevel = useCallback((index: number) => {
    setChosenLevel(index);
    if (hlsRef.current) hlsRef.current.currentLevel = index;
  }, []);
  const reload = useCallback(() => setAttempt((a) => a + 1), []);
  const chooseAudio = useCallback((index: number) => {
    const hls = hlsRef.current;
    if (!hls) return;
    hls.audioTrack = index;
    setAudioTrack(index);
  }, []);
  const chooseSubtitle = useCallback((index: number) => {
    const hls = hlsRef.current;
    if (!hls) return;
    const lang = hls.subtitleTracks[index]?.lang;
    if (lang) lastCaptions.current = lang;
    hls.subtitleDisplay = true;
    hls.subtitleTrack = index;
    setSubtitleTrack(index);
  }, []);
  const toggleCaptions = useCallback(() => {
    const hls = hlsRef.current;
    if (!hls) return;
    const tracks = hls.subtitleTracks.map(trackInfo);
    const current = hls.subtitleTrack;
    const currentLang = tracks[current]?.lang;
    if (current >= 0 && currentLang) lastCaptions.current = currentLang;
    const next = nextCaptions(tracks, current, lastCaptions.current, optionsRef.current.preferences?.() ?? null);
    hls.subtitleDisplay = true;
    hls.subtitleTrack = next;
    setSubtitleTrack(next);
  }, []);

  return {
    levels,
    playingLevel,
    chosenLevel,
    chooseLevel,
    reload,
    audioTracks,
    audioTrack,
    chooseAudio,
    subtitleTracks,
    subtitleTrack,
    chooseSubtitle,
    toggleCaptions,
  };
}
