/**
 * Shapes of the JSON API (`/api/v1`) as the browser sees them through the node
 * gateway, by the names the app uses. They come from the OpenAPI documents:
 * `npm run gen:types` generates src/api/generated/node.ts (node/openapi.yaml: catalog,
 * movies, playback, TMDb search) and src/api/generated/tracker.ts (tracker/openapi.yaml:
 * auth, me, library), and `npm run check:types` (run by scripts/test.sh) fails when they
 * are stale. This file only names them; field names match the wire format (snake_case)
 * so a response can be used as-is. The few shapes where the app accepts more than a
 * document promises are written out below with a comment saying how they differ.
 */
import type { components as NodeComponents, operations as NodeOperations } from './generated/node';
import type { components as TrackerComponents } from './generated/tracker';

type NodeSchemas = NodeComponents['schemas'];
type TrackerSchemas = TrackerComponents['schemas'];
type Json200<Op extends { responses: { 200: { content: { 'application/json': unknown } } } }> =
  Op['responses'][200]['content']['application/json'];

/** Every error response: `{ "error": code, "message": text }` with a 4xx/5xx status. */
export type ErrorBody = TrackerSchemas['Error'];

// The credential endpoints (`/api/v1/auth/*`) are not used here: passwords, registration,
// verification and reset are only ever sent to the tracker's own origin (docs/signin.md).
// The session comes from the gateway's `POST /auth/session` (see `session.ts`).

export type Tier = TrackerSchemas['UserView']['tier'];

/**
 * `GET /me` (the tracker's `UserView`): the signed-in account.
 * Hand-written difference: tracker/openapi.yaml requires `role` and `tier_until`; the app
 * reads neither and keeps them optional, as before (the test fixtures' users have neither).
 */
export type User = Omit<TrackerSchemas['UserView'], 'role' | 'tier_until'> & {
  /** When premium ends, unix seconds; null when it does not. */
  tier_until?: TrackerSchemas['UserView']['tier_until'];
  role?: TrackerSchemas['UserView']['role'];
};

// ---------------------------------------------------------------------------
// Node gateway: catalog, movies, playback (node/openapi.yaml).

export type Availability = NodeSchemas['Availability'];
/** How much of a movie the network can serve right now. */
export type AvailabilityState = Availability['state'];

/** A movie as listed by `GET /catalog`. */
export type MovieCard = NodeSchemas['MovieCard'];

/**
 * `GET /movies/{id}`: a card plus the details the movie page shows.
 * Hand-written difference: node/openapi.yaml (and the gateway) always send `overview` as a
 * string and `duration_s` as a number; the app keeps handling null for both, as before
 * (the player falls back to the media's length, and the test fixtures build details with a
 * null overview).
 */
export type MovieDetail = Omit<NodeSchemas['MovieDetail'], 'overview' | 'duration_s'> & {
  overview: string | null;
  /** Length in seconds (expected length while ingesting). */
  duration_s: number | null;
};

/** Query of `GET /catalog` (node/openapi.yaml names no schema for it: the operation's parameters). */
export type CatalogQuery = NonNullable<NodeOperations['catalog']['parameters']['query']>;

/** `GET /catalog`: one page of results and every genre in the catalog. */
export type CatalogPage = NodeSchemas['CatalogPage'];

/** `GET /movies/{id}/play`: where the HLS stream is, with a playback token in the URL (an inline schema). */
export type PlayResponse = Json200<NodeOperations['play']>;

/** `GET /tmdb/search`: TMDb's matches; `enabled` is false (and no results) on a node without a TMDb key. */
export type TmdbSearch = Json200<NodeOperations['tmdbSearch']>;
/** One TMDb match of `GET /tmdb/search`. */
export type TmdbMatch = TmdbSearch['results'][number];

// ---------------------------------------------------------------------------
// Tracker: the signed-in user's library (tracker/openapi.yaml).

/** One entry of the watch-later list. */
export type WatchItem = TrackerSchemas['WatchItem'];
/** Body of `PUT /me/progress/{movie_id}`. */
export type ProgressRequest = TrackerSchemas['ProgressRequest'];
/** The stored progress of one movie (`GET`/`PUT /me/progress/{id}`, history items). */
export type ProgressView = TrackerSchemas['ProgressView'];
/** `GET /me/history`: one page, newest first. */
export type HistoryPage = TrackerSchemas['HistoryPage'];
/** `GET`/`PUT /me/preferences`: audio/subtitle languages and caption style, applied when a movie starts. */
export type Preferences = TrackerSchemas['Preferences'];
