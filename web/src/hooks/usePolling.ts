import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError } from '../api/client';
import { errorMessage } from './useAsync';

export type PollState<T> = {
  /** The newest answer (kept while a later poll fails, so a page does not flicker). */
  data: T | null;
  /** The newest failure, cleared by the next success. */
  error: string | null;
  /** The HTTP status of that failure (0 without an answer). */
  errorStatus: number | null;
  loading: boolean;
};

/**
 * Run `load` now and every `everyMs` while the component is mounted (live updates while a
 * console page is open). Polls do not overlap; `refresh()` polls at once (after an action).
 */
export function usePolling<T>(load: (signal: AbortSignal) => Promise<T>, everyMs: number) {
  const [state, setState] = useState<PollState<T>>({ data: null, error: null, errorStatus: null, loading: true });
  const loadRef = useRef(load);
  loadRef.current = load;
  const [tick, setTick] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = () => {
      loadRef.current(controller.signal).then(
        (data) => {
          if (controller.signal.aborted) return;
          setState({ data, error: null, errorStatus: null, loading: false });
          timer = setTimeout(run, everyMs);
        },
        (err: unknown) => {
          if (controller.signal.aborted) return;
          setState((s) => ({
            ...s,
            error: errorMessage(err),
            errorStatus: err instanceof ApiError ? err.status : null,
            loading: false,
          }));
          timer = setTimeout(run, everyMs);
        },
      );
    };
    run();
    return () => {
      controller.abort();
      if (timer) clearTimeout(timer);
    };
  }, [everyMs, tick]);

  const refresh = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, refresh };
}
