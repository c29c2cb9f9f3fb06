/**
 * The network console's views (`/api/v1/admin/*` on the tracker's own origin,
 * tracker/openapi.yaml): members, invites, movie bindings, requests and users. This page
 * runs on the tracker's origin (`/console/network`, served from `[pages] console_dir`):
 * its calls are same-origin and carry the admin's tracker session cookie, never a node
 * token (a node's site gets no network powers).
 */
import { request } from './client';
import type { components } from './generated/tracker';

type S = components['schemas'];
export type NodesView = S['NodesView'];
export type NodeView = S['NodeView'];
export type InviteCreated = S['InviteCreated'];
export type MoviesView = S['MoviesView'];
export type RequestView = S['RequestView'];
export type UserView = S['UserView'];
export type NodeRole = S['NodeRole'];

const opts = { auth: false } as const;

export const nodes = (signal?: AbortSignal) => request<NodesView>('/admin/nodes', { ...opts, signal });
export const movies = (signal?: AbortSignal) => request<MoviesView>('/admin/movies', { ...opts, signal });
export const requests = (signal?: AbortSignal) => request<RequestView[]>('/admin/requests', { ...opts, signal });
export const users = (signal?: AbortSignal) => request<UserView[]>('/admin/users', { ...opts, signal });

export function invite(roles: NodeRole[], uses = 1) {
  return request<InviteCreated>('/admin/nodes/invites', { ...opts, method: 'POST', body: { roles, uses } });
}

export function revoke(nodeId: string) {
  return request<NodeView>(`/admin/nodes/${nodeId}/revoke`, { ...opts, method: 'POST', body: {} });
}

export function setRoles(nodeId: string, roles: NodeRole[]) {
  return request<NodeView>(`/admin/nodes/${nodeId}/roles`, { ...opts, method: 'PUT', body: { roles } });
}

export function bind(movie: string, manifest: string) {
  return request<unknown>(`/admin/movies/${movie}/bind`, { ...opts, method: 'POST', body: { manifest } });
}

export function requestAction(id: string, action: 'approve' | 'reject' | 'retry') {
  return request<RequestView>(`/admin/requests/${id}/${action}`, { ...opts, method: 'POST', body: {} });
}
