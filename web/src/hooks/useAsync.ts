import { useCallback, useEffect, useState, type DependencyList } from 'react';
import { ApiError } from '../api/client';

export type AsyncState<T> =
  | { status: 'loading' }
  | { status: 'error'; error: string; code: string | null }
  | { status: 'ready'; data: T };

/** A readable message for any failure (the server's own when it sent one). */
export function errorMessage(err: unknown, fallback = 'Something went wrong. Try again.'): string {
  return err instanceof ApiError ? err.message : fallback;
}

/**
 * Run `load` when `deps` change (aborting the previous run) and track its state.
 * `reload()` runs it again; `setData` replaces the loaded value (optimistic updates).
 */
export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, deps: DependencyList) {
  const [state, setState] = useState<AsyncState<T>>({ status: 'loading' });
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    setState({ status: 'loading' });
    load(controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setState({ status: 'ready', data });
      },
      (err: unknown) => {
        if (controller.signal.aborted) return;
        setState({
          status: 'error',
          error: errorMessage(err),
          code: err instanceof ApiError ? err.code : null,
        });
      },
    );
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, generation]);

  const reload = useCallback(() => setGeneration((g) => g + 1), []);
  const setData = useCallback((update: (prev: T) => T) => {
    setState((s) => (s.status === 'ready' ? { status: 'ready', data: update(s.data) } : s));
  }, []);

  return { state, reload, setData };
}
