/**
 * The HTTP core of the typed API client: one `request<T>()` that every resource
 * module (`me.ts`, `catalog.ts`, …) goes through.
 *
 * It owns the wire conventions of the tracker's API, so callers never see them:
 * - paths are relative to `/api/v1` on the page's own origin (the node gateway
 *   proxies the tracker there);
 * - bodies go out and come back as JSON;
 * - the in-memory access token (`session.ts`) is sent as `Authorization: Bearer …`;
 *   an expired one is refreshed first (`POST /auth/session`), and a `401` triggers one
 *   shared refresh and one retry; when the gateway says there is no session any more,
 *   the app is signed out and the `401` is the caller's answer;
 * - every failure becomes an `ApiError`: the server's `{ error, message }` when
 *   it sent one, otherwise a code and message that say what to do.
 */
import * as session from '../session';
import type { ErrorBody } from './types';

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
  /** Send the access token (and refresh it when needed). Default `true`. */
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

  const current = useAuth ? await session.ensure() : null;
  let response = await send(path, options, current);
  if (response.status === 401 && useAuth) {
    // The token may have expired or been replaced since we looked: one shared refresh, one retry.
    // A 401 from the gateway's /auth/session signs out (and RequireAuth takes over).
    const refreshed = await session.refreshAfterRejected(current?.accessToken ?? null);
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
