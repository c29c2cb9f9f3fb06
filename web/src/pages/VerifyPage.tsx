import { useEffect, useRef, useState } from 'react';
import { Link, useSearchParams } from 'react-router-dom';
import { verifyEmail } from '../api/auth';
import { ApiError } from '../api/client';
import { ErrorAlert } from '../components/ErrorAlert';
import { Page } from '../components/Page';
import { useSession } from '../hooks/useSession';

type State = { kind: 'verifying' } | { kind: 'verified' } | { kind: 'failed'; message: string };

/** The target of the link in the verification email: `/verify?token=…`. */
export default function VerifyPage() {
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const signedIn = useSession() !== null;
  const [state, setState] = useState<State>({ kind: 'verifying' });

  // A verification token is single-use, so the request must go out once per token
  // even when React runs the effect twice (StrictMode) — keep it in a ref.
  const inflight = useRef<{ token: string; done: Promise<void> } | null>(null);

  useEffect(() => {
    if (!token) return;
    if (inflight.current?.token !== token) {
      inflight.current = { token, done: verifyEmail(token) };
    }
    let active = true;
    inflight.current.done.then(
      () => active && setState({ kind: 'verified' }),
      (err: unknown) =>
        active &&
        setState({
          kind: 'failed',
          message: err instanceof ApiError ? err.message : 'Verification failed. Try again.',
        }),
    );
    return () => {
      active = false;
    };
  }, [token]);

  if (!token) {
    return (
      <Page title="Verify email">
        <ErrorAlert message="This verification link is incomplete. Open the link from your email again." />
      </Page>
    );
  }

  return (
    <Page title="Verify email">
      {state.kind === 'verifying' && <p role="status">Verifying your email…</p>}
      {state.kind === 'verified' && (
        <>
          <p role="status">Your email is verified.</p>
          <p>{signedIn ? <Link to="/">Continue</Link> : <Link to="/login">Sign in</Link>}</p>
        </>
      )}
      {state.kind === 'failed' && (
        <>
          <ErrorAlert message={state.message} />
          <p className="aside">
            Need a new link? {signedIn ? 'Open' : <><Link to="/login">Sign in</Link> and open</>} your{' '}
            <Link to="/account">Account</Link> page and choose <strong>Send the link again</strong>.
          </p>
        </>
      )}
    </Page>
  );
}
