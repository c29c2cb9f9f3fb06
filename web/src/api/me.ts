/** `/api/v1/me`: the signed-in account. */
import { request } from './client';
import type { User } from './types';

/** `GET /me`: who the stored access token belongs to. */
export function getMe(signal?: AbortSignal): Promise<User> {
  return request<User>('/me', signal ? { signal } : {});
}
