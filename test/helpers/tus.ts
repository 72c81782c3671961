import { Upload, type UploadOptions } from 'tus-js-client';
import type { GraphQLClient } from './client';

export const TUS_VERSION = '1.0.0';

export interface TusOutcome {
  /** The upload's URL on the server (its last path segment is the upload id). */
  url: string | null;
  error?: Error & { originalResponse?: { getStatus(): number } | null };
}

/** The upload id in a tus upload URL. */
export function uploadIdOf(url: string): string {
  return new URL(url).pathname.split('/').pop()!;
}

/**
 * An unmodified tus-js-client Upload of `data` to the server's /tus/ endpoint with the client's
 * token; settles with the outcome instead of throwing, so a test can look at refusals too.
 */
export function tusUpload(
  client: GraphQLClient,
  data: Buffer,
  options: Partial<UploadOptions> & { metadata?: Record<string, string> } = {},
): Promise<TusOutcome> {
  return new Promise((resolve) => {
    const upload: Upload = new Upload(data, {
      endpoint: `${client.url}/tus/`,
      headers: client.authHeaders(),
      retryDelays: [],
      ...options,
      metadata: { filename: 'tus.bin', ...options.metadata },
      onSuccess: () => resolve({ url: upload.url }),
      onError: (error) => resolve({ url: upload.url, error: error as TusOutcome['error'] }),
    });
    upload.start();
  });
}

/** The HTTP status of a failed tus-js-client upload. */
export function statusOf(outcome: TusOutcome): number | undefined {
  return outcome.error?.originalResponse?.getStatus();
}

/** A raw tus request (fetch), for what a client library would never send. */
export function tusRequest(
  url: string,
  method: string,
  { token, headers = {}, body }: { token?: string; headers?: Record<string, string>; body?: Buffer } = {},
): Promise<Response> {
  return fetch(url, {
    method,
    headers: { 'tus-resumable': TUS_VERSION, ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body,
  });
}
