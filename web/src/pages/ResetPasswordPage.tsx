import { useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router-dom';
import { confirmPasswordReset } from '../api/auth';
import { ErrorAlert } from '../components/ErrorAlert';
import { Field } from '../components/Field';
import { Page } from '../components/Page';
import { errorMessage } from '../hooks/useAsync';
import * as session from '../session';
import { MIN_PASSWORD_LENGTH, checkNewPassword, collectErrors, focusFirstError, type FieldErrors } from '../validation';

type ResetField = 'password' | 'confirm';
const FIELDS: readonly ResetField[] = ['password', 'confirm'];
const idOf = (f: ResetField) => `reset-${f}`;

/** `/reset-password?token=…`: the target of the tracker's reset email; choose a new password. */
export default function ResetPasswordPage() {
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [errors, setErrors] = useState<FieldErrors<ResetField>>({});
  const [apiError, setApiError] = useState<string | null>(null);
  const [pending, setPending] = useState(false);
  const [done, setDone] = useState(false);

  if (!token) {
    return (
      <Page title="Choose a new password">
        <ErrorAlert message="This reset link is incomplete. Open the link from your email again." />
        <p className="aside">
          <Link to="/forgot-password">Ask for a new link</Link>
        </p>
      </Page>
    );
  }

  if (done) {
    return (
      <Page title="Password changed">
        <p role="status">Your password is changed and every device was signed out.</p>
        <p>
          <Link to="/login">Sign in with the new password</Link>
        </p>
      </Page>
    );
  }

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setApiError(null);
    const found = collectErrors<ResetField>({
      password: checkNewPassword(password),
      confirm: confirm !== password ? 'The passwords do not match.' : undefined,
    });
    setErrors(found);
    if (Object.keys(found).length > 0) {
      focusFirstError(found, FIELDS, idOf);
      return;
    }
    setPending(true);
    try {
      await confirmPasswordReset(token, password);
      // The tracker signed out every session; forget this one too.
      session.clear();
      setDone(true);
    } catch (err) {
      setApiError(errorMessage(err, 'Could not change the password. Try again.'));
    } finally {
      setPending(false);
    }
  }

  return (
    <Page title="Choose a new password">
      <form onSubmit={onSubmit} noValidate aria-busy={pending}>
        <ErrorAlert message={apiError} />
        <Field
          id={idOf('password')}
          label="New password"
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={setPassword}
          error={errors.password}
          hint={`At least ${MIN_PASSWORD_LENGTH} characters.`}
        />
        <Field
          id={idOf('confirm')}
          label="Repeat the new password"
          type="password"
          autoComplete="new-password"
          value={confirm}
          onChange={setConfirm}
          error={errors.confirm}
        />
        <button type="submit" className="primary" disabled={pending}>
          {pending ? 'Saving…' : 'Change password'}
        </button>
      </form>
      {apiError && (
        <p className="aside">
          Link expired or used? <Link to="/forgot-password">Ask for a new one</Link>
        </p>
      )}
    </Page>
  );
}
