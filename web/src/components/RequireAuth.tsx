import { useEffect, type ReactNode } from 'react';
import { useLocation } from 'react-router-dom';
import { useSessionStatus } from '../hooks/useSession';
import * as session from '../session';
import { goToSignIn } from '../signin';
import { Page } from './Page';
import { SignInLink } from './SignInLink';
import { Failed, Loading } from './States';

/**
 * Renders `children` for a signed-in viewer. Anyone else leaves for sign-in (a full-page
 * navigation to the gateway's `/auth/login`, on to the tracker's pages) and comes back
 * here afterwards — unless they signed out here themselves, or just came back from
 * declining at the tracker (`?error=access_denied`, or `?signin_error=…`, on the way back
 * from the gateway's `/auth/callback`): they get a "Sign in" link instead (the tracker would
 * otherwise sign them straight back in, or ask again at once).
 */
export function RequireAuth({ children }: { children: ReactNode }) {
  const location = useLocation();
  const status = useSessionStatus();
  const params = new URLSearchParams(location.search);
  const signInError = params.get('signin_error') ?? params.get('error');
  params.delete('signin_error');
  params.delete('error');
  const rest = params.toString();
  const here = location.pathname + (rest ? `?${rest}` : '') + location.hash;
  const leave = status === 'signed-out' && !session.signedOutByUser() && signInError === null;

  useEffect(() => {
    if (status === 'unknown') void session.ensure();
  }, [status]);
  useEffect(() => {
    if (leave) goToSignIn(here);
  }, [leave, here]);

  if (status === 'signed-in') return <>{children}</>;
  if (status === 'unknown') return <Loading label="Checking your session…" />;
  if (status === 'unreachable') {
    return (
      <Failed
        message="Could not reach the server to check your session. Check your connection and try again."
        onRetry={() => void session.refresh().catch(() => undefined)}
      />
    );
  }
  if (leave) return <Loading label="Taking you to sign in…" />;
  return <SignedOut returnPath={here} reason={signInError} />;
}

/** The signed-out screen: sign in again (at the tracker), then back to `returnPath`. */
export function SignedOut({ returnPath, reason = null }: { returnPath: string; reason?: string | null }) {
  return (
    <Page title="Signed out">
      {reason !== null && (
        <p role="status">
          {reason === 'access_denied'
            ? 'Sign-in was cancelled: this site was not allowed to use your account.'
            : 'Sign-in did not complete. Try again.'}
        </p>
      )}
      <p>You are signed out of this site.</p>
      <p>
        <SignInLink returnPath={returnPath} className="button">
          Sign in
        </SignInLink>
      </p>
      <p className="hint">
        You sign in on the tracker&rsquo;s own site, never on this node&rsquo;s pages. To end every
        session (on every node), open your account there after signing in.
      </p>
    </Page>
  );
}
