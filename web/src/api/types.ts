/**
 * Shapes of the tracker's JSON API (`/api/v1`), as the browser sees them through
 * the node gateway. Field names match the wire format (snake_case) so a response
 * can be used as-is; keep this file in step with the OpenAPI document.
 */

/** Every error response: `{ "error": code, "message": text }` with a 4xx/5xx status. */
export interface ErrorBody {
  /** Stable, machine-readable code, e.g. `invalid_credentials`. */
  error: string;
  /** Human-readable text that says what went wrong and what to do. */
  message: string;
}

/** `POST /auth/login` and `POST /auth/refresh` answer with a fresh token pair. */
export interface TokenPair {
  /** Short-lived JWT (EdDSA) sent as `Authorization: Bearer …`. */
  access_token: string;
  /** Long-lived opaque token exchanged for a new pair at `/auth/refresh`. */
  refresh_token: string;
  /** Lifetime of `access_token` in seconds. */
  expires_in: number;
  /** Always `Bearer`. */
  token_type: string;
}

export interface LoginRequest {
  email: string;
  password: string;
}

export interface RegisterRequest {
  email: string;
  password: string;
  display_name: string;
}

/** Body of `POST /auth/verify`; `token` comes from the link in the verification email. */
export interface VerifyEmailRequest {
  token: string;
}

/** Body of `POST /auth/refresh` and `POST /auth/logout`. */
export interface RefreshTokenRequest {
  refresh_token: string;
}

export type Tier = 'free' | 'premium';

/** `GET /me`: the signed-in account. */
export interface User {
  id: string;
  email: string;
  display_name: string;
  email_verified: boolean;
  tier: Tier;
  /** RFC 3339 timestamp. */
  created_at: string;
}
