/** A React hook that loads one API resource, and reloads it while it is live. */
import * as React from 'react';

import { ApiError, Params, requestAPI } from '../request';

export interface IResource<T> {
  data: T | null;
  error: ApiError | null;
  reload: () => void;
}

/**
 * Fetch ``path`` with ``params``; while ``live(data)`` is true, fetch again every
 * ``interval`` seconds. After a failure (shown by the caller) it tries again, doubling
 * the wait each time up to a minute. Nothing is fetched while the browser tab is hidden.
 */
export function useApi<T>(
  path: string,
  params: Params,
  live: (data: T) => boolean = () => false,
  interval = 5
): IResource<T> {
  const [data, setData] = React.useState<T | null>(null);
  const [error, setError] = React.useState<ApiError | null>(null);
  const [tick, setTick] = React.useState(0);
  const key = `${path}?${JSON.stringify(params)}`;
  React.useEffect(() => {
    let cancelled = false;
    let timer: number | undefined;
    let wait = interval;
    const load = async () => {
      if (document.hidden) {
        timer = window.setTimeout(load, wait * 1000);
        return;
      }
      try {
        const result = await requestAPI<T>(path, params);
        if (cancelled) {
          return;
        }
        setData(result);
        setError(null);
        wait = interval;
        if (live(result)) {
          timer = window.setTimeout(load, wait * 1000);
        }
      } catch (e) {
        if (cancelled) {
          return;
        }
        setError(e instanceof ApiError ? e : new ApiError(String(e), 0));
        wait = Math.min(wait * 2, 60);
        timer = window.setTimeout(load, wait * 1000);
      }
    };
    void load();
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [key, tick]);
  return { data, error, reload: () => setTick(t => t + 1) };
}
