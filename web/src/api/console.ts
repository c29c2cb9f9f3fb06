/**
 * The operator console's node views (`/api/v1/console/*` on the node's own origin,
 * node/openapi.yaml): this node's status, its last hour of metrics and its ingest jobs.
 * Network admins and this node's operators only; everyone else gets 403 `not_operator`.
 */
import * as session from '../session';
import { ApiError, request } from './client';
import type { components } from './generated/node';

type S = components['schemas'];
export type ConsoleAccess = S['ConsoleAccess'];
export type ConsoleStatus = S['ConsoleStatus'];
export type ConsoleHistory = S['ConsoleHistory'];
export type ConsoleSample = S['ConsoleSample'];
export type ConsoleJob = S['ConsoleJob'];

/** Who the viewer is to this node; `null` when they may not use its console. */
export async function access(signal?: AbortSignal): Promise<ConsoleAccess | null> {
  try {
    return await request<ConsoleAccess>('/console/access', { signal });
  } catch (err) {
    if (err instanceof ApiError && (err.status === 403 || err.status === 401)) return null;
    throw err;
  }
}

export const status = (signal?: AbortSignal) => request<ConsoleStatus>('/console/status', { signal });
export const history = (signal?: AbortSignal) => request<ConsoleHistory>('/console/history', { signal });
export const jobs = (signal?: AbortSignal) => request<ConsoleJob[]>('/console/jobs', { signal });

/** Starts an ingest from a magnet link or a file path on the node. */
export function startJob(source: string, title?: string, year?: number) {
  const body: { source: string; title?: string; year?: number } = { source };
  if (title) body.title = title;
  if (year) body.year = year;
  return request<{ id: number }>('/console/jobs', { method: 'POST', body });
}

export function cancelJob(id: number) {
  return request<{ id: number; cancelled: boolean }>(`/console/jobs/${id}/cancel`, { method: 'POST' });
}

/** Starts an ingest from an uploaded `.torrent` file (sent as the request body). */
export async function uploadTorrent(file: Blob, title?: string): Promise<{ id: number }> {
  const current = await session.ensure();
  const query = title ? `?title=${encodeURIComponent(title)}` : '';
  let response: Response;
  try {
    response = await fetch(`/api/v1/console/jobs/torrent${query}`, {
      method: 'POST',
      headers: {
        Accept: 'application/json',
        'Content-Type': 'application/x-bittorrent',
        ...(current ? { Authorization: `Bearer ${current.accessToken}` } : {}),
      },
      body: file,
    });
  } catch {
    throw new ApiError(0, 'network_error', 'Could not reach the server. Check your connection and try again.');
  }
  const text = await response.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  if (response.ok) return body as { id: number };
  const e = body as { error?: string; message?: string } | null;
  throw new ApiError(response.status, e?.error ?? `http_${response.status}`, e?.message ?? 'The upload failed.');
}
