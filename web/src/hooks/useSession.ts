import { useSyncExternalStore } from 'react';
import * as session from '../session';

/** The current session (or `null` when signed out or not known yet), re-rendering when it changes. */
export function useSession(): session.Session | null {
  return useSyncExternalStore(session.subscribe, session.load, () => null);
}

/** What is known about the session (`unknown` until the gateway has answered once). */
export function useSessionStatus(): session.SessionStatus {
  return useSyncExternalStore(session.subscribe, session.getStatus, () => 'unknown' as const);
}
