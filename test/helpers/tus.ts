import assert from 'node:assert/strict';
import http from 'node:http';
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

export const b64 = (text: string) => Buffer.from(text).toString('base64');

/** POST /tus/ without bytes; the new upload's id. */
export async function startRaw(client: GraphQLClient, length: number, filename: string): Promise<string> {
  const res = await tusRequest(`${client.url}/tus/`, 'POST', {
    token: client.token,
    headers: { 'upload-length': String(length), 'upload-metadata': `filename ${b64(filename)}` },
  });
  assert.equal(res.status, 201, await res.text());
  return res.headers.get('location')!.split('/').pop()!;
}

export function patch(client: GraphQLClient, url: string, offset: number, body: Buffer): Promise<Response> {
  return tusRequest(url, 'PATCH', {
    token: client.token,
    headers: { 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream' },
    body,
  });
}

/** A PATCH announcing `length` bytes that sends `first` and then nothing more, its socket kept open. */
export function openStalledPatch(client: GraphQLClient, url: string, offset: number, length: number, first: Buffer): Promise<http.ClientRequest> {
  const req = http.request(url, {
    method: 'PATCH',
    headers: {
      'tus-resumable': '1.0.0',
      authorization: `Bearer ${client.token}`,
      'upload-offset': String(offset),
      'content-type': 'application/offset+octet-stream',
      'content-length': String(length - offset),
    },
  });
  req.on('error', () => {});
  return new Promise((resolve) => req.write(first, () => setTimeout(() => resolve(req), 300)));
}

/** A PATCH whose connection is destroyed after `sendBytes` of `body`. */
export async function dropMidway(client: GraphQLClient, url: string, offset: number, body: Buffer, sendBytes: number): Promise<void> {
  const req = await openStalledPatch(client, url, offset, offset + body.length, body.subarray(0, sendBytes));
  const closed = new Promise((resolve) => req.once('close', resolve));
  req.destroy();
  await closed;
}
