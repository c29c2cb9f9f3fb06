import { useEffect } from 'react';
import { Navigate, useSearchParams } from 'react-router-dom';
import { Page } from '../components/Page';
import { SignInLink } from '../components/SignInLink';
import { Loading } from '../components/States';
import { useSessionStatus } from '../hooks/useSession';
import { goToSignIn, safeReturnPath } from '../signin';

/**
 * `/login` (and the old `/register`, `/verify`, `/forgot-password`, `/reset-password`):
 * this site takes no credentials, so these only send the browser on to sign in at the
 * tracker (`/auth/login?return=…`), whose pages also register, verify and reset. `/login`
 * comes back to its `return` parameter; the others to `/`. Tokens in the old links' query
 * (`?token=`) are never read or passed on.
 */
export default function SignInRedirectPage({ keepReturn = false }: { keepReturn?: boolean }) {
  const [params] = useSearchParams();
  const status = useSessionStatus();
  const returnPath = keepReturn ? safeReturnPath(params.get('return')) : '/';
  const signedIn = status === 'signed-in';

  useEffect(() => {
    if (!signedIn) goToSignIn(returnPath);
  }, [signedIn, returnPath]);

  if (signedIn) return <Navigate to={returnPath} replace />;
  return (
    <Page title="Sign in">
      <Loading label="Taking you to sign in…" />
      <p className="hint">
        Passwords are only typed on the tracker&rsquo;s own site. If nothing happens,{' '}
        <SignInLink returnPath={returnPath}>continue to sign in</SignInLink>.
      </p>
    </Page>
  );
}
