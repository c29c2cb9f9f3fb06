import { useState } from 'react';
import { Link } from 'react-router-dom';
import { getMovie } from '../api/catalog';
import { getHistory } from '../api/library';
import type { MovieDetail, ProgressView } from '../api/types';
import { ErrorAlert } from '../components/ErrorAlert';
import { Page } from '../components/Page';
import { ProgressBar } from '../components/ProgressBar';
import { Empty, Failed, Loading } from '../components/States';
import { errorMessage, useAsync } from '../hooks/useAsync';
import { formatTime, resumePosition, watchedFraction } from '../playback';

const PAGE_SIZE = 20;

interface Entry {
  progress: ProgressView;
  movie: MovieDetail | null;
}

interface Loaded {
  entries: Entry[];
  next: string | null;
}

async function loadPage(cursor: string | null, signal?: AbortSignal): Promise<Loaded> {
  const page = await getHistory({ limit: PAGE_SIZE, cursor }, signal);
  const entries = await Promise.all(
    page.items.map(async (progress) => ({
      progress,
      movie: await getMovie(progress.movie_id, signal).catch((err: unknown) => {
        if (signal?.aborted) throw err;
        return null;
      }),
    })),
  );
  return { entries, next: page.next_cursor };
}

function when(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function iso(ms: number): string | undefined {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** `/history`: what the user watched, newest first, with how far they got. */
export default function HistoryPage() {
  const { state, reload, setData } = useAsync((signal) => loadPage(null, signal), []);
  const [more, setMore] = useState<'idle' | 'loading'>('idle');
  const [error, setError] = useState<string | null>(null);

  async function loadMore(cursor: string) {
    setMore('loading');
    setError(null);
    try {
      const next = await loadPage(cursor);
      setData((prev) => ({ entries: [...prev.entries, ...next.entries], next: next.next }));
    } catch (err) {
      setError(errorMessage(err, 'Could not load more. Try again.'));
    } finally {
      setMore('idle');
    }
  }

  return (
    <Page title="History" wide>
      {state.status === 'loading' && <Loading label="Loading your history…" />}
      {state.status === 'error' && <Failed message={state.error} onRetry={reload} />}
      {state.status === 'ready' && state.data.entries.length === 0 && (
        <Empty>
          <p>You have not watched anything yet.</p>
          <p>
            <Link to="/">Browse movies</Link>
          </p>
        </Empty>
      )}
      {state.status === 'ready' && state.data.entries.length > 0 && (
        <>
          <ul className="history-list" role="list" data-testid="history-list">
            {state.data.entries.map(({ progress, movie }) => {
              const title = movie?.title ?? progress.movie_id;
              const resume = resumePosition(progress);
              return (
                <li key={progress.movie_id} className="history-item" data-testid="history-item" data-movie-id={progress.movie_id}>
                  <Link to={`/movie/${encodeURIComponent(progress.movie_id)}`} className="history-poster" tabIndex={-1} aria-hidden="true">
                    {movie?.poster_url ? <img src={movie.poster_url} alt="" loading="lazy" /> : <span className="poster-fallback">{title.slice(0, 1)}</span>}
                  </Link>
                  <div className="history-text">
                    <Link to={`/movie/${encodeURIComponent(progress.movie_id)}`} className="history-title">
                      {title}
                      {movie?.year ? ` (${movie.year})` : ''}
                    </Link>
                    <p className="muted">
                      {progress.finished
                        ? 'Watched'
                        : resume !== null
                          ? `Stopped at ${formatTime(progress.position_s)} of ${formatTime(progress.duration_s)}`
                          : `Watched ${formatTime(progress.position_s)} of ${formatTime(progress.duration_s)}`}
                      {' · '}
                      <time dateTime={iso(progress.updated_at)}>{when(progress.updated_at)}</time>
                    </p>
                    <ProgressBar fraction={progress.finished ? 1 : watchedFraction(progress)} label="Watched" />
                  </div>
                </li>
              );
            })}
          </ul>
          <ErrorAlert message={error} />
          {state.data.next && (
            <button type="button" onClick={() => state.data.next && loadMore(state.data.next)} disabled={more === 'loading'}>
              {more === 'loading' ? 'Loading…' : 'Show more'}
            </button>
          )}
        </>
      )}
    </Page>
  );
}
