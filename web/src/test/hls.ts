/**
 * A stand-in for hls.js in component and hook tests: `vi.mock('hls.js', () => import('../test/hls'))`.
 * Every instance is recorded in `instances` (clear it in `beforeEach`); a test plays hls.js's part
 * by emitting its events (`emit('hlsManifestParsed', { levels })`) and reads what the code under
 * test did (`src`, `media`, `config.startPosition`, `currentLevel`, `destroyed`). Set
 * `FakeHls.supported = false` to take the native-HLS path.
 */
export const instances: FakeHls[] = [];

type Handler = (event: string, data: unknown) => void;

export default class FakeHls {
  static Events = {
    MANIFEST_PARSED: 'hlsManifestParsed',
    LEVEL_SWITCHED: 'hlsLevelSwitched',
    ERROR: 'hlsError',
    AUDIO_TRACKS_UPDATED: 'hlsAudioTracksUpdated',
    AUDIO_TRACK_SWITCHED: 'hlsAudioTrackSwitched',
    SUBTITLE_TRACKS_UPDATED: 'hlsSubtitleTracksUpdated',
    SUBTITLE_TRACK_SWITCH: 'hlsSubtitleTrackSwitch',
  };
  static supported = true;
  static isSupported() {
    return FakeHls.supported;
  }
  src: string | null = null;
  media: HTMLMediaElement | null = null;
  destroyed = false;
  currentLevel = -1;
  /** What the test last announced with `emit('hlsAudioTracksUpdated', …)` and friends. */
  audioTracks: unknown[] = [];
  audioTrack = -1;
  subtitleTracks: unknown[] = [];
  subtitleTrack = -1;
  subtitleDisplay = true;
  /** Make the fake pick the DEFAULT subtitle track after SUBTITLE_TRACKS_UPDATED, as hls.js does. */
  autoSubtitle = false;
  private handlers = new Map<string, Handler[]>();
  constructor(readonly config: { startPosition?: number }) {
    instances.push(this);
  }
  on(event: string, fn: Handler) {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), fn]);
  }
  loadSource(src: string) {
    this.src = src;
  }
  attachMedia(media: HTMLMediaElement) {
    this.media = media;
  }
  destroy() {
    this.destroyed = true;
  }
  emit(event: string, data: unknown) {
    if (event === FakeHls.Events.SUBTITLE_TRACKS_UPDATED) {
      // Like hls.js: its own choice (the DEFAULT track) is made right after the event.
      const tracks = (data as { subtitleTracks?: Array<{ default?: boolean }> }).subtitleTracks ?? [];
      queueMicrotask(() => {
        if (this.autoSubtitle) this.subtitleTrack = tracks.findIndex((t) => t.default);
      });
    }
    const d = data as { audioTracks?: unknown[]; subtitleTracks?: unknown[] };
    if (event === FakeHls.Events.AUDIO_TRACKS_UPDATED && d.audioTracks) this.audioTracks = d.audioTracks;
    if (event === FakeHls.Events.SUBTITLE_TRACKS_UPDATED && d.subtitleTracks) this.subtitleTracks = d.subtitleTracks;
    for (const fn of this.handlers.get(event) ?? []) fn(event, data);
  }
}
