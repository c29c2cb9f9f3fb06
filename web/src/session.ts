/**
 * The signed-in session on a node's site (docs/signin.md).
 *
 * Passwords are never typed here: signing in is a full-page trip through the node's
 * gateway (`/auth/login?return=…`) to the tracker's own pages and back. The gateway
 * keeps the refresh token in an HttpOnly cookie the page cannot read; this module
 * holds only the short-lived access token, **in memory**, and gets a fresh one from
 * `POST /auth/session` on start and whenever it is (nearly) expired. Nothing secret is
 * written to storage: a reload simply asks the gateway again.
 *
 * - Concurrent callers share one in-flight `POST /auth/session` (the gateway rotates the
 *   refresh cookie on every use).
 * - `401` from `/auth/session` means signed out.
 * - Other tabs learn "signed out" / "signed in" through a `BroadcastChannel` (or, where
 *   there is none, a `storage` event on a non-secret key) and refetch their own token.
 * - Signing out is `POST /auth/logout` (the gateway revokes the session at the tracker and
 *   clears its cookie), then forgetting the token here.
 *
 * React components observe it through `useSession` / `useSessionStatus`
 * (`useSyncExternalStore` subscriptions).
 */
import type { User } from './api/types';

/** The gateway's session endpoints (same origin as the app, outside `/api/v1`). */
export const SESSION_URL = '/auth/session';
export const LOGOUT_URL = '/auth/logout';

/** Where the token pair of the old password sign-in was kept; removed on load. */
export const LEGACY_STORAGE_KEY = 'reelnet.session';
/** Name of the cross-tab channel (and of the `storage` fallback key). No secrets travel on it. */
export const CHANNEL_NAME = 'reelnet.session';
const SIGNAL_KEY = 'reelnet.session-signal';
/**
 * Set (non-secret) when the viewer signs out here, so no page sends them straight back
 * through sign-in (the tracker's single sign-on would sign them in again at once); cleared
 * when a session is established.
 */
export const SIGNED_OUT_KEY = 'reelnet.signed-out';

/** `POST /auth/session`'s answer. */
export interface SessionResponse {
  access_token: string;
  /** Lifetime of `access_token`, seconds. */
  expires_in: number;
  /** The account the token belongs to. */
  user?: User | null;
  token_type?: string;
}

export interface Session {
  accessToken: string;
  tokenType: string;
  /** When the access token expires, in ms since the epoch (client clock). */
  expiresAt: number;
  /** The account, as the gateway reported it (null if it did not). */
  user: User | null;
}

/**
 * - `unknown`: not asked yet (or asking for the first time);
 * - `signed-in` / `signed-out`: as the gateway said;
 * - `unreachable`: the first question failed (offline, gateway error) — try again.
 */
export type SessionStatus = 'unknown' | 'signed-in' | 'signed-out' | 'unreachable';

/** `POST /auth/session` could not be answered (network failure or a server error). */
export class SessionUnavailableError extends Error {
  override readonly name = 'SessionUnavailableError';
  constructor(readonly status: number) {
    super(status === 0 ? 'Could not reach the server.' : `The server could not check the session (HTTP ${status}).`);
  }
}

type Signal = 'signed-in' | 'signed-out';
type Listener = () => void;

const listeners = new Set<Listener>();
let status: SessionStatus = 'unknown';
let current: Session | null = null;
let inFlight: Promise<Session | null> | null = null;
/** Bumped by every local sign-out, so an answer to an older request cannot sign back in. */
let generation = 0;

// --- storage (non-secret only) --------------------------------------------------------

function storageGet(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function storageSet(key: string, value: string | null): void {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // storage disabled: nothing to remember or forget
  }
}

// Tokens of the old sign-in (kept in localStorage) must not linger on this device.
storageSet(LEGACY_STORAGE_KEY, null);

// --- cross-tab signals ----------------------------------------------------------------

let channel: BroadcastChannel | null = null;
let listeningToStorage = false;

function connect(): void {
  if (channel || listeningToStorage) return;
  if (typeof BroadcastChannel !== 'undefined') {
    channel = new BroadcastChannel(CHANNEL_NAME);
    channel.onmessage = (e: MessageEvent) => onSignal(e.data);
    // Node (tests) keeps the process alive for an open channel; browsers have no unref.
    (channel as unknown as { unref?: () => void }).unref?.();
  } else if (typeof window !== 'undefined') {
    listeningToStorage = true;
    window.addEventListener('storage', (e) => {
      if (e.key !== SIGNAL_KEY || e.newValue === null) return;
      try {
        onSignal((JSON.parse(e.newValue) as { signal?: unknown }).signal);
      } catch {
        // not ours
      }
    });
  }
}

function broadcast(signal: Signal): void {
  connect();
  if (channel) channel.postMessage(signal);
  else storageSet(SIGNAL_KEY, JSON.stringify({ signal, at: Date.now() }));
}

function onSignal(signal: unknown): void {
  if (signal === 'signed-out') {
    clear();
  } else if (signal === 'signed-in' && status !== 'signed-in') {
    refresh().catch(() => undefined);
  }
}

connect();

// --- state ----------------------------------------------------------------------------

function set(nextStatus: SessionStatus, next: Session | null): void {
  if (nextStatus === status && next === current) return;
  status = nextStatus;
  current = next;
  for (const l of [...listeners]) l();
}

/** The session, or `null` when signed out or not known yet. Stable while unchanged. */
export function load(): Session | null {
  return current;
}

/** What is known about the session. */
export function getStatus(): SessionStatus {
  return status;
}

/** True when the access token is expired or will be within `skewMs`. */
export function isExpired(session: Session, now: number = Date.now(), skewMs = 30_000): boolean {
  return session.expiresAt - skewMs <= now;
}

