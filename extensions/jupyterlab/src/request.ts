/**
 * The one helper that calls nbtrail's server extension. Every failure becomes an
 * `ApiError` with a sentence the panel can show as it is.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly kind: string | null = null
  ) {
    super(message);
  }

  /** The store has no database yet: an empty state, not a failure. */
  get noStore(): boolean {
    return this.kind === 'StoreNotFoundError';
  }
}

export type Params = { [name: string]: string | number | boolean | null | undefined };

/** The URL of an API path, with query arguments (empty ones left out). */
export function apiUrl(
  path: string,
  params: Params = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  const query = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
  const url = URLExt.join(settings.baseUrl, 'nbtrail', 'api', path);
  return query ? `${url}?${query}` : url;
}

/** Call the API; resolve with its JSON, or reject with an ApiError. */
export async function requestAPI<T>(
  path: string,
  params: Params = {},
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(apiUrl(path, params, settings), init, settings);
  } catch (error) {
    throw new ApiError(
      `The Jupyter server cannot be reached (${(error as Error).message}); is it still running?`,
      0
    );
  }
  const text = await response.text();
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    if (response.status === 404 && !(body && body.error)) {
      throw new ApiError(
        "nbtrail's server extension is not enabled on this Jupyter server: run " +
          '`jupyter server extension enable nbtrail` and restart JupyterLab.',
        404
      );
    }
    const message =
      body && typeof body.message === 'string'
        ? body.message
        : `The server answered ${response.status} ${response.statusText}`;
    throw new ApiError(message, response.status, body && body.error ? body.error : null);
  }
  return body as T;
}

/** POST a JSON body to the API; resolve with the answer, or reject with an ApiError. */
export function postAPI<T>(path: string, body: object, params: Params = {}): Promise<T> {
  return requestAPI<T>(path, params, { method: 'POST', body: JSON.stringify(body) });
}
