/**
 * The signed-in session: the tracker's token pair, kept in `localStorage` so a
 * reload (or another tab) stays signed in.
 *
 * This is the only module that touches the stored tokens. The API client reads
 * the access token from here and writes refreshed pairs back; React components
 * observe it through `useSession` (a `useSyncExternalStore` subscription), so
 * signing in or out anywhere — including another tab — re-renders the app.
 */
import type { TokenPair } from './api/types';

export const STORAGE_KEY = 'reelnet.session';

export interface Session {
  accessToken: string;
  refreshToken: string;
  tokenType: string;
  /** When the access token expires, in ms since the epoch (client clock). */
  expiresAt: number;
}

type Listener = () => void;
const listeners = new Set<Listener>();

// `load` must return the same object while the stored value is unchanged
// (a `useSyncExternalStore` requirement), so the parsed value is cached by its raw text.
let cachedRaw: string | null | undefined;
let cachedSession: Session | null = null;

function readRaw(): string | null {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage disabled (privacy mode): behave as signed out
  }
}

function parse(raw: string | null): Session | null {
  if (raw === null) return null;
  try {
    const v: unknown = JSON.parse(raw);
    if (
      typeof v === 'object' && v !== null &&
      typeof (v as Session).accessToken === 'string' &&
      typeof (v as Session).refreshToken === 'string' &&
      typeof (v as Session).tokenType === 'string' &&
      typeof (v as Session).expiresAt === 'number'
    ) {
      return v as Session;
    }
  } catch {
    // fall through: a corrupt entry counts as no session
  }
  return null;
}

/** The stored session, or `null` when signed out. */
export function load(): Session | null {
  const raw = readRaw();
  if (raw !== cachedRaw) {
    cachedRaw = raw;
    cachedSession = parse(raw);
  }
  return cachedSession;
}

/** Store a token pair from login or refresh and notify subscribers. */
export function save(pair: TokenPair, now: number = Date.now()): Session {
  const session: Session = {
    accessToken: pair.access_token,
    refreshToken: pair.refresh_token,
    tokenType: pair.token_type || 'Bearer',
    expiresAt: now + pair.expires_in * 1000,
  };
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  } catch {
    // Storage full or disabled: the session lasts for this page only.
    cachedRaw = JSON.stringify(session);
    cachedSession = session;
  }
  emit();
  return load() ?? session;
}

/** Forget the tokens (sign out locally) and notify subscribers. */
export function clear(): void {
  try {
    localStorage.removeItem(STORAGE_KEY);
  } catch {
    // nothing stored
  }
  cachedRaw = undefined;
  emit();
}

/** True when the access token is expired or will be within `skewMs`. */
export function isExpired(session: Session, now: number = Date.now(), skewMs = 30_000): boolean {
  return session.expiresAt - skewMs <= now;
}

/** Call `listener` whenever the session changes, here or in another tab. */
export function subscribe(listener: Listener): () => void {
  listeners.add(listener);
  const onStorage = (e: StorageEvent) => {
    if (e.key === STORAGE_KEY || e.key === null) listener();
  };
  window.addEventListener('storage', onStorage);
  return () => {
    listeners.delete(listener);
    window.removeEventListener('storage', onStorage);
  };
}

function emit(): void {
  for (const l of [...listeners]) l();
}
