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
  /** Lifetime of `refresh_token` in seconds. */
  refresh_expires_in?: number;
  /** The account the tokens belong to. */
  user?: User;
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

/** `GET /me` (the tracker's `UserView`): the signed-in account. */
export interface User {
  id: string;
  email: string;
  display_name: string;
  email_verified: boolean;
  /** The tier in effect now. */
  tier: Tier;
  /** When premium ends, unix seconds; null when it does not. */
  tier_until?: number | null;
  role?: 'user' | 'admin';
  /** Unix seconds. */
  created_at: number;
}

/** Body of `POST /auth/resend-verification` and `POST /auth/password-reset`. */
export interface EmailRequest {
  email: string;
}

/** Body of `POST /auth/password-reset/confirm`; `token` comes from the emailed reset link. */
export interface ResetConfirmRequest {
  token: string;
  password: string;
}

/** `202 Accepted` answer of the email-sending endpoints (whether or not a mail went out). */
export interface Accepted {
  status: 'accepted';
}

// ---------------------------------------------------------------------------
// Node gateway: catalog, movies, playback (see the gateway's JSON contract).

/** How much of a movie the network can serve right now. */
export type AvailabilityState = 'complete' | 'ingesting' | 'unavailable';

export interface Availability {
  state: AvailabilityState;
  /** 0-100: how much of the expected duration is ready. */
  percent: number;
}

/** A movie as listed by `GET /catalog`. */
export interface MovieCard {
  /** `tmdb-<n>` or `local-<16 hex>`. */
  id: string;
  title: string;
  year: number | null;
  genres: string[];
  runtime_min: number | null;
  /** Same-origin `/images/<hash>`, or null when there is no poster. */
  poster_url: string | null;
  availability: Availability;
  /** Live nodes holding any of it. */
  nodes: number;
  /** Unix seconds of the first manifest. */
  added_at: number;
}

/** `GET /movies/{id}`: a card plus the details the movie page shows. */
export interface MovieDetail extends MovieCard {
  overview: string | null;
  backdrop_url: string | null;
  tmdb_id: number | null;
  /** Rendition names, best first, e.g. `["1080p", "720p"]`. */
  renditions: string[];
  /** Length in seconds (expected length while ingesting). */
  duration_s: number | null;
}

/** Query of `GET /catalog`. */
export interface CatalogQuery {
  /** Free text: typo-tolerant prefix search over title words; years count. */
  q?: string;
  genre?: string;
  /** 1-based, default 1. */
  page?: number;
  /** Default 24, max 100. */
  per_page?: number;
}

/** `GET /catalog`: one page of results and every genre in the catalog. */
export interface CatalogPage {
  results: MovieCard[];
  page: number;
  per_page: number;
  total: number;
  genres: string[];
}

/** `GET /movies/{id}/play`: where the HLS stream is, with a playback token in the URL. */
export interface PlayResponse {
  movie_id: string;
  master_url: string;
  /** Unix seconds when the playback token expires. */
  expires_at: number;
}

/** One TMDb match of `GET /tmdb/search`. */
export interface TmdbMatch {
  tmdb_id: number;
  /** The id the movie has (or will have) on the network, `tmdb-<n>`. */
  movie_id: string;
  title: string;
  year: number | null;
  /** At most 300 characters. */
  overview: string;
  /** A small poster on TMDb's image server, or null when TMDb has none. */
  poster_url: string | null;
  /** The network's catalog already has it (so catalog search shows it too). */
  on_network: boolean;
}

/** `GET /tmdb/search`: TMDb's matches; `enabled` is false (and no results) on a node without a TMDb key. */
export interface TmdbSearch {
  enabled: boolean;
  results: TmdbMatch[];
}

// ---------------------------------------------------------------------------
// Tracker: the signed-in user's library.

/** One entry of the watch-later list. */
export interface WatchItem {
  movie_id: string;
  /** Unix milliseconds. */
  added_at: number;
}

/** Body of `PUT /me/progress/{movie_id}`. */
export interface ProgressRequest {
  position_s: number;
  duration_s: number;
  /** The writer's clock (unix ms) when the position was read; older writes are ignored. */
  timestamp_ms?: number;
}

/** The stored progress of one movie (`GET`/`PUT /me/progress/{id}`, history items). */
export interface ProgressView {
  movie_id: string;
  position_s: number;
  duration_s: number;
  /** Unix milliseconds of the write that set it. */
  updated_at: number;
  /** In the last 5% or last 2 minutes, whichever is shorter. */
  finished: boolean;
  /** The tracker's resume point; null when finished or less than 2 s in. */
  resume_at: number | null;
  /** Only in a PUT answer: whether this write changed what is stored. */
  applied?: boolean;
}

/** `GET /me/history`: one page, newest first. */
export interface HistoryPage {
  items: ProgressView[];
  /** Pass as `cursor` for the next page; null on the last one. */
  next_cursor: string | null;
}
