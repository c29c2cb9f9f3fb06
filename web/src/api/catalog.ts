/**
 * The node gateway's own routes: catalog search and browse, movie details, the
 * play call that hands out an HLS URL with a playback token, and the TMDb lookup
 * behind "Request" on search results.
 */
import { ApiError, request } from './client';
import type { CatalogPage, CatalogQuery, MovieDetail, PlayResponse, TmdbSearch } from './types';

/** `GET /catalog`: search (`q`), browse by `genre`, or list newest first. No sign-in needed. */
export function searchCatalog(query: CatalogQuery = {}, signal?: AbortSignal): Promise<CatalogPage> {
  const params = new URLSearchParams();
  const q = query.q?.trim();
  if (q) params.set('q', q);
  if (query.genre) params.set('genre', query.genre);
  if (query.page !== undefined) params.set('page', String(query.page));
  if (query.per_page !== undefined) params.set('per_page', String(query.per_page));
  const qs = params.toString();
  return request<CatalogPage>(`/catalog${qs ? `?${qs}` : ''}`, {
    auth: false,
    ...(signal && { signal }),
  });
}

/** `GET /movies/{id}`: everything the movie page shows. 404 `not_found` for an unknown movie. */
export function getMovie(id: string, signal?: AbortSignal): Promise<MovieDetail> {
  return request<MovieDetail>(`/movies/${encodeURIComponent(id)}`, {
    auth: false,
    ...(signal && { signal }),
  });
}

/**
 * `GET /tmdb/search`: movies on TMDb whose title matches `q`, each marked with whether
 * the network already has it. Needs sign-in. 400 `bad_query` for an empty or over-long
 * `q`; a node without a TMDb key answers `enabled: false` with no results.
 */
export async function searchTmdb(q: string, signal?: AbortSignal): Promise<TmdbSearch> {
  const params = new URLSearchParams({ q: q.trim() });
  const answer = await request<TmdbSearch>(`/tmdb/search?${params.toString()}`, signal ? { signal } : {});
  if (typeof answer?.enabled !== 'boolean' || !Array.isArray(answer.results)) {
    throw new ApiError(200, 'bad_response', 'The server sent a response the app could not read. Try again later.');
  }
  return answer;
}

/**
 * `GET /movies/{id}/play`: a master playlist URL carrying a playback token for this
 * user and movie. 403 `email_not_verified` until the account's email is verified.
 */
export async function play(id: string, signal?: AbortSignal): Promise<PlayResponse> {
  const answer = await request<PlayResponse>(`/movies/${encodeURIComponent(id)}/play`, signal ? { signal } : {});
  if (typeof answer?.master_url !== 'string' || answer.master_url === '') {
    throw new ApiError(200, 'bad_response', 'The server sent no stream address. Try again later.');
  }
  return answer;
}

/**
 * The URL the player loads for a `master_url`: the same path and token on the page's
 * own origin. The app only talks to the node that served it, whatever host name the
 * node put in the URL (it may be an address the browser cannot reach, or another
 * spelling of this origin that would make every segment request cross-origin).
 */
export function sameOriginUrl(masterUrl: string, origin: string = window.location.origin): string {
  try {
    const u = new URL(masterUrl, origin);
    return `${u.pathname}${u.search}`;
  } catch {
    return masterUrl;
  }
}
