/**
 * `/api/v1/auth/*`: accounts and tokens. These calls only talk to the server;
 * storing or forgetting the tokens is the caller's job (see `session.ts`).
 */
import { request } from './client';
import type {
  Accepted,
  EmailRequest,
  LoginRequest,
  ResetConfirmRequest,
  RefreshTokenRequest,
  RegisterRequest,
  TokenPair,
  VerifyEmailRequest,
} from './types';

/** `POST /auth/login`: exchange email and password for a token pair. */
export function login(email: string, password: string, signal?: AbortSignal): Promise<TokenPair> {
  const body: LoginRequest = { email, password };
  return request<TokenPair>('/auth/login', { method: 'POST', body, auth: false, ...(signal && { signal }) });
}

/**
 * `POST /auth/register`: create an account. The tracker then emails a
 * verification link to `email`; the account can sign in once verified. The
 * answer is the same for an address that already has an account (its owner
 * gets a mail instead). `bootstrap` is the token of an admin bootstrap link.
 */
export async function register(
  email: string,
  password: string,
  display_name: string,
  bootstrap?: string,
): Promise<void> {
  const body: RegisterRequest = { email, password, display_name, ...(bootstrap && { bootstrap }) };
  await request<unknown>('/auth/register', { method: 'POST', body, auth: false });
}

/** `POST /auth/verify`: confirm an email address with the token from the link. */
export async function verifyEmail(token: string): Promise<void> {
  const body: VerifyEmailRequest = { token };
  await request<unknown>('/auth/verify', { method: 'POST', body, auth: false });
}

/** `POST /auth/refresh`: trade a refresh token for a new pair (the old one is spent). */
export function refresh(refresh_token: string): Promise<TokenPair> {
  const body: RefreshTokenRequest = { refresh_token };
  return request<TokenPair>('/auth/refresh', { method: 'POST', body, auth: false });
}

/** `POST /auth/logout`: revoke a refresh token on the server. */
export async function logout(refresh_token: string): Promise<void> {
  const body: RefreshTokenRequest = { refresh_token };
  await request<unknown>('/auth/logout', { method: 'POST', body, auth: false });
}

/**
 * `POST /auth/resend-verification`: email a fresh verification link. The answer is
 * the same whether or not the account exists, so nothing is revealed.
 */
export async function resendVerification(email: string): Promise<void> {
  const body: EmailRequest = { email };
  await request<Accepted>('/auth/resend-verification', { method: 'POST', body, auth: false });
}

/**
 * `POST /auth/password-reset`: email a reset link (`/reset-password?token=…`) when
 * an account with this address exists. Answers the same either way.
 */
export async function requestPasswordReset(email: string): Promise<void> {
  const body: EmailRequest = { email };
  await request<Accepted>('/auth/password-reset', { method: 'POST', body, auth: false });
}

/**
 * `POST /auth/password-reset/confirm`: set a new password with the token from the
 * reset link. Every session of the account is signed out; sign in again afterwards.
 */
export async function confirmPasswordReset(token: string, password: string): Promise<void> {
  const body: ResetConfirmRequest = { token, password };
  await request<unknown>('/auth/password-reset/confirm', { method: 'POST', body, auth: false });
}
