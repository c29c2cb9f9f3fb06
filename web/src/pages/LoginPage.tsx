import { useState, type FormEvent } from 'react';
import { Link, Navigate, useLocation, useNavigate } from 'react-router-dom';
import { login } from '../api/auth';
import { ApiError } from '../api/client';
import { ErrorAlert } from '../components/ErrorAlert';
import { Field } from '../components/Field';
import { Page } from '../components/Page';
import { useSession } from '../hooks/useSession';
import * as session from '../session';
import {
  checkEmail,
  checkPasswordPresent,
  collectErrors,
  focusFirstError,
  type FieldErrors,
} from '../validation';

type LoginField = 'email' | 'password';
const FIELDS: readonly LoginField[] = ['email', 'password'];
const idOf = (f: LoginField) => `login-${f}`;

/** Where a protected page sent the visitor from, to return there after signing in. */
interface FromState {
  from?: { pathname: string; search?: string };
}

export default function LoginPage() {
  const signedIn = useSession() !== null;
  const navigate = useNavigate();
  const location = useLocation();
  const from = (location.state as FromState | null)?.from;
  const target = from ? from.pathname + (from.search ?? '') : '/';

  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [errors, setErrors] = useState<FieldErrors<LoginField>>({});
  const [apiError, setApiError] = useState<string | null>(null);
  const [pending, setPending] = useState(false);

  if (signedIn && !pending) return <Navigate to={target} replace />;

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setApiError(null);
    const found = collectErrors<LoginField>({
      email: checkEmail(email),
      password: checkPasswordPresent(password),
    });
    setErrors(found);
    if (Object.keys(found).length > 0) {
      focusFirstError(found, FIELDS, idOf);
      return;
    }

    setPending(true);
    try {
      const pair = await login(email.trim(), password);
      session.save(pair);
      navigate(target, { replace: true });
    } catch (err) {
      setApiError(err instanceof ApiError ? err.message : 'Sign-in failed. Try again.');
      setPending(false);
    }
  }

  return (
    <Page title="Sign in">
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
          id={idOf('password')}
          label="Password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={setPassword}
          error={errors.password}
        />
        <button type="submit" className="primary" disabled={pending}>
          {pending ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <p className="aside">
        <Link to="/forgot-password">Forgot your password?</Link>
      </p>
      <p className="aside">
        New to reelnet? <Link to="/register">Create an account</Link>
      </p>
    </Page>
  );
}
