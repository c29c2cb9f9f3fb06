import { useState, type FormEvent } from 'react';
import { Link } from 'react-router-dom';
import { requestPasswordReset } from '../api/auth';
import { ErrorAlert } from '../components/ErrorAlert';
import { Field } from '../components/Field';
import { Page } from '../components/Page';
import { errorMessage } from '../hooks/useAsync';
import { checkEmail } from '../validation';

/** `/forgot-password`: ask for a reset link by email. */
export default function ForgotPasswordPage() {
  const [email, setEmail] = useState('');
  const [fieldError, setFieldError] = useState<string | undefined>();
  const [apiError, setApiError] = useState<string | null>(null);
  const [pending, setPending] = useState(false);
  const [sentTo, setSentTo] = useState<string | null>(null);

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setApiError(null);
    const problem = checkEmail(email);
    setFieldError(problem);
    if (problem) {
      document.getElementById('forgot-email')?.focus();
      return;
    }
    setPending(true);
    try {
      await requestPasswordReset(email.trim());
      setSentTo(email.trim());
    } catch (err) {
      setApiError(errorMessage(err, 'Could not send the email. Try again.'));
    } finally {
      setPending(false);
    }
  }

  if (sentTo !== null) {
    return (
      <Page title="Check your email">
        <p role="status">
          If an account uses <strong>{sentTo}</strong>, a link to choose a new password is on its way. It works
          once and expires in an hour.
        </p>
        <p className="aside">
          Remembered it? <Link to="/login">Sign in</Link>
        </p>
      </Page>
    );
  }

  return (
    <Page title="Reset your password">
      <p>Enter the email address of your account and we will send you a link to choose a new password.</p>
      <form onSubmit={onSubmit} noValidate aria-busy={pending}>
        <ErrorAlert message={apiError} />
        <Field
          id="forgot-email"
          label="Email"
          type="email"
          autoComplete="email"
          inputMode="email"
          spellCheck={false}
          value={email}
          onChange={setEmail}
          error={fieldError}
        />
        <button type="submit" className="primary" disabled={pending}>
          {pending ? 'Sending…' : 'Send reset link'}
        </button>
      </form>
      <p className="aside">
        <Link to="/login">Back to sign in</Link>
      </p>
    </Page>
  );
}
