import { randomBytes } from 'node:crypto';

/**
 * The one builder of GraphQL multipart request bodies (the multipart request spec: an
 * `operations` field, a `map` field, then the files). Every test that sends a multipart request
 * builds it here, whether it goes out through fetch, a streamed http.request or a raw socket.
 */

/** The fields of uploadChunk's answer that the tests read. */
export const UPLOAD_FIELDS = 'id filename description mimeType totalSize offset status createdAt expiresAt chunkSize maxChunkSize';

export const UPLOAD_CHUNK = `mutation($id: ID!, $offset: SafeInt!, $chunk: Upload!, $chunkMd5: String) {
  uploadChunk(uploadId: $id, offset: $offset, chunk: $chunk, chunkMd5: $chunkMd5) { ${UPLOAD_FIELDS} } }`;

export const UPLOAD_PART = `mutation($id: ID!, $part: Int!, $chunk: Upload!, $chunkMd5: String) {
  uploadPart(uploadId: $id, partNumber: $part, chunk: $chunk, chunkMd5: $chunkMd5) { ${UPLOAD_FIELDS} partSize partCount missingParts } }`;

/** One form field; with `filename` it is a file. */
export interface MultipartPart {
  name: string;
  value: string | Buffer;
  filename?: string;
}

export interface Multipart {
  /** The Content-Type header, with the boundary. */
  contentType: string;
  body: Buffer;
}

/** A chunk request with the chunk's bytes left out: send `head`, the bytes, then `tail`. */
export interface MultipartEnvelope {
  contentType: string;
  head: Buffer;
  tail: Buffer;
}

/** The headers of a multipart request; `preflight: false` leaves out the CSRF-prevention header. */
export function multipartHeaders(contentType: string, preflight = true): Record<string, string> {
  return { 'content-type': contentType, ...(preflight ? { 'apollo-require-preflight': 'true' } : {}) };
}

function partHead(boundary: string, part: { name: string; filename?: string }): string {
  const disposition = `form-data; name="${part.name}"${part.filename === undefined ? '' : `; filename="${part.filename}"`}`;
  const type = part.filename === undefined ? '' : 'Content-Type: application/octet-stream\r\n';
  return `--${boundary}\r\nContent-Disposition: ${disposition}\r\n${type}\r\n`;
}

const newBoundary = () => `----test${randomBytes(8).toString('hex')}`;

/** `parts` as a multipart/form-data body, in the order given (well formed or not: the parts are the test's). */
export function encodeMultipart(parts: MultipartPart[], boundary = newBoundary()): Multipart {
  const pieces = parts.flatMap((part) => [Buffer.from(partHead(boundary, part)), Buffer.from(part.value), Buffer.from('\r\n')]);
  pieces.push(Buffer.from(`--${boundary}--\r\n`));
  return { contentType: `multipart/form-data; boundary=${boundary}`, body: Buffer.concat(pieces) };
}

/** The `operations` of an uploadChunk request (the chunk variable is null, as the spec wants). */
export function uploadChunkOperations(uploadId: string, offset: number, chunkMd5?: string): string {
  return JSON.stringify({ query: UPLOAD_CHUNK, variables: { id: uploadId, offset, chunk: null, chunkMd5: chunkMd5 ?? null } });
}

/** An uploadChunk request around a chunk still to be sent (streamed, paused or cut off by the caller). */
export function uploadChunkEnvelope(uploadId: string, offset: number, options: { chunkMd5?: string } = {}): MultipartEnvelope {
  return envelope(uploadChunkOperations(uploadId, offset, options.chunkMd5));
}

/** An uploadPart request around a part still to be sent. */
export function uploadPartEnvelope(uploadId: string, partNumber: number, options: { chunkMd5?: string } = {}): MultipartEnvelope {
  return envelope(JSON.stringify({ query: UPLOAD_PART, variables: { id: uploadId, part: partNumber, chunk: null, chunkMd5: options.chunkMd5 ?? null } }));
}

/** A request with `operations` whose `variables.chunk` is file `0`, the file's bytes left out. */
function envelope(operations: string): MultipartEnvelope {
  const boundary = newBoundary();
  const fields = encodeMultipart(
    [
      { name: 'operations', value: operations },
      { name: 'map', value: JSON.stringify({ 0: ['variables.chunk'] }) },
    ],
    boundary,
  );
  // The fields without the closing boundary, then the file part's header.
  const head = Buffer.concat([fields.body.subarray(0, fields.body.length - `--${boundary}--\r\n`.length), Buffer.from(partHead(boundary, { name: '0', filename: 'chunk.bin' }))]);
  return { contentType: fields.contentType, head, tail: Buffer.from(`\r\n--${boundary}--\r\n`) };
}

/** A whole uploadChunk request: operations, map, then the chunk as file `0`. */
export function uploadChunkBody(uploadId: string, offset: number, chunk: Buffer, options: { chunkMd5?: string } = {}): Multipart {
  const { contentType, head, tail } = uploadChunkEnvelope(uploadId, offset, options);
  return { contentType, body: Buffer.concat([head, chunk, tail]) };
}

/** A whole uploadPart request: operations, map, then the part as file `0`. */
export function uploadPartBody(uploadId: string, partNumber: number, part: Buffer, options: { chunkMd5?: string } = {}): Multipart {
  const { contentType, head, tail } = uploadPartEnvelope(uploadId, partNumber, options);
  return { contentType, body: Buffer.concat([head, part, tail]) };
}
