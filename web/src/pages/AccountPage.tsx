import { useState } from 'react';
import { resendVerification } from '../api/auth';
import { getMe } from '../api/me';
import { ErrorAlert } from '../components/ErrorAlert';
import { Page } from '../components/Page';
import { Loading } from '../components/States';
import { errorMessage, useAsync } from '../hooks/useAsync';
import { useSignOut } from '../hooks/useSignOut';

/** `/account`: who is signed in, the plan, email verification, and sign-out. */
export default function AccountPage() {
  const { state } = useAsync((signal) => getMe(signal), []);
  const { signOut, signingOut } = useSignOut();
  const [resend, setResend] = useState<'idle' | 'sending' | 'sent'>('idle');
  const [resendError, setResendError] = useState<string | null>(null);

  async function onResend(email: string) {
    setResend('sending');
    setResendError(null);
    try {
      await resendVerification(email);
      setResend('sent');
    } catch (err) {
      setResendError(errorMessage(err, 'Could not send the email. Try again.'));
      setResend('idle');
    }
  }

  return (
    <Page title="Account">
      {state.status === 'error' && <ErrorAlert message={state.error} />}
      {state.status === 'loading' && <Loading label="Loading your account…" />}
      {state.status === 'ready' && (
        <>
          <p className="signed-in">
            Signed in as <strong>{state.data.display_name}</strong>
          </p>
          <dl className="details">
            <dt>Email</dt>
            <dd>{state.data.email}</dd>
            <dt>Plan</dt>
            <dd>{state.data.tier === 'premium' ? 'Premium' : 'Free'}</dd>
          </dl>
          {!state.data.email_verified && (
            <div className="notice">
              <p>Your email is not verified yet. Open the link we sent to {state.data.email} to start watching.</p>
              <ErrorAlert message={resendError} />
              {resend === 'sent' ? (
                <p role="status">A new link is on its way.</p>
              ) : (
                <button type="button" onClick={() => onResend(state.data.email)} disabled={resend === 'sending'}>
                  {resend === 'sending' ? 'Sending…' : 'Send the link again'}
                </button>
              )}
            </div>
          )}
        </>
      )}
      <p>
        <button type="button" onClick={signOut} disabled={signingOut}>
          {signingOut ? 'Signing out…' : 'Sign out'}
        </button>
      </p>
    </Page>
  );
}
