import { useCallback, useState } from 'react';
import { useNavigate } from 'react-router-dom';
import * as session from '../session';

/**
 * Sign out of this site: the gateway revokes the session at the tracker and clears its
 * cookie (best effort), the token is forgotten here and in other tabs, and the viewer
 * lands on `/signed-out` (not straight back into sign-in, which the tracker's single
 * sign-on would complete at once).
 */
export function useSignOut(): { signOut: () => Promise<void>; signingOut: boolean } {
  const navigate = useNavigate();
  const [signingOut, setSigningOut] = useState(false);
  const signOut = useCallback(async () => {
    setSigningOut(true);
    await session.signOut();
    setSigningOut(false);
    navigate('/signed-out', { replace: true });
  }, [navigate]);
  return { signOut, signingOut };
}
