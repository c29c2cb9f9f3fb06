import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useParams } from 'react-router-dom';
import { DEFAULT_PREFERENCES, getPreferences } from '../api/preferences';
import { getRoom, inviteLink, RoomConnection, type ConnectionStatus, type Room, type RoomMember } from '../api/rooms';
import type { Preferences } from '../api/types';
import { Page } from '../components/Page';
import { Failed, Loading } from '../components/States';
import { useAsync } from '../hooks/useAsync';
import { useHlsPlayer } from '../hooks/useHlsPlayer';
import { handlePlayerKey } from '../player/keys';
import { captionClasses, TrackMenus } from '../player/TrackMenus';
import { preferencesFromChoice } from '../player/tracks';
import { usePlayerPreferences } from '../player/usePlayerPreferences';
import { formatTime } from '../playback';
import { SyncController, type SyncStatus } from '../sync/controller';
import NotFoundPage from './NotFoundPage';

interface ChatLine {
  key: number;
  name: string;
  text: string;
}

/** `/room/:id`: a watch party — the synchronised player, who is here, chat, and the sync indicator. */
export default function RoomPage() {
  const id = useParams().id ?? '';
  const { state, reload } = useAsync(
    async (signal) => {
      // Each member's own preferences pick their own tracks; only time and play state are shared.
      const [room, prefs] = await Promise.all([getRoom(id, signal), getPreferences(signal).catch(() => DEFAULT_PREFERENCES)]);
      return { room, prefs };
    },
    [id],
  );
  if (state.status === 'error' && state.code === 'not_found') return <NotFoundPage />;
  if (state.status !== 'ready') {
    return (
      <Page title="Watch party" wide>
        {state.status === 'loading' ? <Loading label="Joining the room…" /> : <Failed message={state.error} onRetry={reload} />}
      </Page>
    );
  }
  return <RoomView room={state.data.room} prefs={state.data.prefs} />;
}

const noop = () => undefined;

