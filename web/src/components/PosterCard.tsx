import { Link } from 'react-router-dom';
import type { MovieCard } from '../api/types';
import { PosterImage } from './PosterImage';
import { ProgressBar } from './ProgressBar';

interface PosterCardProps {
  movie: Pick<MovieCard, 'id' | 'title' | 'year' | 'poster_url'> & Partial<Pick<MovieCard, 'availability'>>;
  /** Watched share 0..1: shows a progress bar under the poster. */
  progress?: number | undefined;
}

/** A poster that links to the movie page; its accessible name is the title (and year). */
export function PosterCard({ movie, progress }: PosterCardProps) {
  const label = movie.year ? `${movie.title} (${movie.year})` : movie.title;
  const preparing = movie.availability?.state === 'ingesting';
  const name = [
    label,
    progress !== undefined && `${Math.round(progress * 100)}% watched`,
    preparing && 'being prepared',
  ]
    .filter(Boolean)
    .join(', ');
  return (
    <Link
      to={`/movie/${encodeURIComponent(movie.id)}`}
      className="poster-card"
      aria-label={name}
      data-testid="movie-card"
      data-movie-id={movie.id}
    >
      <PosterImage url={movie.poster_url} title={movie.title}>
        {preparing && (
          <span className="badge">Preparing {Math.floor(movie.availability?.percent ?? 0)}%</span>
        )}
      </PosterImage>
      <span className="poster-title">{movie.title}</span>
      {movie.year && <span className="poster-year">{movie.year}</span>}
      {progress !== undefined && <ProgressBar fraction={progress} label="Watched" />}
    </Link>
  );
}
