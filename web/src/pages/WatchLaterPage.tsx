import { useState } from 'react';
import { Link } from 'react-router-dom';
import { getMovie } from '../api/catalog';
import { getWatchlist, removeFromWatchlist } from '../api/library';
import type { MovieDetail, WatchItem } from '../api/types';
import { ErrorAlert } from '../components/ErrorAlert';
import { Page } from '../components/Page';
import { PosterCard } from '../components/PosterCard';
import { Empty, Failed, Loading } from '../components/States';
import { errorMessage, useAsync } from '../hooks/useAsync';

interface Entry {
  item: WatchItem;
  /** null when the network does not know the movie (any more). */
  movie: MovieDetail | null;
}

/** `/watch-later`: the watch-later list, newest first, each with a Remove button. */
export default function WatchLaterPage() {
  const { state, reload, setData } = useAsync(async (signal): Promise<Entry[]> => {
    const list = await getWatchlist(signal);
    return Promise.all(
      [...list].reverse().map(async (item) => ({
        item,
        movie: await getMovie(item.movie_id, signal).catch((err: unknown) => {
          if (signal.aborted) throw err;
          return null;
        }),
      })),
    );
  }, []);
  const [error, setError] = useState<string | null>(null);

  async function remove(movieId: string) {
    setError(null);
    try {
      await removeFromWatchlist(movieId);
      setData((entries) => entries.filter((e) => e.item.movie_id !== movieId));
    } catch (err) {
      setError(errorMessage(err, 'Could not remove it. Try again.'));
    }
  }

  return (
    <Page title="Watch later" wide>
      <ErrorAlert message={error} />
      {state.status === 'loading' && <Loading label="Loading your list…" />}
      {state.status === 'error' && <Failed message={state.error} onRetry={reload} />}
      {state.status === 'ready' && state.data.length === 0 && (
        <Empty>
          <p>Your watch-later list is empty.</p>
          <p>
            <Link to="/">Find something to watch</Link> and choose <strong>Add to watch later</strong>.
          </p>
        </Empty>
      )}
      {state.status === 'ready' && state.data.length > 0 && (
        <ul className="poster-grid" role="list" data-testid="watch-later-list">
          {state.data.map(({ item, movie }) => {
            const title = movie?.title ?? item.movie_id;
            return (
              <li key={item.movie_id} className="grid-item">
                <PosterCard
                  movie={movie ?? { id: item.movie_id, title: item.movie_id, year: null, poster_url: null }}
                />
                <button
                  type="button"
                  className="small"
                  onClick={() => remove(item.movie_id)}
                  aria-label={`Remove ${title} from watch later`}
                  data-testid="watch-later-remove"
                >
                  Remove
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </Page>
  );
}