function RoomView({ room, prefs }: { room: Room; prefs: Preferences }) {
  const videoRef = useRef<HTMLVideoElement>(null);
  const connRef = useRef<RoomConnection | null>(null);
  const syncRef = useRef<SyncController | null>(null);
  const [me, setMe] = useState<string | null>(null);
  const [members, setMembers] = useState<RoomMember[]>(room.members);
  const [anyone, setAnyone] = useState(room.anyone_can_control);
  const [chat, setChat] = useState<ChatLine[]>([]);
  const [draft, setDraft] = useState('');
  const [notice, setNotice] = useState<string | null>(null);
  const [conn, setConn] = useState<ConnectionStatus>('connecting');
  const [sync, setSync] = useState<SyncStatus>({ driftMs: null, playing: false, buffering: false });
  const [rtt, setRtt] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [duration, setDuration] = useState(0);

  const { prefsRef, style, changeStyle, store, saveStatus } = usePlayerPreferences(prefs);

  // The stream (useHlsPlayer), from the start: the sync controller seeks and plays it. The
  // audio and subtitle tracks are this member's own choice (never sent to the room).
  const hls = useHlsPlayer(videoRef, room.movie_id, {
    preferences: () => prefsRef.current,
    onFatal: (data) => setError(`playback failed: ${data.details}`),
    onError: (err) => setError(err instanceof Error ? err.message : String(err)),
  });
  const { toggleCaptions } = hls;
  useEffect(() => {
    // `c` only: the room's play/seek controls are shared and stay on their buttons.
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented || (e.key !== 'c' && e.key !== 'C')) return;
      const actions = { togglePlay: noop, seekBy: noop, changeVolume: noop, toggleMute: noop, toggleFullscreen: noop, toggleCaptions };
      if (handlePlayerKey(e, actions)) e.preventDefault();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [toggleCaptions]);
  const savePreferences = () => {
    const audio = hls.audioTracks[hls.audioTrack] ?? null;
    const subtitle = hls.subtitleTracks[hls.subtitleTrack] ?? null;
    void store(preferencesFromChoice({ ...prefsRef.current, ...style }, audio, subtitle));
  };

  // The room connection and the sync loop.
  useEffect(() => {
    const video = videoRef.current;
    if (!video) return;
    let lines = 0;
    const connection = new RoomConnection(
      room.id,
      (f) => {
        switch (f.type) {
          case 'welcome':
            setMe(f.you);
            setMembers(f.room.members);
            setAnyone(f.room.anyone_can_control);
            syncRef.current?.apply(f.room.state, f.room.seq);
            break;
          case 'state':
            syncRef.current?.apply(f.state, f.seq);
            if (f.reason === 'waiting') setNotice('Waiting for everyone to buffer…');
            else if (f.reason === 'ready_timeout') setNotice('Went on without a slow member.');
            else setNotice(null);
            break;
          case 'members':
            setMembers(f.members);
            break;
          case 'chat':
            lines += 1;
            setChat((c) => [...c.slice(-99), { key: lines, name: f.name, text: f.text }]);
            break;
          case 'settings':
            setAnyone(f.anyone_can_control);
            break;
          case 'pong':
            setRtt(Math.round(connection.clock.rtt()));
            break;
          case 'error':
            setNotice(f.message);
            break;
        }
      },
      setConn,
    );
    connRef.current = connection;
    const controller = new SyncController(video, connection, setSync);
    syncRef.current = controller;
    // Exposed for the browser test and for debugging.
    (window as unknown as { __room?: unknown }).__room = {
      drift: () => controller.drift(),
      expected: () => controller.expected(),
      offset: () => connection.clock.offset(),
      rtt: () => connection.clock.rtt(),
    };
    return () => {
      controller.stop();
      connection.close();
    };
  }, [room.id]);

  const isHost = me !== null && me === room.host;
  const canControl = isHost || anyone;
  const send = connRef.current;
  const position = () => syncRef.current?.expected() ?? 0;
  const seekBy = (d: number) => send?.send({ type: 'seek', position: Math.max(0, position() + d) });
  const playing = sync.playing;

  const onChat = (e: FormEvent) => {
    e.preventDefault();
    const text = draft.trim();
    if (!text) return;
    send?.send({ type: 'chat', text });
    setDraft('');
  };

  const drift = sync.driftMs;
  const inSync = drift !== null && Math.abs(drift) < 100;
  return (
    <Page title="Watch party" wide>
      <div className="room">
        <div className="room-player">
          <video
            ref={videoRef}
            data-testid="room-video"
            className={captionClasses(style)}
            playsInline
            onLoadedMetadata={(e) => setDuration(e.currentTarget.duration)}
            onClick={() => syncRef.current?.unblock()}
          />
          {error && <p role="alert">{error}</p>}
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
          <div className="room-controls">
            {canControl ? (
              <>
                <button
                  type="button"
                  data-testid="room-play"
                  onClick={() => send?.send(playing ? { type: 'pause' } : { type: 'play' })}
                >
                  {playing ? 'Pause' : 'Play'}
                </button>
                <button type="button" data-testid="room-back" onClick={() => seekBy(-10)}>
                  −10 s
                </button>
                <button type="button" data-testid="room-forward" onClick={() => seekBy(30)}>
                  +30 s
                </button>
                <input
                  type="range"
                  aria-label="Seek"
                  min={0}
                  max={Math.max(1, Math.floor(duration || 1))}
                  step={1}
                  value={Math.floor(position())}
                  onChange={(e) => send?.send({ type: 'seek', position: Number(e.currentTarget.value) })}
                />
              </>
            ) : (
              <span>The host controls playback.</span>
            )}
            <span className="room-time">{formatTime(position())}</span>
            {isHost && (
              <label>
                <input
                  type="checkbox"
                  checked={anyone}
                  onChange={(e) => send?.send({ type: 'settings', anyone_can_control: e.currentTarget.checked })}
                />{' '}
                Anyone can control
              </label>
            )}
          </div>
          <p className="room-sync" data-testid="sync-indicator" aria-live="polite">
            {conn !== 'open'
              ? conn === 'connecting'
                ? 'Connecting…'
                : 'Reconnecting…'
              : drift === null
                ? 'Syncing…'
                : `${inSync ? 'In sync' : 'Catching up'} · drift ${drift} ms · RTT ${rtt} ms`}
            {sync.buffering && ' · buffering'}
          </p>
          {notice && <p className="room-notice">{notice}</p>}
        </div>
        <aside className="room-side">
          <p>
            Invite link:{' '}
            <input readOnly aria-label="Invite link" data-testid="invite-link" value={inviteLink(room.id)} onFocus={(e) => e.currentTarget.select()} />
          </p>
          <h2>Here now</h2>
          <ul data-testid="room-members">
            {members.map((m, i) => (
              <li key={`${m.user_id}-${i}`}>
                {m.name}
                {m.host && ' (host)'}
                {m.user_id === me && ' (you)'}
                {m.buffering && ' · buffering'}
              </li>
            ))}
          </ul>
          <h2>Chat</h2>
          <ul className="room-chat" data-testid="room-chat">
            {chat.map((l) => (
              <li key={l.key}>
                <strong>{l.name}:</strong> {l.text}
              </li>
            ))}
          </ul>
          <form onSubmit={onChat}>
            <input aria-label="Message" maxLength={500} value={draft} onChange={(e) => setDraft(e.currentTarget.value)} />
            <button type="submit">Send</button>
          </form>
        </aside>
      </div>
    </Page>
  );
}
