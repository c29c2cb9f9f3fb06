import { useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router-dom';
import { register } from '../api/auth';
import { ApiError } from '../api/client';
import { ErrorAlert } from '../components/ErrorAlert';
import { Field } from '../components/Field';
import { Page } from '../components/Page';
import {
  MIN_PASSWORD_LENGTH,
  checkDisplayName,
  checkEmail,
  checkNewPassword,
  collectErrors,
  focusFirstError,
  type FieldErrors,
} from '../validation';

type RegisterField = 'email' | 'displayName' | 'password';
const FIELDS: readonly RegisterField[] = ['email', 'displayName', 'password'];
const idOf = (f: RegisterField) => `register-${f}`;

export default function RegisterPage() {
  // An admin bootstrap link (`reelnet-tracker admin bootstrap`) opens this page with
  // `?bootstrap=TOKEN`: the account made here becomes the first admin.
  const [params] = useSearchParams();
  const bootstrap = params.get('bootstrap');
  const [email, setEmail] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [password, setPassword] = useState('');
  const [errors, setErrors] = useState<FieldErrors<RegisterField>>({});
  const [apiError, setApiError] = useState<string | null>(null);
  const [pending, setPending] = useState(false);
  const [sentTo, setSentTo] = useState<string | null>(null);

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setApiError(null);
    const found = collectErrors<RegisterField>({
      email: checkEmail(email),
      displayName: checkDisplayName(displayName),
      password: checkNewPassword(password),
    });
    setErrors(found);
    if (Object.keys(found).length > 0) {
      focusFirstError(found, FIELDS, idOf);
      return;
    }

    setPending(true);
    try {
      await register(email.trim(), password, displayName.trim(), bootstrap ?? undefined);
      setSentTo(email.trim());
    } catch (err) {
      setApiError(err instanceof ApiError ? err.message : 'Registration failed. Try again.');
    } finally {
      setPending(false);
    }
  }

  if (sentTo !== null) {
    return (
      <Page title="Check your email">
        <p role="status">
          We sent a verification link to <strong>{sentTo}</strong>. Open it to activate your
          account, then sign in.
        </p>
        <p className="aside">
          Already verified? <Link to="/login">Sign in</Link>
        </p>
      </Page>
    );
  }

  return (
    <Page title="Create account">
      <form onSubmit={onSubmit} noValidate aria-busy={pending}>
        <ErrorAlert message={apiError} />
        <Field
          id={idOf('email')}
          label="Email"
          type="email"
          autoComplete="email"
          inputMode="email"
          spellCheck={false}
          value={email}
          onChange={setEmail}
          error={errors.email}
        />
        <Field
          id={idOf('displayName')}
          label="Display name"
          type="text"
          autoComplete="nickname"
          value={displayName}
          onChange={setDisplayName}
          error={errors.displayName}
        />
        <Field
          id={idOf('password')}
          label="Password"
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={setPassword}
          error={errors.password}
          hint={`At least ${MIN_PASSWORD_LENGTH} characters.`}
        />
        <button type="submit" className="primary" disabled={pending}>
          {pending ? 'Creating account…' : 'Create account'}
        </button>
      </form>
      <p className="aside">
        Have an account? <Link to="/login">Sign in</Link>
      </p>
    </Page>
  );
}
