import { useEffect, type ReactNode } from 'react';

interface PageProps {
  title: string;
  children: ReactNode;
  /** Full-width screen (home, lists, movie) instead of a narrow form card. */
  wide?: boolean;
  /** Hide the visible heading (it stays for screen readers), e.g. when the content shows the title itself. */
  hideTitle?: boolean;
}

/** One screen: sets the document title and renders the heading and content. */
export function Page({ title, children, wide = false, hideTitle = false }: PageProps) {
  useEffect(() => {
    document.title = `${title} · reelnet`;
  }, [title]);

  return (
    <section className={wide ? 'screen' : 'card'} aria-labelledby="page-title">
      <h1 id="page-title" className={hideTitle ? 'visually-hidden' : undefined}>
        {title}
      </h1>
      {children}
    </section>
  );
}
