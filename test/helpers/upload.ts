import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { expectCode, expectHealthy } from './assert';
import { md5, type GraphQLClient, type GraphQLResult } from './client';
import { sleep } from './timing';

/**
 * The upload protocol as a client runs it: start → chunks → complete → download and compare;
 * resuming from `upload(id).offset`. Every test that uploads goes through these.
 */

export const DEFAULT_CHUNK_SIZE = 256 * 1024;

/**
 * Sends `bytes[from, to)` in chunks of `chunkSize` (each with its chunkMd5 when `withMd5`);
 * every chunk must be accepted and move the offset to its end. Returns the upload as the last
 * chunk's answer shows it.
 */
export async function sendChunks(
  client: GraphQLClient,
  uploadId: string,
  bytes: Buffer,
  from: number,
  to: number,
  chunkSize: number,
  options: { withMd5?: boolean } = {},
): Promise<any> {
  let upload: any;
  for (let offset = from; offset < to; offset += chunkSize) {
    const end = Math.min(offset + chunkSize, to);
    const chunk = bytes.subarray(offset, end);
    const result = await client.uploadChunk(uploadId, offset, chunk, options.withMd5 ? { chunkMd5: md5(chunk) } : {});
    assert.equal(result.errors, undefined, `chunk at ${offset}: ${JSON.stringify(result.errors)}`);
    assert.equal(result.data.uploadChunk.offset, end, `the offset after the chunk at ${offset}`);
    upload = result.data.uploadChunk;
  }
  return upload;
}

/** Downloads a File with the client's token and asserts its bytes are exactly `bytes`. */
export async function verifyDownload(client: GraphQLClient, fileId: string, bytes: Buffer): Promise<void> {
  const download = await client.download(`/files/${fileId}/content`);
  assert.equal(download.status, 200, `download of ${fileId}`);
  assert.equal(download.body.length, bytes.length, 'downloaded length');
  assert.equal(md5(download.body), md5(bytes), 'the downloaded bytes are the source bytes');
}

/**
 * Completes with the md5 of `bytes` and checks the File and its download. `lockedForMs`: how
 * long completeUpload may still answer UPLOAD_LOCKED (a dead writer's lease running out);
 * any other error fails at once.
 */
export async function completeAndVerify(client: GraphQLClient, uploadId: string, bytes: Buffer, lockedForMs = 0): Promise<any> {
  const deadline = Date.now() + lockedForMs;
  let done: GraphQLResult;
  for (;;) {
    done = await client.complete(uploadId, md5(bytes));
    if (done.errors?.[0]?.extensions?.code !== 'UPLOAD_LOCKED' || Date.now() > deadline) break;
    await sleep(100);
  }
  assert.equal(done.errors, undefined, `completeUpload: ${JSON.stringify(done.errors)}`);
  const file = done.data.completeUpload;
  assert.equal(file.size, bytes.length);
  assert.equal(file.md5, md5(bytes));
  await verifyDownload(client, file.id, bytes);
  return file;
}

/** The whole protocol: start, chunks in order, complete, download and compare. Returns the File. */
export async function uploadFile(
  client: GraphQLClient,
  bytes: Buffer,
  filename: string,
  options: { chunkSize?: number; description?: string; mimeType?: string } = {},
): Promise<any> {
  const upload = await client.start(filename, bytes.length, { description: options.description, mimeType: options.mimeType });
  await sendChunks(client, upload.id, bytes, 0, bytes.length, options.chunkSize ?? DEFAULT_CHUNK_SIZE);
  return completeAndVerify(client, upload.id, bytes);
}

/**
 * The next chunk from the stored offset (`upload(id).offset`), retried while the server says
 * UPLOAD_LOCKED (a lease still held, or a dead writer's lease that has to run out); any other
 * error fails at once. Returns where it resumed, how long it took and what answered meanwhile.
 */
