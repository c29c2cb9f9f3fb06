/**
 * The HTTP core of the typed API client: one `request<T>()` that every resource
 * module (`auth.ts`, `me.ts`, …) goes through.
 *
 * It owns the wire conventions of the tracker's API, so callers never see them:
 * - paths are relative to `/api/v1` on the page's own origin (the node gateway
 *   proxies the tracker there);
 * - bodies go out and come back as JSON;
 * - the stored access token is sent as `Authorization: Bearer …`; an expired one
 *   is refreshed first, and a `401` triggers one refresh-and-retry;
 * - every failure becomes an `ApiError`: the server's `{ error, message }` when
 *   it sent one, otherwise a code and message that say what to do.
 */
import * as session from '../session';
import type { ErrorBody, TokenPair } from './types';

/** Where the tracker's API lives, relative to the page's origin. */
export const API_BASE = '/api/v1';

/** Codes the client itself produces (the server's own codes pass through unchanged). */
export const CLIENT_ERROR = {
  /** The request never got an HTTP answer (offline, DNS, gateway down). */
  network: 'network_error',
  /** The server answered with a body the client could not read. */
  badResponse: 'bad_response',
} as const;

/**
 * A failed API call: HTTP `status` (0 when there was no answer), a `code`, a readable
 * `message`, and `movieId` when the server names a movie to go to instead.
 */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The movie the error is about, when the server names one (409 `already_available`). */
    readonly movieId?: string,
  ) {
    super(message);
  }
}

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RequestOptions {
  method?: Method;
  /** Sent as JSON. */
  body?: unknown;
  signal?: AbortSignal;
  /**
   * Send the stored access token (and refresh it when needed). Default `true`;
   * the `auth/*` endpoints that take credentials in the body turn it off.
   */
  auth?: boolean;
  /**
   * Let the request outlive the page (`fetch(…, { keepalive: true })`): for the
   * last progress write when the tab is hidden or closed.
   */
  keepalive?: boolean;
}

/**
 * Call `API_BASE + path` and return the parsed JSON body as `T`
 * (`undefined` for `204 No Content` or an empty body).
 *
 * @throws ApiError for any non-2xx answer, network failure or unreadable body.
 *   An abort through `signal` rejects with the platform's `AbortError` instead.
 */
export async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const useAuth = options.auth ?? true;

  let current = useAuth ? session.load() : null;
  if (current && session.isExpired(current)) {
    current = await refreshSession(current).catch(() => session.load());
  }

  let response = await send(path, options, current);
  if (response.status === 401 && current) {
    // The token may have expired or been rotated since we checked: refresh once and retry.
    const refreshed = await refreshSession(current).catch(() => null);
    if (refreshed) response = await send(path, options, refreshed);
  }
  return readResponse<T>(response);
}

async function send(
  path: string,
  options: RequestOptions,
  auth: session.Session | null,
): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth) headers.Authorization = `Bearer ${auth.accessToken}`;

  const init: RequestInit = { method: options.method ?? 'GET', headers };
  if (options.body !== undefined) init.body = JSON.stringify(options.body);
  if (options.signal) init.signal = options.signal;
  if (options.keepalive) init.keepalive = true;

  try {
    return await fetch(API_BASE + path, init);
  } catch (err) {
    if (options.signal?.aborted) throw err;
    throw new ApiError(
      0,
      CLIENT_ERROR.network,
      'Could not reach the server. Check your connection and try again.',
    );
  }
}

async function readResponse<T>(response: Response): Promise<T> {
  const text = await response.text().catch(() => '');

  if (response.ok) {
    if (response.status === 204 || text.trim() === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(
        response.status,
        CLIENT_ERROR.badResponse,
        'The server sent a response the app could not read. Try again later.',
      );
    }
  }

  const body = parseErrorBody(text);
  if (body) throw new ApiError(response.status, body.error, body.message, body.movie_id);
  throw new ApiError(response.status, `http_${response.status}`, fallbackMessage(response.status));
}

function parseErrorBody(text: string): ErrorBody | null {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === 'object' && v !== null) {
      const { error, message, movie_id } = v as Partial<Record<keyof ErrorBody, unknown>>;
      if (typeof error === 'string' && typeof message === 'string') {
        return typeof movie_id === 'string' ? { error, message, movie_id } : { error, message };
      }
    }
  } catch {
    // not JSON (e.g. a proxy's HTML error page)
  }
  return null;
}

function fallbackMessage(status: number): string {
  if (status === 401) return 'Your session has ended. Sign in again.';
  if (status === 403) return 'You do not have access to this.';
  if (status === 404) return 'Not found.';
  if (status === 429) return 'Too many requests. Wait a moment and try again.';
  if (status >= 500) return `The server had a problem (HTTP ${status}). Try again in a moment.`;
  return `The request failed (HTTP ${status}).`;
}

// One refresh at a time: concurrent 401s share the same exchange, because the
// tracker rotates refresh tokens and a second use of the old one would fail (and,
// as a reuse, revoke the whole session). Across tabs the exchange runs under a
// Web Lock where the browser has them, and a tab that finds the stored pair
// already rotated by another tab uses that instead of refreshing again.
let refreshing: Promise<session.Session | null> | null = null;

function withRefreshLock<T>(fn: () => Promise<T>): Promise<T> {
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
  return locks?.request ? (locks.request('reelnet.refresh', fn) as unknown as Promise<T>) : fn();
}

/**
 * Exchange the stored refresh token for a new pair and store it. Resolves to the
 * new session, or `null` (and signs out) when the server rejects the refresh token.
 * Rejects with `ApiError` only when the server could not be asked (network, 5xx),
 * leaving the session in place.
 */
function refreshSession(current: session.Session): Promise<session.Session | null> {
  refreshing ??= withRefreshLock(async () => {
    const latest = session.load();
    if (latest === null) return null; // signed out meanwhile (here or in another tab)
    if (latest.refreshToken !== current.refreshToken && !session.isExpired(latest)) {
      return latest; // another tab already rotated it
    }
    const response = await send(
      '/auth/refresh',
      { method: 'POST', body: { refresh_token: latest.refreshToken } },
      null,
    );
    if (response.status >= 400 && response.status < 500) {
      session.clear();
      return null;
    }
    return session.save(await readResponse<TokenPair>(response));
  }).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/**
 * Refresh the access token shortly before it expires, for as long as there is a
 * session, so requests never wait for a refresh and the last progress write on
 * page close (which cannot wait for one) carries a valid token. Returns a stop
 * function. A failed attempt (offline) is retried every 30 s; a rejected refresh
 * token signs out, which ends the loop.
 */
export function keepSessionFresh(leadMs = 60_000): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const schedule = () => {
    clearTimeout(timer);
    const current = session.load();
    if (!current) return;
    // A little jitter so several open tabs do not all reach for the lock at once.
    const delay = Math.max(0, current.expiresAt - leadMs - Date.now()) + Math.random() * 5_000;
    timer = setTimeout(() => {
      const now = session.load();
      if (!now) return;
      if (!session.isExpired(now, Date.now(), leadMs)) return schedule(); // refreshed elsewhere
      refreshSession(now).catch(() => {
        timer = setTimeout(schedule, 30_000);
      });
    }, delay);
  };
  schedule();
  const unsubscribe = session.subscribe(schedule);
  return () => {
    clearTimeout(timer);
    unsubscribe();
  };
}
