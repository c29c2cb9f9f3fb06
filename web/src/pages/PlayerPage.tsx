import type { ErrorData } from 'hls.js';
import { useCallback, useEffect, useRef, useState } from 'react';
import { Link, useParams, useSearchParams } from 'react-router-dom';
import { ApiError } from '../api/client';
import { getMovie } from '../api/catalog';
import { getProgress, putProgress } from '../api/library';
import { DEFAULT_PREFERENCES, getPreferences } from '../api/preferences';
import type { MovieDetail, Preferences } from '../api/types';
import { FullscreenIcon, MutedIcon, PauseIcon, PlayIcon, VolumeIcon } from '../components/Icons';
import { Page } from '../components/Page';
import { Failed, Loading } from '../components/States';
import { errorMessage, useAsync } from '../hooks/useAsync';
import { useHlsPlayer } from '../hooks/useHlsPlayer';
import { handlePlayerKey } from '../player/keys';
import { ProgressSaver } from '../player/progressSaver';
import { SeekPreview } from '../player/SeekPreview';
import { loadThumbnails, type Thumbnail } from '../player/thumbnails';
import { captionClasses, TrackMenus } from '../player/TrackMenus';
import { usePlayerPreferences } from '../player/usePlayerPreferences';
import { preferencesFromChoice } from '../player/tracks';
import { formatTime, resumePosition } from '../playback';
import NotFoundPage from './NotFoundPage';

/** What the player starts from: `?t=` when the link says so, else the stored progress (5–90% rule). */
async function startPosition(movieId: string, t: string | null, signal: AbortSignal): Promise<number> {
  if (t !== null && t !== '') {
    const s = Number(t);
    if (Number.isFinite(s) && s >= 0) return s;
  }
  const progress = await getProgress(movieId, signal).catch(() => null);
  return resumePosition(progress) ?? 0;
}

/** `/watch/:id?t=SECONDS`: the HLS player. */
export default function PlayerPage() {
  const id = useParams().id ?? '';
  const [params] = useSearchParams();
  // Read `?t=` once: the start is decided when the page opens, not on every URL change.
  const t = useRef(params.get('t')).current;
  const { state, reload } = useAsync(
    async (signal) => {
      const [movie, start, prefs] = await Promise.all([
        getMovie(id, signal),
        startPosition(id, t, signal),
        // Without them the movie still plays, with its DEFAULT tracks.
        getPreferences(signal).catch(() => DEFAULT_PREFERENCES),
      ]);
      return { movie, start, prefs };
    },
    [id],
  );

  if (state.status === 'error' && (state.code === 'not_found' || state.code === 'bad_movie_id')) {
    return <NotFoundPage />;
  }
  if (state.status !== 'ready') {
    return (
      <Page title="Player" wide>
        {state.status === 'loading' ? <Loading label="Loading the movie…" /> : <Failed message={state.error} onRetry={reload} />}
      </Page>
    );
  }
  return <Player movie={state.data.movie} startAt={state.data.start} prefs={state.data.prefs} />;
}

type Failure = { message: string; code: string | null };

function describeFatal(data: ErrorData): string {
  if (data.type === 'networkError') {
    return `The stream stopped loading (${data.details}). Check your connection, then retry.`;
  }
  if (data.type === 'mediaError') {
    return `The video could not be decoded (${data.details}). Retry to reload it.`;
  }
  return `Playback failed (${data.details}). Retry to reload the stream.`;
}

