import { useEffect, type ReactNode } from 'react';

/** One screen: sets the document title and renders the heading and content in a card. */
export function Page({ title, children }: { title: string; children: ReactNode }) {
  useEffect(() => {
    document.title = `${title} · reelnet`;
  }, [title]);

  return (
    <section className="card" aria-labelledby="page-title">
      <h1 id="page-title">{title}</h1>
      {children}
    </section>
  );
}
