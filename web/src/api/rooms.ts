/**
 * Watch-party rooms on the tracker (through the node's proxy): create and read a room over
 * HTTP, and `RoomConnection`, the room's WebSocket (token in the query string, since browsers
 * cannot set headers on a WebSocket), with clock-sync pings and automatic reconnects.
 */
import * as session from '../session';
import { ClockSync } from '../sync/clock';
import type { PlayState } from '../sync/drift';
import { API_BASE, request } from './client';

export interface RoomMember {
  user_id: string;
  name: string;
  host: boolean;
  buffering: boolean;
}

export interface Room {
  id: string;
  movie_id: string;
  host: string;
  host_name: string;
  anyone_can_control: boolean;
  created_at: number;
  invite_url: string;
  ws_path: string;
  state: PlayState;
  seq: number;
  members: RoomMember[];
}

/** Frames the server sends. */
export type ServerFrame =
  | { type: 'welcome'; you: string; room: Room; server_time: number }
  | { type: 'pong'; t0: number; t1: number; t2: number }
  | { type: 'state'; state: PlayState; seq: number; by: string | null; reason: string }
  | { type: 'members'; members: RoomMember[]; event: string; user_id: string }
  | { type: 'chat'; user_id: string; name: string; text: string; at: number }
  | { type: 'settings'; anyone_can_control: boolean }
  | { type: 'error'; code: string; message: string };

/** Frames the client sends. */
export type ClientFrame =
  | { type: 'ping'; t0: number; rtt?: number }
  | { type: 'play'; position?: number }
  | { type: 'pause'; position?: number }
  | { type: 'seek'; position: number }
  | { type: 'buffering' }
  | { type: 'ready' }
  | { type: 'chat'; text: string }
  | { type: 'settings'; anyone_can_control: boolean };

/** `POST /rooms`: host a room for a movie (premium hosts, when the tracker says so). */
export function createRoom(movieId: string, anyoneCanControl = false): Promise<Room> {
  return request<Room>('/rooms', {
    method: 'POST',
    body: { movie_id: movieId, anyone_can_control: anyoneCanControl },
  });
}

/** `GET /rooms/{id}`. */
export function getRoom(id: string, signal?: AbortSignal): Promise<Room> {
  return request<Room>(`/rooms/${encodeURIComponent(id)}`, signal ? { signal } : {});
}

/** The link a guest opens to join (on whichever node they use). */
export function inviteLink(id: string, origin: string = window.location.origin): string {
  return `${origin}/room/${encodeURIComponent(id)}`;
}

export type ConnectionStatus = 'connecting' | 'open' | 'closed';

/**
 * One member's connection to a room: reconnects with backoff until `close()`, pings every
 * second for the first 8 pongs of a connection and every 3 s after that.
 */
export class RoomConnection {
  readonly clock = new ClockSync(8);
  private ws: WebSocket | null = null;
  private closed = false;
  private attempt = 0;
  private pongs = 0;
  private pingTimer: ReturnType<typeof setTimeout> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly roomId: string,
    private readonly onFrame: (frame: ServerFrame) => void,
    private readonly onStatus: (status: ConnectionStatus) => void = () => {},
  ) {
    void this.open();
  }

  private async open(): Promise<void> {
    if (this.closed) return;
    this.onStatus('connecting');
    // A fresh access token (refreshed first when it is about to expire).
    const token = (await session.ensure())?.accessToken ?? '';
    const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${window.location.host}${API_BASE}/rooms/${encodeURIComponent(this.roomId)}/ws?access_token=${encodeURIComponent(token)}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    this.pongs = 0;
    ws.onopen = () => {
      this.attempt = 0;
      this.onStatus('open');
      this.ping();
    };
    ws.onmessage = (ev) => {
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(ev.data)) as ServerFrame;
      } catch {
        return;
      }
      if (frame.type === 'pong') {
        this.clock.add(frame.t0, frame.t1, frame.t2, Date.now());
        this.pongs += 1;
      }
      this.onFrame(frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.pingTimer) clearTimeout(this.pingTimer);
      this.onStatus('closed');
      if (this.closed) return;
      const delay = Math.min(5000, 250 * 2 ** this.attempt);
      this.attempt += 1;
      this.retryTimer = setTimeout(() => void this.open(), delay);
    };
  }

  private ping(): void {
    if (this.closed || !this.ws) return;
    const rtt = this.clock.count > 0 ? this.clock.rtt() : undefined;
    this.send({ type: 'ping', t0: Date.now(), ...(rtt !== undefined ? { rtt } : {}) });
    this.pingTimer = setTimeout(() => this.ping(), this.pongs < 8 ? 1000 : 3000);
  }

  /** Sends a frame when connected (dropped otherwise: the state resyncs on reconnect). */
  send(frame: ClientFrame): void {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  /** The server's time now, ms since the epoch. */
  serverNow(): number {
    return this.clock.serverNow(Date.now());
  }

  close(): void {
    this.closed = true;
    if (this.pingTimer) clearTimeout(this.pingTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.ws?.close();
    this.ws = null;
  }
}
