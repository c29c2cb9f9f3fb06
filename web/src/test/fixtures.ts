import type { MovieRequest, NewRequest } from '../api/requests';
/** Catalog, movie and library answers as the node gateway and tracker send them. */
import type { CatalogPage, MovieCard, MovieDetail, ProgressView, TmdbMatch } from '../api/types';

export function card(id: string, title: string, extra: Partial<MovieCard> = {}): MovieCard {
  return {
    id,
    title,
    year: 1999,
    genres: ['Action'],
    runtime_min: 136,
    poster_url: `/images/${'a'.repeat(64)}`,
    availability: { state: 'complete', percent: 100 },
    nodes: 2,
    added_at: 1764000000,
    ...extra,
  };
}

export const MATRIX: MovieDetail = {
  ...card('tmdb-603', 'The Matrix', { genres: ['Action', 'Science Fiction'] }),
  overview: 'A hacker learns what the world really is.',
  backdrop_url: `/images/${'b'.repeat(64)}`,
  tmdb_id: 603,
  renditions: ['1080p', '720p', '480p'],
  duration_s: 8160,
};

export function detail(c: MovieCard, extra: Partial<MovieDetail> = {}): MovieDetail {
  return {
    ...c,
    overview: null,
    backdrop_url: null,
    tmdb_id: null,
    renditions: ['720p'],
    duration_s: (c.runtime_min ?? 100) * 60,
    ...extra,
  };
}

export function catalogPage(results: MovieCard[], genres: string[] = ['Action']): CatalogPage {
  return { results, page: 1, per_page: 24, total: results.length, genres };
}

export function progress(movie_id: string, position_s: number, duration_s: number, extra: Partial<ProgressView> = {}): ProgressView {
  return {
    movie_id,
    position_s,
    duration_s,
    updated_at: 1764000000000,
    finished: position_s / duration_s >= 0.95,
    resume_at: position_s >= 2 ? position_s : null,
    ...extra,
  };
}

/** A match of the gateway's TMDb search; not on the network unless `extra` says so. */
export function tmdbMatch(tmdb_id: number, title: string, extra: Partial<TmdbMatch> = {}): TmdbMatch {
  return {
    tmdb_id,
    movie_id: `tmdb-${tmdb_id}`,
    title,
    year: 1999,
    overview: '',
    poster_url: `https://image.tmdb.org/t/p/w185/${tmdb_id}.jpg`,
    on_network: false,
    ...extra,
  };
}

/** A `not_found` error answer. */
/** The tracker's answer to `POST /requests` with `body`: a new, open request. */
export function createdRequest(body: NewRequest, id = '7'): MovieRequest {
  return {
    id,
    tmdb_id: body.tmdb_id,
    title: body.title ?? null,
    year: body.year ?? null,
    state: 'open',
    percent: 0,
    reason: null,
    movie_id: null,
    requesters: 1,
    has_source: false,
    created_at_ms: 1,
    updated_at_ms: 1,
  };
}

export const NOT_FOUND = { error: 'not_found', message: 'No such movie.' };
