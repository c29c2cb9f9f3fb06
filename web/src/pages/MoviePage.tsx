import { useEffect, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { createRoom } from '../api/rooms';
import { getMovie } from '../api/catalog';
import { addToWatchlist, getProgress, getWatchlist, removeFromWatchlist } from '../api/library';
import type { MovieDetail } from '../api/types';
import { ErrorAlert } from '../components/ErrorAlert';
import { Page } from '../components/Page';
import { Failed, Loading } from '../components/States';
import { errorMessage, useAsync } from '../hooks/useAsync';
import { formatRuntime, formatTime, resumePosition } from '../playback';
import NotFoundPage from './NotFoundPage';

/** How often a movie page refreshes the availability of a movie still being prepared. */
export const INGEST_POLL_MS = 15_000;

/** `/movie/:id`: details, availability, Play / Resume, and the watch-later toggle. */
export default function MoviePage() {
  const id = useParams().id ?? '';
  const { state, reload, setData } = useAsync((signal) => getMovie(id, signal), [id]);
  const ingesting = state.status === 'ready' && state.data.availability.state === 'ingesting';

  // While the movie is being prepared, keep its percentage current.
  useEffect(() => {
    if (!ingesting) return;
    const controller = new AbortController();
    const timer = setInterval(() => {
      getMovie(id, controller.signal).then(
        (fresh) => setData(() => fresh),
        () => undefined, // keep showing the last known state
      );
    }, INGEST_POLL_MS);
    return () => {
      clearInterval(timer);
      controller.abort();
    };
  }, [id, ingesting, setData]);

  if (state.status === 'error' && (state.code === 'not_found' || state.code === 'bad_movie_id')) {
    return <NotFoundPage />;
  }
  if (state.status === 'loading') {
    return (
      <Page title="Movie" wide>
        <Loading label="Loading the movie…" />
      </Page>
    );
  }
  if (state.status === 'error') {
    return (
      <Page title="Movie" wide>
        <Failed message={state.error} onRetry={reload} />
      </Page>
    );
  }
  return <MovieDetails movie={state.data} />;
}

function Availability({ movie }: { movie: MovieDetail }) {
  const { state, percent } = movie.availability;
  if (state === 'ingesting') {
    return (
      <p className="availability preparing" data-testid="availability">
        Being prepared — {Math.floor(percent)}%
        <span className="muted"> (you can start watching what is ready)</span>
      </p>
    );
  }
  if (state === 'unavailable') {
    return (
      <p className="availability unavailable" data-testid="availability">
        Not available right now: no node that holds it is online.
      </p>
    );
  }
  return (
    <p className="availability" data-testid="availability">
      Available{movie.nodes > 0 && ` on ${movie.nodes} ${movie.nodes === 1 ? 'node' : 'nodes'}`}
    </p>
  );
}

function MovieDetails({ movie }: { movie: MovieDetail }) {
  const progress = useAsync((signal) => getProgress(movie.id, signal).catch(() => null), [movie.id]);
  const resume = progress.state.status === 'ready' ? resumePosition(progress.state.data) : null;
  const watch = `/watch/${encodeURIComponent(movie.id)}`;
  const runtime = formatRuntime(movie.runtime_min);
  const playable = movie.availability.state !== 'unavailable';

  return (
    <Page title={movie.title} wide hideTitle>
      <article className="movie" data-testid="movie-page" data-movie-id={movie.id}>
        {movie.backdrop_url && (
          <div className="backdrop" aria-hidden="true">
            <img src={movie.backdrop_url} alt="" />
          </div>
        )}
        <div className="movie-body">
          <div className="movie-poster">
            {movie.poster_url ? (
              <img src={movie.poster_url} alt={`Poster of ${movie.title}`} />
            ) : (
              <div className="poster-fallback" aria-hidden="true">
                {movie.title.slice(0, 1)}
              </div>
            )}
          </div>
          <div className="movie-info">
            <h2 className="movie-title" data-testid="movie-title">
              {movie.title}
            </h2>
            <p className="movie-meta">
              {[movie.year, runtime, movie.genres.join(', ')].filter(Boolean).map((part, i) => (
                <span key={i}>{part}</span>
              ))}
            </p>
            <Availability movie={movie} />
            <div className="actions">
              {progress.state.status === 'loading' ? (
                <Loading label="Checking where you left off…" />
              ) : !playable ? (
                <button type="button" className="primary" disabled data-testid="play-button">
                  Play
                </button>
              ) : resume !== null ? (
                <>
                  <Link
                    className="button primary"
                    to={`${watch}?t=${Math.floor(resume)}`}
                    data-testid="resume-button"
                    data-resume-at={Math.floor(resume)}
                  >
                    Resume at {formatTime(resume)}
                  </Link>
                  <Link className="button" to={`${watch}?t=0`} data-testid="start-over-button">
                    Start over
                  </Link>
                </>
              ) : (
                <Link className="button primary" to={watch} data-testid="play-button">
                  Play
                </Link>
              )}
              <WatchLaterToggle movieId={movie.id} />
              {playable && <WatchTogether movieId={movie.id} />}
            </div>
            {movie.overview && <p className="overview">{movie.overview}</p>}
          </div>
        </div>
      </article>
    </Page>
  );
}

/** Add to / remove from watch later; `data-state` says which for tests. */
function WatchLaterToggle({ movieId }: { movieId: string }) {
  const list = useAsync((signal) => getWatchlist(signal), [movieId]);
  const [saved, setSaved] = useState<boolean | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const onList =
    saved ?? (list.state.status === 'ready' ? list.state.data.some((w) => w.movie_id === movieId) : false);

  async function toggle() {
    setBusy(true);
    setError(null);
    try {
      if (onList) await removeFromWatchlist(movieId);
      else await addToWatchlist(movieId);
      setSaved(!onList);
    } catch (err) {
      setError(errorMessage(err, 'Could not change your watch-later list. Try again.'));
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <button
        type="button"
        onClick={toggle}
        disabled={busy || list.state.status === 'loading'}
        data-testid="watch-later-toggle"
        data-state={onList ? 'on' : 'off'}
      >
        {onList ? 'Remove from watch later' : 'Add to watch later'}
      </button>
      <ErrorAlert message={error} />
    </>
  );
}

/** "Watch together": hosts a room for this movie and opens it (the room shows the invite link). */
function WatchTogether({ movieId }: { movieId: string }) {
  const navigate = useNavigate();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const start = () => {
    setBusy(true);
    setError(null);
    createRoom(movieId)
      .then((room) => navigate(`/room/${room.id}`))
      .catch((err: unknown) => {
        setBusy(false);
        setError(errorMessage(err));
      });
  };
  return (
    <>
      <button type="button" className="button" onClick={start} disabled={busy} data-testid="watch-together">
        {busy ? 'Creating a room…' : 'Watch together'}
      </button>
      {error && <ErrorAlert message={error} />}
    </>
  );
}
