import type { ReactNode } from 'react';
import type { AsyncState } from '../hooks/useAsync';
import type { MovieCard } from '../api/types';
import { PosterCard } from './PosterCard';
import { Failed, Loading } from './States';

export interface RowItem {
  movie: Pick<MovieCard, 'id' | 'title' | 'year' | 'poster_url'> & Partial<Pick<MovieCard, 'availability'>>;
  progress?: number;
}

interface PosterRowProps {
  title: string;
  /** `data-testid` of the row, e.g. `row-continue`. */
  testId: string;
  state: AsyncState<RowItem[]>;
  /** Shown when the row loaded empty; omit to hide an empty row. */
  empty?: ReactNode;
  onRetry?: () => void;
}

/** One titled, horizontally scrolling row of posters on the home page. */
export function PosterRow({ title, testId, state, empty, onRetry }: PosterRowProps) {
  if (state.status === 'ready' && state.data.length === 0 && empty === undefined) return null;
  const headingId = `${testId}-title`;
  return (
    <section className="row" aria-labelledby={headingId} data-testid={testId}>
      <h2 id={headingId}>{title}</h2>
      {state.status === 'loading' && <Loading />}
      {state.status === 'error' && <Failed message={state.error} {...(onRetry && { onRetry })} />}
      {state.status === 'ready' && state.data.length === 0 && <p className="muted">{empty}</p>}
      {state.status === 'ready' && state.data.length > 0 && (
        <ul className="poster-list" role="list">
          {state.data.map((item) => (
            <li key={item.movie.id}>
              <PosterCard movie={item.movie} progress={item.progress} />
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