export async function resumeUpload(client: GraphQLClient, uploadId: string, bytes: Buffer, chunkSize: number, timeoutMs: number) {
  const started = Date.now();
  const seen: string[] = [];
  for (;;) {
    const upload = await client.getUpload(uploadId);
    const end = Math.min(upload.offset + chunkSize, bytes.length);
    const result = await client.uploadChunk(uploadId, upload.offset, bytes.subarray(upload.offset, end));
    if (!result.errors) {
      assert.equal(result.data.uploadChunk.offset, end);
      return { waited: Date.now() - started, seen, from: upload.offset as number };
    }
    const code = String(result.errors[0].extensions?.code);
    seen.push(code);
    assert.equal(code, 'UPLOAD_LOCKED', `resuming at ${upload.offset}: ${JSON.stringify(result.errors)}`);
    assert.ok(Date.now() - started < timeoutMs, `still UPLOAD_LOCKED after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/**
 * A chunk writer holds the upload's lease right now, proven without writing anything:
 * completeUpload takes the same lease, so it answers UPLOAD_LOCKED (unleased, it would answer
 * UPLOAD_INCOMPLETE or CHECKSUM_MISMATCH and change nothing).
 */
export async function assertLeaseHeld(client: GraphQLClient, uploadId: string): Promise<void> {
  expectCode(await client.complete(uploadId, md5(randomBytes(8))), 'UPLOAD_LOCKED', 'the chunk in flight holds the lease');
}

/**
 * All `candidates` at once at one offset, candidate i sent by `clients[i]` (or all by one
 * client): exactly one is stored, every other answers UPLOAD_LOCKED or OFFSET_MISMATCH (with
 * the winner's end as expectedOffset). Returns the winner and every answer's code.
 */
export async function raceChunks(
  clients: GraphQLClient | GraphQLClient[],
  uploadId: string,
  offset: number,
  candidates: Buffer[],
): Promise<{ winner: number; codes: string }> {
  const clientOf = (i: number) => (Array.isArray(clients) ? clients[i] : clients);
  const results = await Promise.all(candidates.map((chunk, i) => clientOf(i).uploadChunk(uploadId, offset, chunk)));
  const codes = results.map((r) => (r.errors ? String(r.errors[0].extensions?.code) : 'ok')).join(' ');
  const winners = results.flatMap((r, i) => (r.errors ? [] : [i]));
  assert.equal(winners.length, 1, `exactly one chunk wins: ${codes}`);
  const winner = winners[0];
  const end = offset + candidates[winner].length;
  for (const [i, r] of results.entries()) {
    if (i === winner) continue;
    assert.equal(r.errors?.length, 1, JSON.stringify(r.errors));
    const error = r.errors![0];
    if (error.extensions?.code === 'OFFSET_MISMATCH') assert.equal(error.extensions.expectedOffset, end, 'OFFSET_MISMATCH names the winner\'s end');
    else assert.equal(error.extensions?.code, 'UPLOAD_LOCKED', `a losing chunk answers UPLOAD_LOCKED or OFFSET_MISMATCH: ${JSON.stringify(error)}`);
  }
  assert.equal(results[winner].data.uploadChunk.offset, end);
  return { winner, codes };
}

/** The upload, as its owner sees it, is at `offset` with `status`: a refusal moved nothing. */
export async function expectUploadAt(owner: GraphQLClient, uploadId: string, offset: number, status = 'UPLOADING'): Promise<void> {
  const upload = await owner.getUpload(uploadId);
  assert.equal(upload.offset, offset, 'the stored offset did not move');
  assert.equal(upload.status, status);
}

/** After a refusal: the server still answers GET /healthz and the upload is where it was. */
export async function expectUnharmed(owner: GraphQLClient, uploadId: string, offset: number, status = 'UPLOADING'): Promise<void> {
  await expectHealthy(owner.url);
  await expectUploadAt(owner, uploadId, offset, status);
}