/** Whether the viewer signed out here (so pages offer sign-in instead of going there). */
export function signedOutByUser(): boolean {
  return storageGet(SIGNED_OUT_KEY) !== null;
}

/** Keep `POST /auth/session`'s answer (in memory only) and notify subscribers and other tabs. */
export function save(answer: SessionResponse, now: number = Date.now()): Session {
  const session: Session = {
    accessToken: answer.access_token,
    tokenType: answer.token_type || 'Bearer',
    expiresAt: now + answer.expires_in * 1000,
    user: answer.user ?? null,
  };
  const wasSignedIn = status === 'signed-in';
  storageSet(SIGNED_OUT_KEY, null);
  set('signed-in', session);
  if (!wasSignedIn) broadcast('signed-in');
  return session;
}

/** Forget the access token here (no request, no broadcast) and notify subscribers. */
export function clear(): void {
  generation += 1;
  inFlight = null;
  set('signed-out', null);
}

/**
 * Ask the gateway for a fresh access token (`POST /auth/session`, with its HttpOnly
 * refresh cookie). Concurrent callers share one request. Resolves to the new session,
 * or `null` (and signed out) when the gateway answers 401/403. Rejects with
 * `SessionUnavailableError` when it could not answer, leaving a known session in place.
 */
export function refresh(): Promise<Session | null> {
  if (inFlight) return inFlight;
  const gen = generation;
  const attempt = (async (): Promise<Session | null> => {
    let response: Response;
    try {
      response = await fetch(SESSION_URL, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { Accept: 'application/json' },
      });
    } catch {
      throw new SessionUnavailableError(0);
    }
    if (gen !== generation) return null; // signed out meanwhile
    if (response.status === 401 || response.status === 403) {
      set('signed-out', null);
      return null;
    }
    if (!response.ok) throw new SessionUnavailableError(response.status);
    let body: SessionResponse;
    try {
      body = (await response.json()) as SessionResponse;
    } catch {
      throw new SessionUnavailableError(response.status);
    }
    if (gen !== generation) return null;
    if (typeof body?.access_token !== 'string' || typeof body.expires_in !== 'number') {
      throw new SessionUnavailableError(response.status);
    }
    return save(body);
  })();
  const shared = attempt
    .catch((err: unknown) => {
      if (gen === generation && status === 'unknown') set('unreachable', null);
      throw err;
    })
    .finally(() => {
      if (inFlight === shared) inFlight = null;
    });
  inFlight = shared;
  return shared;
}

/**
 * A usable session for a request: the current one while its token is fresh, else a
 * refreshed one (also on first use); `null` when signed out. Never rejects: when the
 * gateway cannot be asked it resolves to whatever is known.
 */
export async function ensure(skewMs = 30_000): Promise<Session | null> {
  if (status === 'signed-out') return null;
  if (current && !isExpired(current, Date.now(), skewMs)) return current;
  return refresh().catch(() => current);
}

/**
 * The API refused `rejectedToken` (401): a session for one retry. If another caller has
 * already replaced that token, its replacement; otherwise one shared refresh. `null`
 * when signed out (the gateway's 401 signs out).
 */
export async function refreshAfterRejected(rejectedToken: string | null): Promise<Session | null> {
  if (status === 'signed-out') return null;
  if (current && current.accessToken !== rejectedToken && !isExpired(current)) return current;
  return refresh().catch(() => null);
}

/**
 * Sign out: `POST /auth/logout` (best effort: whatever the gateway says, the viewer asked
 * to leave), forget the token, remember that the viewer signed out, tell the other tabs.
 */
export async function signOut(): Promise<void> {
  storageSet(SIGNED_OUT_KEY, String(Date.now()));
  try {
    await fetch(LOGOUT_URL, { method: 'POST', credentials: 'same-origin', headers: { Accept: 'application/json' } });
  } catch {
    // offline: the cookie stays until it expires, but this site forgets the session now
  }
  clear();
  broadcast('signed-out');
}

/** Call `listener` whenever the session changes (here, or through another tab's signal). */
export function subscribe(listener: Listener): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/**
 * Refresh the access token shortly before it expires, for as long as there is a session,
 * so requests never wait for a refresh and the last progress write on page close (which
 * cannot wait for one) carries a valid token. Returns a stop function. A failed attempt
 * (offline) is retried every 30 s; a 401 signs out, which ends the loop.
 */
export function keepFresh(leadMs = 60_000): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const schedule = () => {
    clearTimeout(timer);
    const s = current;
    if (!s) return;
    // A little jitter so several open tabs do not all refresh at the same instant.
    const delay = Math.max(0, s.expiresAt - leadMs - Date.now()) + Math.random() * 5_000;
    timer = setTimeout(() => {
      const now = current;
      if (!now) return;
      if (!isExpired(now, Date.now(), leadMs)) return schedule(); // refreshed meanwhile
      refresh().catch(() => {
        timer = setTimeout(schedule, 30_000);
      });
    }, delay);
  };
  schedule();
  const unsubscribe = subscribe(schedule);
  return () => {
    clearTimeout(timer);
    unsubscribe();
  };
}

/** App start: ask the gateway whether there is a session, and keep its token fresh. */
export function start(): () => void {
  refresh().catch(() => undefined);
  return keepFresh();
}

/** Tests only: back to a known state without touching the network or other tabs. */
export function resetForTests(to: 'unknown' | 'signed-out' = 'signed-out'): void {
  generation += 1;
  inFlight = null;
  status = to;
  current = null;
  storageSet(SIGNED_OUT_KEY, null);
  for (const l of [...listeners]) l();
}
