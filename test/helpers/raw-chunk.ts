import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { GraphQLClient, GraphQLResult } from './client';
import { multipartHeaders, uploadChunkEnvelope, uploadPartEnvelope, type MultipartEnvelope } from './multipart';
import { sleep } from './timing';
import { assertLeaseHeld } from './upload';

/**
 * uploadChunk requests for what fetch cannot do: stop half-way, stall, cut the connection,
 * pause mid-body, or pipeline another request behind the chunk on the same connection.
 */

export type OpenChunkRequest = ReturnType<typeof openChunkRequest>;

/**
 * A chunk request whose body is streamed by the test: `send` writes part of the chunk,
 * `finish` ends the body and waits for the answer, `abort` cuts the connection.
 */
export function openChunkRequest(client: GraphQLClient, uploadId: string, offset: number) {
  return openStreamedRequest(client, uploadChunkEnvelope(uploadId, offset));
}

/** The same for an uploadPart request. */
export function openPartRequest(client: GraphQLClient, uploadId: string, partNumber: number) {
  return openStreamedRequest(client, uploadPartEnvelope(uploadId, partNumber));
}

function openStreamedRequest(client: GraphQLClient, { contentType, head, tail }: MultipartEnvelope) {
  const url = new URL(`${client.url}/graphql`);
  const req = http.request({
    host: url.hostname,
    port: url.port,
    path: url.pathname,
    method: 'POST',
    headers: { ...multipartHeaders(contentType), 'transfer-encoding': 'chunked', ...client.authHeaders() },
  });
  const response = new Promise<GraphQLResult>((resolve, reject) => {
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ...JSON.parse(Buffer.concat(parts).toString()) }));
    });
    req.on('error', reject);
  });
  response.catch(() => {});
  req.write(head);
  return {
    response,
    send(bytes: Buffer): Promise<void> {
      return new Promise((resolve, reject) => req.write(bytes, (err) => (err ? reject(err) : resolve())));
    },
    finish(): Promise<GraphQLResult> {
      req.end(tail);
      return response;
    },
    /** Cuts the connection as a client that vanished would. */
    abort(): void {
      req.destroy();
    },
  };
}

/**
 * A chunk request that has sent `bytes` (part of its chunk) and, `settleMs` later, holds the
 * upload's lease (checked): ready to be cut off, or to have the server killed under it.
 */
export async function openHeldChunk(client: GraphQLClient, uploadId: string, offset: number, bytes: Buffer, settleMs = 300): Promise<OpenChunkRequest> {
  const request = openChunkRequest(client, uploadId, offset);
  await request.send(bytes);
  await sleep(settleMs);
  await assertLeaseHeld(client, uploadId);
  return request;
}

/** Sends `bytes` through an open chunk request in pieces (so the server sees them arrive over time). */
export async function sendInPieces(request: OpenChunkRequest, bytes: Buffer, piece = 64 * 1024, pauseMs = 0): Promise<void> {
  for (let at = 0; at < bytes.length; at += piece) {
    await request.send(bytes.subarray(at, at + piece));
    if (pauseMs) await sleep(pauseMs);
  }
}

export interface OneConnection {
  /** The answer to the chunk. */
  result: GraphQLResult;
  /** An answer arrived while the chunk was still being sent (paused at `pauseAt`). */
  answeredBeforeBodyEnd: boolean;
  /** The server did not announce `Connection: close` with its answer. */
  keepAlive: boolean;
  /** A GET /healthz pipelined after the chunk on the same connection was answered. */
  nextAnswered: boolean;
}

interface RawResponse {
  status: number;
  headers: string;
  body: Buffer;
}

/** Splits what a server sent on one connection into HTTP/1.1 responses (complete ones only). */
function parseResponses(data: Buffer): RawResponse[] {
  const responses: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end < 0) return responses;
    const headers = data.subarray(at, end).toString('latin1');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1]);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(headers);
    let bodyStart = end + 4;
    if (length) {
      const bodyEnd = bodyStart + Number(length[1]);
      if (data.length < bodyEnd) return responses;
      responses.push({ status, headers, body: data.subarray(bodyStart, bodyEnd) });
      at = bodyEnd;
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(headers)) {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = data.indexOf('\r\n', bodyStart);
        if (lineEnd < 0) return responses;
        const size = parseInt(data.subarray(bodyStart, lineEnd).toString('latin1'), 16);
        if (data.length < lineEnd + 2 + size + 2) return responses;
        if (size === 0) {
          at = lineEnd + 4;
          break;
        }
        parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
        bodyStart = lineEnd + 2 + size + 2;
      }
      responses.push({ status, headers, body: Buffer.concat(parts) });
    } else {
      responses.push({ status, headers, body: Buffer.alloc(0) });
      at = bodyStart;
    }
  }
}

/**
 * One uploadChunk over a raw socket of its own (so a connection the server leaves in a bad
 * state cannot affect later requests): the body is sent up to `pauseAt` bytes of the chunk,
 * then after a pause the rest, followed (unless `next: false`) by a pipelined GET /healthz on
 * the same connection.
 */
export async function chunkOnOwnConnection(
  client: GraphQLClient,
  uploadId: string,
  offset: number,
  chunk: Buffer,
  options: { chunkMd5?: string; pauseAt?: number; next?: boolean; headers?: Record<string, string> } = {},
): Promise<OneConnection> {
  const { contentType, head, tail } = uploadChunkEnvelope(uploadId, offset, options);
  const body = Buffer.concat([head, chunk, tail]);
  const headLength = head.length;
  const url = new URL(client.url);
  const headers = {
    host: url.host,
    ...multipartHeaders(contentType),
    'content-length': String(body.length),
    ...client.authHeaders(),
    ...options.headers,
  };
  const requestHead = `POST /graphql HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  const next = options.next ?? true;
  const wanted = next ? 2 : 1;

  const socket = net.connect(Number(url.port), url.hostname);
  socket.on('error', () => {}); // a reset shows as a missing answer below
  await once(socket, 'connect');
  const received: Buffer[] = [];
  let answeredBeforeBodyEnd = false;
  const done = new Promise<void>((resolve) => {
    socket.on('data', (data) => {
      received.push(data);
      if (parseResponses(Buffer.concat(received)).length >= wanted) resolve();
    });
    socket.once('close', () => resolve());
    // A wedged keep-alive connection is reset by the server after its keep-alive timeout (5 s).
    setTimeout(resolve, 6000).unref();
  });
  try {
    // Writes are not awaited: a server that stops reading must not hang the test.
    const pauseAt = Math.min(options.pauseAt ?? chunk.length, chunk.length);
    socket.write(Buffer.concat([Buffer.from(requestHead), body.subarray(0, headLength + pauseAt)]));
    if (pauseAt < chunk.length) {
      await sleep(200);
      answeredBeforeBodyEnd = received.length > 0;
    }
    socket.write(body.subarray(headLength + pauseAt));
    if (next) socket.write(`GET /healthz HTTP/1.1\r\nhost: ${url.host}\r\nconnection: close\r\n\r\n`);
    await done;
  } finally {
    socket.destroy();
  }
  const [answer, second] = parseResponses(Buffer.concat(received));
  assert.ok(answer, `no complete answer to the chunk: ${JSON.stringify(Buffer.concat(received).toString('latin1').slice(0, 300))}`);
  return {
    result: { status: answer.status, ...JSON.parse(answer.body.toString('utf8')) },
    answeredBeforeBodyEnd,
    keepAlive: !/\r\nconnection:\s*close/i.test(answer.headers),
    nextAnswered: second?.status === 200 && JSON.parse(second.body.toString()).status === 'ok',
  };
}
