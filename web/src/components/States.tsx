import type { ReactNode } from 'react';
import { ErrorAlert } from './ErrorAlert';

/** A polite "loading" line, announced by screen readers. */
export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p role="status" className="loading">
      <span className="spinner" aria-hidden="true" />
      {label}
    </p>
  );
}

/** Nothing to show (yet), with an optional next step. */
export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

/** A failure with a way to try again. */
export function Failed({ message, onRetry }: { message: string; onRetry?: () => void }) {
  return (
    <div className="failed">
      <ErrorAlert message={message} />
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}