function Player({ movie, startAt, prefs }: { movie: MovieDetail; startAt: number; prefs: Preferences }) {
  const videoRef = useRef<HTMLVideoElement>(null);
  const frameRef = useRef<HTMLDivElement>(null);
  const saverRef = useRef<ProgressSaver | null>(null);
  const resumeFrom = useRef(startAt);

  const [loading, setLoading] = useState(true);
  const [failure, setFailure] = useState<Failure | null>(null);
  const [fatalCount, setFatalCount] = useState(0);
  const [paused, setPaused] = useState(true);
  const [time, setTime] = useState(startAt);
  const [mediaDuration, setMediaDuration] = useState(0);
  const [volume, setVolume] = useState(1);
  const [muted, setMuted] = useState(false);
  const [buffering, setBuffering] = useState(false);
  const [thumbsUrl, setThumbsUrl] = useState<string | null>(null);
  const [thumbnails, setThumbnails] = useState<Thumbnail[]>([]);
  const { prefsRef, style, changeStyle, store, saveStatus } = usePlayerPreferences(prefs);

  const duration = mediaDuration > 0 ? mediaDuration : (movie.duration_s ?? 0);

  // Progress: saved for the life of the player.
  useEffect(() => {
    const video = videoRef.current;
    if (!video) return;
    const saver = new ProgressSaver(video, {
      knownDuration: movie.duration_s,
      save: (position, dur, keepalive) => putProgress(movie.id, position, dur, { keepalive }),
    }).start();
    saverRef.current = saver;
    return () => {
      saver.stop();
      saverRef.current = null;
    };
  }, [movie.id, movie.duration_s]);

  // The stream (useHlsPlayer): ask for a playback URL, attach hls.js (or native HLS), start at
  // `resumeFrom`; a fatal error saves the position and stops until Retry.
  const fail = (f: Failure) => {
    setLoading(false);
    setFailure(f);
  };
  const autoplay = () => {
    const video = videoRef.current;
    const p = video?.play() as Promise<void> | undefined;
    p?.catch(() => setPaused(true)); // autoplay refused: the Play button is there
  };
  const hls = useHlsPlayer(videoRef, movie.id, {
    startPosition: () => resumeFrom.current,
    preferences: () => prefsRef.current,
    onThumbnails: setThumbsUrl,
    onLoad: () => {
      saverRef.current?.disarm();
      setLoading(true);
      setFailure(null);
    },
    onReady: () => {
      setLoading(false);
      autoplay();
    },
    destroyOnFatal: true,
    onFatal: (data) => {
      setFatalCount((n) => n + 1);
      const video = videoRef.current;
      if (video && video.currentTime > 0) resumeFrom.current = video.currentTime;
      saverRef.current?.save();
      saverRef.current?.disarm();
      fail({ message: describeFatal(data), code: data.details });
    },
    onError: (err) =>
      fail({
        message: errorMessage(err, 'Could not start the movie. Try again.'),
        code: err instanceof ApiError ? err.code : null,
      }),
    onUnsupported: () =>
      fail({ message: 'This browser cannot play HLS video. Try a current Chrome, Firefox, Edge or Safari.', code: 'unsupported' }),
    onMediaError: (error) => fail({ message: `The video could not be played (error ${error.code}).`, code: 'media_error' }),
  });

  const { levels, playingLevel, chosenLevel, chooseLevel, reload, toggleCaptions } = hls;

  // Seek-bar thumbnails, when the movie has an index (a missing or bad one: none).
  useEffect(() => {
    if (!thumbsUrl) return;
    const controller = new AbortController();
    loadThumbnails(thumbsUrl, controller.signal)
      .then(setThumbnails)
      .catch(() => setThumbnails([]));
    return () => controller.abort();
  }, [thumbsUrl]);

  const savePreferences = useCallback(() => {
    const audio = hls.audioTracks[hls.audioTrack] ?? null;
    const subtitle = hls.subtitleTracks[hls.subtitleTrack] ?? null;
    void store(preferencesFromChoice({ ...prefsRef.current, ...style }, audio, subtitle));
  }, [hls.audioTracks, hls.audioTrack, hls.subtitleTracks, hls.subtitleTrack, store, prefsRef, style]);

  // Mirror the media element's state for the controls.
  useEffect(() => {
    const video = videoRef.current;
    if (!video) return;
    const sync = () => {
      setPaused(video.paused);
      setTime(video.currentTime);
      setVolume(video.volume);
      setMuted(video.muted);
      setMediaDuration(Number.isFinite(video.duration) ? video.duration : 0);
    };
    const events = ['play', 'pause', 'timeupdate', 'volumechange', 'durationchange', 'loadedmetadata', 'seeked'];
    for (const e of events) video.addEventListener(e, sync);
    const onWaiting = () => setBuffering(true);
    const onPlaying = () => {
      setBuffering(false);
      setLoading(false);
    };
    video.addEventListener('waiting', onWaiting);
    video.addEventListener('playing', onPlaying);
    return () => {
      for (const e of events) video.removeEventListener(e, sync);
      video.removeEventListener('waiting', onWaiting);
      video.removeEventListener('playing', onPlaying);
    };
  }, []);

  const togglePlay = useCallback(() => {
    const video = videoRef.current;
    if (!video) return;
    if (video.paused) {
      const p = video.play() as Promise<void> | undefined;
      p?.catch(() => undefined);
    } else {
      video.pause();
    }
  }, []);
  const seekTo = useCallback((seconds: number) => {
    const video = videoRef.current;
    if (!video) return;
    const end = Number.isFinite(video.duration) && video.duration > 0 ? video.duration : Infinity;
    video.currentTime = Math.max(0, Math.min(seconds, end));
  }, []);
  const seekBy = useCallback((delta: number) => seekTo((videoRef.current?.currentTime ?? 0) + delta), [seekTo]);
  const changeVolume = useCallback((delta: number) => {
    const video = videoRef.current;
    if (!video) return;
    video.volume = Math.round(Math.max(0, Math.min(1, video.volume + delta)) * 100) / 100;
    if (video.volume > 0) video.muted = false;
  }, []);
  const toggleMute = useCallback(() => {
    const video = videoRef.current;
    if (video) video.muted = !video.muted;
  }, []);
  const toggleFullscreen = useCallback(() => {
    const frame = frameRef.current;
    if (!frame) return;
    if (document.fullscreenElement) void document.exitFullscreen?.().catch(() => undefined);
    else void frame.requestFullscreen?.().catch(() => undefined);
  }, []);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented) return;
      if (handlePlayerKey(e, { togglePlay, seekBy, changeVolume, toggleMute, toggleFullscreen, toggleCaptions })) e.preventDefault();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [togglePlay, seekBy, changeVolume, toggleMute, toggleFullscreen, toggleCaptions]);

  function retry() {
    const video = videoRef.current;
    if (video && video.currentTime > 0) resumeFrom.current = video.currentTime;
    reload();
  }

  const playingLabel = levels.find((l) => l.index === playingLevel)?.label;

  return (
    <Page title={movie.title} wide hideTitle>
      <div className="player-top">
        <Link to={`/movie/${encodeURIComponent(movie.id)}`}>← Back to {movie.title}</Link>
        <h2 className="player-title">{movie.title}</h2>
      </div>
      <div
        ref={frameRef}
        className="player"
        data-testid="player"
        data-state={failure ? 'error' : loading ? 'loading' : paused ? 'paused' : 'playing'}
        data-fatal-errors={fatalCount}
      >
        <video
          ref={videoRef}
          className={`player-video ${captionClasses(style)}`}
          data-testid="player-video"
          playsInline
          preload="auto"
          poster={movie.backdrop_url ?? undefined}
          aria-label={`${movie.title} video`}
          onClick={togglePlay}
        />
        {(loading || buffering) && !failure && (
          <div className="player-overlay" role="status">
            <span className="spinner" aria-hidden="true" />
            {loading ? 'Loading the stream…' : 'Buffering…'}
          </div>
        )}
        {failure && (
          <div className="player-overlay player-error" data-testid="player-error">
            <div role="alert">{failure.message}</div>
            {failure.code === 'email_not_verified' ? (
              <p>
                <Link to="/account">Verify your email</Link> to watch.
              </p>
            ) : (
              <button type="button" className="primary" onClick={retry} data-testid="player-retry">
                Retry
              </button>
            )}
          </div>
        )}
      </div>
      <div className="player-controls" role="group" aria-label="Player controls">
        <button type="button" onClick={togglePlay} data-testid="play-pause" aria-label={paused ? 'Play' : 'Pause'}>
          {paused ? <PlayIcon /> : <PauseIcon />}
        </button>
        <span className="player-time" aria-hidden="true">
          {formatTime(time)} / {formatTime(duration)}
        </span>
        <SeekPreview
          thumbnails={thumbnails}
          min={0}
          max={Math.max(duration, time, 1)}
          step={1}
          value={Math.min(time, Math.max(duration, time))}
          onChange={(e) => seekTo(Number(e.target.value))}
          aria-label="Seek"
          aria-valuetext={`${formatTime(time)} of ${formatTime(duration)}`}
          data-testid="seek"
        />
        <button type="button" onClick={toggleMute} aria-label={muted ? 'Unmute' : 'Mute'} data-testid="mute">
          {muted || volume === 0 ? <MutedIcon /> : <VolumeIcon />}
        </button>
        <input
          className="player-volume"
          type="range"
          min={0}
          max={1}
          step={0.05}
          value={muted ? 0 : volume}
          onChange={(e) => {
            const video = videoRef.current;
            if (!video) return;
            video.volume = Number(e.target.value);
            video.muted = video.volume === 0;
          }}
          aria-label="Volume"
          aria-valuetext={`${Math.round((muted ? 0 : volume) * 100)}%`}
        />
        <label className="player-quality">
          <span>Quality</span>
          <select
            value={chosenLevel}
            onChange={(e) => chooseLevel(Number(e.target.value))}
            disabled={levels.length === 0}
            data-testid="quality-select"
          >
            <option value={-1}>{chosenLevel === -1 && playingLabel ? `Auto (${playingLabel})` : 'Auto'}</option>
            {levels.map((l) => (
              <option key={l.index} value={l.index}>
                {l.label}
              </option>
            ))}
          </select>
        </label>
        <button type="button" onClick={toggleFullscreen} aria-label="Fullscreen" data-testid="fullscreen">
          <FullscreenIcon />
        </button>
      </div>
      <TrackMenus
        audioTracks={hls.audioTracks}
        audioTrack={hls.audioTrack}
        onAudio={hls.chooseAudio}
        subtitleTracks={hls.subtitleTracks}
        subtitleTrack={hls.subtitleTrack}
        onSubtitle={hls.chooseSubtitle}
        style={style}
        onStyle={changeStyle}
        onSave={savePreferences}
        saveStatus={saveStatus}
      />
      <p className="hint keys-hint">
        Keys: Space play/pause · ←/→ 10 s · ↑/↓ volume · F fullscreen · M mute · C captions
      </p>
    </Page>
  );
}
