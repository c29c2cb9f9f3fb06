/**
 * Movie requests, notifications and the subscription (`/api/v1/requests`,
 * `/api/v1/me/notifications`, `/api/v1/me/subscription` in tracker/openapi.yaml).
 */
import { ApiError, request } from './client';

export type RequestState =
  | 'pending'
  | 'open'
  | 'claimed'
  | 'downloading'
  | 'transcoding'
  | 'ready'
  | 'failed'
  | 'rejected';

/** A movie request as its requesters see it. */
export interface MovieRequest {
  id: string;
  tmdb_id: number;
  title: string | null;
  year: number | null;
  state: RequestState;
  /** 0–100 while downloading or transcoding. */
  percent: number;
  reason: string | null;
  movie_id: string | null;
  requesters: number;
  has_source: boolean;
  created_at_ms: number;
  updated_at_ms: number;
}

export interface NewRequest {
  tmdb_id: number;
  title?: string;
  year?: number;
  magnet?: string;
  torrent_base64?: string;
}

export interface Subscription {
  tier: 'free' | 'premium';
  until: number | null;
  status: 'active' | 'expired' | 'none';
  premium_features: string[];
  request_quota: number;
  requests_used: number;
}

export interface AppNotification {
  id: string;
  kind: string;
  message: string;
  link: string | null;
  request_id: string | null;
  created_at_ms: number;
}

/** `POST /requests`: asks for a movie (or joins the open request for it). */
export function createRequest(body: NewRequest, signal?: AbortSignal): Promise<MovieRequest> {
  return request<MovieRequest>('/requests', { method: 'POST', body, ...(signal ? { signal } : {}) });
}

/**
 * The movie a request was refused for because the network has it already (409
 * `already_available` names it): the caller goes to its page instead. `null` otherwise.
 */
export function alreadyAvailable(err: unknown): string | null {
  if (err instanceof ApiError && err.status === 409 && err.code === 'already_available' && err.movieId) {
    return err.movieId;
  }
  return null;
}

/** The app's page of movie `movieId`. */
export function moviePath(movieId: string): string {
  return `/movie/${encodeURIComponent(movieId)}`;
}

/** `GET /requests`: the signed-in user's requests, newest first. */
export function getMyRequests(signal?: AbortSignal): Promise<MovieRequest[]> {
  return request<MovieRequest[]>('/requests', signal ? { signal } : {});
}

/** `GET /me/subscription` */
export function getSubscription(signal?: AbortSignal): Promise<Subscription> {
  return request<Subscription>('/me/subscription', signal ? { signal } : {});
}

/** `GET /me/notifications` */
export function getNotifications(signal?: AbortSignal): Promise<AppNotification[]> {
  return request<AppNotification[]>('/me/notifications', signal ? { signal } : {});
}

/** A short human label for a request's state. */
export function stateLabel(r: Pick<MovieRequest, 'state' | 'percent' | 'reason'>): string {
  switch (r.state) {
    case 'pending':
      return 'Waiting for approval';
    case 'open':
      return 'Waiting for a node';
    case 'claimed':
      return 'Starting';
    case 'downloading':
      return `Downloading ${Math.round(r.percent)}%`;
    case 'transcoding':
      return `Preparing ${Math.round(r.percent)}%`;
    case 'ready':
      return 'Ready to watch';
    case 'failed':
      return `Failed${r.reason ? `: ${r.reason}` : ''}`;
    case 'rejected':
      return `Declined${r.reason ? `: ${r.reason}` : ''}`;
  }
}
