import type { ReactNode } from 'react';

/** A poster image, or the title's first letter when there is none; `children` overlay it (badges). */
export function PosterImage({ url, title, children }: { url: string | null | undefined; title: string; children?: ReactNode }) {
  return (
    <div className="poster">
      {url ? (
        <img src={url} alt="" loading="lazy" decoding="async" />
      ) : (
        <div className="poster-fallback" aria-hidden="true">
          {title.slice(0, 1)}
        </div>
      )}
      {children}
    </div>
  );
}
