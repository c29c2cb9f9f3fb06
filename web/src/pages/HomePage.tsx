import { useEffect, useId, useLayoutEffect, useRef, useState } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router-dom';
import { getMovie, searchCatalog, searchTmdb } from '../api/catalog';
import { getHistory, getWatchlist } from '../api/library';
import { alreadyAvailable, createRequest, moviePath } from '../api/requests';
import type { MovieDetail, TmdbMatch } from '../api/types';
import { ErrorAlert } from '../components/ErrorAlert';
import { Page } from '../components/Page';
import { PosterCard } from '../components/PosterCard';
import { PosterImage } from '../components/PosterImage';
import { PosterRow, type RowItem } from '../components/PosterRow';
import { Empty, Failed, Loading } from '../components/States';
import { errorMessage, useAsync } from '../hooks/useAsync';
import { useDebounced } from '../hooks/useDebounced';
import { resumePosition, watchedFraction } from '../playback';

/** How long typing must pause before a search goes out. */
export const SEARCH_DEBOUNCE_MS = 250;
const ROW_SIZE = 20;
/** Genre rows beyond this many are left out (the search box finds the rest). */
const MAX_GENRE_ROWS = 12;

/** `/`: search as you type, or rows of posters (continue watching, watch later, new, by genre). */
export default function HomePage() {
  const [params, setParams] = useSearchParams();
  const urlQuery = params.get('q') ?? '';
  const [text, setText] = useState(urlQuery);
  const query = useDebounced(text.trim(), SEARCH_DEBOUNCE_MS);
  const inputId = useId();

  // Keep the query in the address bar, so Back from a movie returns to the results.
  useEffect(() => {
    if (query !== urlQuery) setParams(query ? { q: query } : {}, { replace: true });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [query]);

  return (
    <Page title="Home" wide hideTitle>
      <form className="search" role="search" onSubmit={(e) => e.preventDefault()}>
        <label htmlFor={inputId}>Search movies</label>
        <input
          id={inputId}
          type="search"
          value={text}
          onChange={(e) => setText(e.target.value)}
          placeholder="Title or year"
          autoComplete="off"
          spellCheck={false}
          enterKeyHint="search"
          data-testid="search-input"
        />
      </form>
      {query ? <SearchResults query={query} /> : <Rows />}
    </Page>
  );
}

/** The My requests page with the title field filled in from a search. */
function requestPageFor(query: string): string {
  return `/requests?${new URLSearchParams({ title: query }).toString()}`;
}

function SearchResults({ query }: { query: string }) {
  const { state, reload } = useAsync((signal) => searchCatalog({ q: query, per_page: 48 }, signal), [query]);
  // TMDb is asked alongside the catalog; its answer (or failure) never holds up or hides the catalog's.
  const tmdb = useAsync((signal) => searchTmdb(query, signal), [query]);
  // Requests sent from this search box, so a movie stays "Requested" when it shows up again.
  const [requested, setRequested] = useState<ReadonlySet<number>>(() => new Set());

  const matches =
    tmdb.state.status === 'ready' && tmdb.state.data.enabled
      ? tmdb.state.data.results.filter((m) => !m.on_network)
      : [];
  const catalogEmpty = state.status === 'ready' && state.data.total === 0;
  const requestLink = (
    <>
      Can’t find it? <Link to={requestPageFor(query)}>Request a movie</Link>
    </>
  );

  return (
    <>
      <section aria-labelledby="results-title" data-testid="search-results" aria-busy={state.status === 'loading'}>
        <h2 id="results-title">Results for “{query}”</h2>
        {state.status === 'loading' && <Loading label="Searching…" />}
        {state.status === 'error' && <Failed message={state.error} onRetry={reload} />}
        {state.status === 'ready' &&
          (catalogEmpty ? (
            <Empty>
              <p role="status">No movies match “{query}”.</p>
              <p data-testid="request-hint">
                {matches.length > 0 ? 'It is not on reelnet yet, but you can request it below.' : requestLink}
              </p>
            </Empty>
          ) : (
            <>
              <p role="status" className="muted">
                {`${state.data.total} ${state.data.total === 1 ? 'movie' : 'movies'}`}
              </p>
              {state.data.results.length > 0 && (
                <ul className="poster-grid" role="list">
                  {state.data.results.map((m) => (
                    <li key={m.id}>
                      <PosterCard movie={m} />
                    </li>
                  ))}
                </ul>
              )}
            </>
          ))}
      </section>
      {state.status !== 'loading' &&
        (matches.length > 0 ? (
          <section className="request-matches" aria-labelledby="tmdb-results-title" data-testid="tmdb-results">
            <h2 id="tmdb-results-title">Not on reelnet yet</h2>
            <ul className="poster-grid" role="list">
              {matches.map((m) => (
                <li key={m.tmdb_id} className="grid-item" data-testid="tmdb-match" data-tmdb-id={m.tmdb_id}>
                  <RequestMatch
                    match={m}
                    requested={requested.has(m.tmdb_id)}
                    onRequested={() => setRequested((s) => new Set(s).add(m.tmdb_id))}
                  />
                </li>
              ))}
            </ul>
          </section>
        ) : (
          tmdb.state.status !== 'loading' &&
          !catalogEmpty && (
            <p className="aside" data-testid="request-hint">
              {requestLink}
            </p>
          )
        ))}
    </>
  );
}

/** A TMDb match the network lacks: poster, title, year and a "Request" button. */
function RequestMatch({
  match,
  requested,
  onRequested,
}: {
  match: TmdbMatch;
  requested: boolean;
  onRequested: () => void;
}) {
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const doneLink = useRef<HTMLAnchorElement>(null);
  const justSent = useRef(false);
  const navigate = useNavigate();
  const label = match.year ? `${match.title} (${match.year})` : match.title;

  // The button the user pressed is gone: keep keyboard focus on what replaced it (a layout
  // effect, so focus moves in the same commit that removes the button).
  useLayoutEffect(() => {
    if (requested && justSent.current) doneLink.current?.focus();
  }, [requested]);

  async function send() {
    setSending(true);
    setError(null);
    try {
      await createRequest({
        tmdb_id: match.tmdb_id,
        title: match.title,
        ...(match.year !== null ? { year: match.year } : {}),
      });
      justSent.current = true;
      onRequested();
    } catch (err) {
      // The network has this movie already: go and watch it instead.
      const movie = alreadyAvailable(err);
      if (movie) {
        navigate(moviePath(movie));
        return;
      }
      setError(errorMessage(err, 'Could not send the request. Try again.'));
    } finally {
      setSending(false);
    }
  }

  return (
    <>
      <PosterImage url={match.poster_url} title={match.title} />
      <div className="poster-text">
        <span className="poster-title">{match.title}</span>
        {match.year !== null && <span className="poster-year">{match.year}</span>}
      </div>
      {requested ? (
        <p className="requested" role="status">
          Requested — <Link to="/requests" ref={doneLink}>see My requests</Link>
        </p>
      ) : (
        <button
          type="button"
          className="small"
          onClick={send}
          disabled={sending}
          aria-label={`Request ${label}`}
          data-testid="request-button"
        >
          {sending ? 'Requesting…' : 'Request'}
        </button>
      )}
      <ErrorAlert message={error} />
    </>
  );
}

/** Movie cards for ids from the tracker; ids the network no longer knows are left out. */
async function cardsFor<T>(
  entries: T[],
  id: (e: T) => string,
  signal: AbortSignal,
): Promise<Array<{ entry: T; movie: MovieDetail }>> {
  const found = await Promise.all(
    entries.map((entry) =>
      getMovie(id(entry), signal).then(
        (movie) => ({ entry, movie }),
        (err: unknown) => {
          if (signal.aborted) throw err;
          return null;
        },
      ),
    ),
  );
  return found.filter((x): x is { entry: T; movie: MovieDetail } => x !== null);
}

function Rows() {
  const continueRow = useAsync(async (signal): Promise<RowItem[]> => {
    const history = await getHistory({ limit: ROW_SIZE }, signal);
    const resumable = history.items.filter((p) => resumePosition(p) !== null);
    const cards = await cardsFor(resumable, (p) => p.movie_id, signal);
    return cards.map(({ entry, movie }) => ({ movie, progress: watchedFraction(entry) }));
  }, []);

  const laterRow = useAsync(async (signal): Promise<RowItem[]> => {
    const list = await getWatchlist(signal);
    const newestFirst = [...list].reverse().slice(0, ROW_SIZE);
    return (await cardsFor(newestFirst, (w) => w.movie_id, signal)).map(({ movie }) => ({ movie }));
  }, []);

  const recent = useAsync((signal) => searchCatalog({ per_page: ROW_SIZE }, signal), []);
  const recentRow =
    recent.state.status === 'ready'
      ? { status: 'ready' as const, data: recent.state.data.results.map((movie) => ({ movie })) }
      : recent.state;
  const genres = recent.state.status === 'ready' ? recent.state.data.genres.slice(0, MAX_GENRE_ROWS) : [];
  const libraryEmpty = recent.state.status === 'ready' && recent.state.data.total === 0;

  return (
    <div className="rows">
      <PosterRow title="Continue watching" testId="row-continue" state={continueRow.state} onRetry={continueRow.reload} />
      <PosterRow
        title="Watch later"
        testId="row-watch-later"
        state={laterRow.state}
        onRetry={laterRow.reload}
        empty={
          <>
            Nothing saved yet. Choose <strong>Watch later</strong> on a movie’s page to keep it here.
          </>
        }
      />
      {libraryEmpty ? (
        <section className="row" data-testid="row-recent" aria-labelledby="row-recent-title">
          <h2 id="row-recent-title">Recently added</h2>
          <Empty>
            <p>No movies in the network yet. When a node ingests one, it appears here.</p>
          </Empty>
        </section>
      ) : (
        <PosterRow title="Recently added" testId="row-recent" state={recentRow} onRetry={recent.reload} />
      )}
      {genres.map((g) => (
        <GenreRow key={g} genre={g} />
      ))}
      <p className="aside">
        Looking for your past viewing? See <Link to="/history">History</Link>.
      </p>
    </div>
  );
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'other';
}

function GenreRow({ genre }: { genre: string }) {
  const { state, reload } = useAsync(async (signal): Promise<RowItem[]> => {
    const page = await searchCatalog({ genre, per_page: ROW_SIZE }, signal);
    return page.results.map((movie) => ({ movie }));
  }, [genre]);
  return <PosterRow title={genre} testId={`row-genre-${slug(genre)}`} state={state} onRetry={reload} />;
}
