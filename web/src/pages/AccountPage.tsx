import { getMe } from '../api/me';
import { ErrorAlert } from '../components/ErrorAlert';
import { Page } from '../components/Page';
import { PlaybackPreferences } from '../components/PlaybackPreferences';
import { Loading } from '../components/States';
import { useAsync } from '../hooks/useAsync';
import { useSignOut } from '../hooks/useSignOut';
import { ACCOUNT_URL } from '../signin';

/**
 * `/account`: who is signed in and their plan, and sign-out. Everything that changes the
 * account (password, passkeys, email verification, sessions, deleting it) happens on the
 * tracker's own site: the link goes through the gateway's `/auth/account`, which redirects
 * there.
 */
export default function AccountPage() {
  const { state } = useAsync((signal) => getMe(signal), []);
  const { signOut, signingOut } = useSignOut();

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
              <p>
                Your email is not verified yet. Open the link we sent to {state.data.email} to start watching; a
                new link can be sent from your account on the tracker&rsquo;s site.
              </p>
            </div>
          )}
          <PlaybackPreferences />
        </>
      )}
      <p>
        <a href={ACCOUNT_URL} className="button" data-testid="manage-account">
          Manage account, password, passkeys and sessions
        </a>
      </p>
      <p className="hint" data-testid="password-notice">
        Your password is only ever typed on the tracker&rsquo;s own site, never on this node&rsquo;s pages. Changing it,
        adding a passkey, ending sessions and deleting your account are done there.
      </p>
      <p>
        <button type="button" onClick={signOut} disabled={signingOut}>
          {signingOut ? 'Signing out…' : 'Sign out'}
        </button>
      </p>
    </Page>
  );
}
