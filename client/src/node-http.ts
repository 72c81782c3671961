/**
 * Node's way to send a chunk: one node:http(s) request whose multipart body is written straight
 * from the chunk's bytes, with its Content-Length known up front. fetch with FormData and a Blob
 * took two to five times as long per 8 MiB chunk as curl (issue 12), and cannot say how much of
 * a body has been sent.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { UploadError, abortReason } from './errors.js';
import type { MultipartPoster, MultipartRequest } from './transport.js';

/** Bytes per write: how finely progress follows the connection, against the cost of a write each. */
const SLICE = 256 * 1024;
/** fetch (undici) gives up on a silent server after 300 s; so does this. */
const IDLE_TIMEOUT_MS = 300_000;

const agents = {
  'http:': new http.Agent({ keepAlive: true }),
  'https:': new https.Agent({ keepAlive: true }),
};

function escapeName(name: string): string {
  return name.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/** The multipart envelope around the file's bytes: the fields and the file part's header, then the closing boundary. */
function multipartFrame(request: Pick<MultipartRequest, 'fields' | 'fileField'>): { contentType: string; head: Buffer; tail: Buffer } {
  const boundary = `----chunked-upload-${randomBytes(16).toString('hex')}`;
  let head = '';
  for (const [name, value] of request.fields) head += `--${boundary}\r\nContent-Disposition: form-data; name="${escapeName(name)}"\r\n\r\n${value}\r\n`;
  head += `--${boundary}\r\nContent-Disposition: form-data; name="${escapeName(request.fileField)}"; filename="chunk.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  return { contentType: `multipart/form-data; boundary=${boundary}`, head: Buffer.from(head), tail: Buffer.from(`\r\n--${boundary}--\r\n`) };
}

export const postMultipart: MultipartPoster = (request) =>
  new Promise((resolve, reject) => {
    const { signal, onBytesWritten } = request;
    if (signal?.aborted) return reject(abortReason(signal));
    let url: URL;
    try {
      url = new URL(request.url);
    } catch (err) {
      return reject(new UploadError('CLIENT_ERROR', `Not an absolute URL: ${request.url}`, {}, undefined, { cause: err }));
    }
    const agent = agents[url.protocol as keyof typeof agents];
    if (!agent) return reject(new UploadError('CLIENT_ERROR', `Not an http(s) URL: ${request.url}`));

    const { contentType, head, tail } = multipartFrame(request);
    const file = Buffer.from(request.file.buffer, request.file.byteOffset, request.file.byteLength);
    const req = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'POST',
      agent,
      headers: { ...request.headers, 'content-type': contentType, 'content-length': String(head.length + file.length + tail.length) },
    });

    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      req.destroy();
      reject(err);
    };
    const onAbort = () => fail(abortReason(signal!));
    signal?.addEventListener('abort', onAbort, { once: true });
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`no answer for ${IDLE_TIMEOUT_MS / 1000} s`)));
    req.on('error', (err) => fail(new UploadError('NETWORK_ERROR', `Could not reach ${request.url}: ${err.message}`, {}, undefined, { cause: err })));
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (part: Buffer) => parts.push(part));
      res.on('error', (err) => fail(new UploadError('NETWORK_ERROR', `The answer from ${request.url} broke off: ${err.message}`, {}, undefined, { cause: err })));
      res.on('end', () => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') });
      });
    });

    // The file in slices, each counted once the connection has taken it (its write callback),
    // and no faster than the connection drains: the count follows the bytes actually sent.
    let written = 0;
    let position = 0;
    const counted = (length: number) => (err?: Error | null) => {
      if (err || settled) return;
      written += length;
      try {
        onBytesWritten?.(written);
      } catch (callbackError) {
        fail(callbackError);
      }
    };
    const writeMore = () => {
      while (position < file.length) {
        const slice = file.subarray(position, Math.min(position + SLICE, file.length));
        position += slice.length;
        if (!req.write(slice, counted(slice.length))) return void req.once('drain', writeMore);
      }
      req.end(tail);
    };
    req.write(head);
    writeMore();
  });
