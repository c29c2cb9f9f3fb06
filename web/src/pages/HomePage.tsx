import { useEffect, useState } from 'react';
import { Navigate, useLocation, useNavigate } from 'react-router-dom';
import { logout } from '../api/auth';
import { ApiError } from '../api/client';
import { getMe } from '../api/me';
import type { User } from '../api/types';
import { ErrorAlert } from '../components/ErrorAlert';
import { Page } from '../components/Page';
import { useSession } from '../hooks/useSession';
import * as session from '../session';

/** `/`: the signed-in home. For now it says who is signed in and offers sign-out. */
export default function HomePage() {
  const location = useLocation();
  const signedIn = useSession() !== null;
  if (!signedIn) {
    return <Navigate to="/login" replace state={{ from: location }} />;
  }
  return <SignedInHome />;
}

function SignedInHome() {
  const navigate = useNavigate();
  const [user, setUser] = useState<User | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [signingOut, setSigningOut] = useState(false);

  useEffect(() => {
    const controller = new AbortController();
    getMe(controller.signal).then(setUser, (err: unknown) => {
      if (controller.signal.aborted) return;
      setError(err instanceof ApiError ? err.message : 'Could not load your account. Reload to try again.');
    });
    return () => controller.abort();
  }, []);

  async function signOut() {
    setSigningOut(true);
    const current = session.load();
    if (current) {
      // Revoke on the server, but sign out locally whatever it says:
      // the user asked to leave and must not stay signed in on this device.
      await logout(current.refreshToken).catch(() => undefined);
    }
    session.clear();
    navigate('/login', { replace: true });
  }

  return (
    <Page title="Home">
      <ErrorAlert message={error} />
      {user === null && error === null && <p role="status">Loading your account…</p>}
      {user && (
        <>
          <p className="signed-in">
            Signed in as <strong>{user.display_name}</strong>
          </p>
          <dl className="details">
            <dt>Email</dt>
            <dd>{user.email}</dd>
            <dt>Plan</dt>
            <dd>{user.tier === 'premium' ? 'Premium' : 'Free'}</dd>
          </dl>
          {!user.email_verified && (
            <p className="notice">Your email is not verified yet. Open the link we sent to {user.email}.</p>
          )}
        </>
      )}
      <button type="button" onClick={signOut} disabled={signingOut}>
        {signingOut ? 'Signing out…' : 'Sign out'}
      </button>
    </Page>
  );
}
