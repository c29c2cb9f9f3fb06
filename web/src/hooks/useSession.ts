import { useSyncExternalStore } from 'react';
import * as session from '../session';

/** The current session (or `null`), re-rendering when it changes. */
export function useSession(): session.Session | null {
  return useSyncExternalStore(session.subscribe, session.load, () => null);
}
