import { useCallback, useState } from 'react';
import { useNavigate } from 'react-router-dom';
import { logout } from '../api/auth';
import * as session from '../session';

/** Sign out: revoke the refresh token on the server (best effort), forget it here, go to sign-in. */
export function useSignOut(): { signOut: () => Promise<void>; signingOut: boolean } {
  const navigate = useNavigate();
  const [signingOut, setSigningOut] = useState(false);
  const signOut = useCallback(async () => {
    setSigningOut(true);
    const current = session.load();
    if (current) {
      // Whatever the server says, the user asked to leave and must not stay signed in here.
      await logout(current.refreshToken).catch(() => undefined);
    }
    session.clear();
    setSigningOut(false);
    navigate('/login', { replace: true });
  }, [navigate]);
  return { signOut, signingOut };
}
