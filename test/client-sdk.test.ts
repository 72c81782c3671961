import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JsonFileResumeStore, UploadClient, UploadError, type FetchLike, type UploadInput, type UploadOptions, type UploadProgress } from '../client/src/node';
import { md5, randomFile } from './helpers/client';
import { ADMIN, startServer, type TestServer } from './helpers/server';
import { sendChunks } from './helpers/upload';

const KiB = 1024;
/** Quick retries: the tests provoke failures on purpose. */
const retry = { retries: 5, minDelayMs: 5, maxDelayMs: 50 };

describe('client SDK (Node)', () => {
  let server: TestServer;
  let dir: string;

  before(async () => {
    server = await startServer();
    dir = await mkdtemp(path.join(os.tmpdir(), 'sdk-test-'));
  });

  after(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function client(extra: Partial<ConstructorParameters<typeof UploadClient>[0]> = {}): Promise<UploadClient> {
    const c = new UploadClient({ url: server.url, retry, ...extra });
    await c.login(ADMIN.username, ADMIN.password);
    return c;
  }

  /** Uploads with `c` and aborts once `abortAt` bytes are on the server; returns the last progress seen. */
  async function uploadUntilAborted(c: UploadClient, input: UploadInput, options: UploadOptions, abortAt: number): Promise<UploadProgress> {
    const controller = new AbortController();
    let last: UploadProgress | undefined;
    await assert.rejects(
      c.upload(input, {
        ...options,
        signal: controller.signal,
        onProgress: (p) => {
          last = p;
          if (p.bytesUploaded >= abortAt) controller.abort();
        },
      }),
      { name: 'AbortError' },
    );
    assert.ok(last, 'progress was reported before the abort');
    return last;
  }

  async function downloaded(c: UploadClient, file: { downloadUrl: string }): Promise<Buffer> {
    const res = await fetch(c.downloadUrl(file));
    assert.equal(res.status, 200);
    return Buffer.from(await res.arrayBuffer());
  }

  test('a path: interrupted by an AbortSignal, resumed by a new client (a new process) from the state file', async () => {
    const bytes = randomFile(1536 * KiB + 123);
    const file = path.join(dir, 'by-path.bin');
    await writeFile(file, bytes);
    const stateFile = path.join(dir, 'state', 'resume.json');

    const first = await client({ store: new JsonFileResumeStore(stateFile) });
    const last = await uploadUntilAborted(first, file, { chunkSize: 128 * KiB, description: 'from a path' }, 512 * KiB);
    assert.ok(last.bytesUploaded >= 512 * KiB && last.bytesUploaded < bytes.length, `stopped mid-way: ${JSON.stringify(last)}`);
    const stored = await new JsonFileResumeStore(stateFile).entries();
    assert.equal(stored.length, 1, 'the upload id is remembered on disk');
    const serverOffset = (await first.uploadState(last.uploadId))!.offset;

    const second = await client({ store: new JsonFileResumeStore(stateFile) });
    const phases = new Set<string>();
    const result = await second.upload(file, { chunkSize: 128 * KiB, onProgress: (p) => phases.add(p.phase) });
    assert.equal(result.uploadId, last.uploadId, 'the same upload was resumed');
    assert.equal(result.resumedFrom, serverOffset);
    assert.equal(result.bytesSent, bytes.length - serverOffset, 'only the missing bytes were sent');
    assert.ok(phases.has('hashing'), 'the bytes already on the server were hashed once');
    assert.equal(result.md5, md5(bytes));
    assert.equal(result.file.md5, md5(bytes));
    assert.equal(result.file.name, 'by-path.bin');
    assert.equal(result.file.description, 'from a path');
    assert.deepEqual(await downloaded(second, result.file), bytes);
    assert.deepEqual(await new JsonFileResumeStore(stateFile).entries(), [], 'a finished upload is forgotten');
  });

  test('a Blob: aborted mid-way, then resumed by a second call with the same Blob', async () => {
    const bytes = randomFile(1024 * KiB + 7);
    const blob = new Blob([bytes]);
    const c = await client();
    const firstSent = (await uploadUntilAborted(c, blob, { filename: 'blob.bin', chunkSize: 64 * KiB }, 300 * KiB)).bytesSent;
    let secondSent = 0;
    const result = await c.upload(blob, { filename: 'blob.bin', chunkSize: 64 * KiB, onProgress: (p) => (secondSent = p.bytesSent) });
    assert.ok(result.resumedFrom >= 300 * KiB, `resumed from ${result.resumedFrom}`);
    assert.equal(secondSent, bytes.length - result.resumedFrom);
    assert.equal(firstSent + secondSent, bytes.length, 'every byte was sent once');
    assert.equal(result.file.md5, md5(bytes));
    assert.deepEqual(await downloaded(c, result.file), bytes);

    // A different Blob of the same size is not mistaken for it: a new upload from 0.
    const other = await c.upload(new Blob([randomFile(bytes.length)]), { filename: 'other.bin', chunkSize: 256 * KiB });
    assert.equal(other.resumedFrom, 0);
  });

  test('recovers from network errors, 5xx answers and OFFSET_MISMATCH; an empty file works', async () => {
    const bytes = randomFile(640 * KiB);
    let chunkRequests = 0;
    let sdk: UploadClient | undefined;
    const flaky: FetchLike = async (input, init) => {
      if (init.body instanceof FormData) {
        chunkRequests++;
        if (chunkRequests === 2) throw new TypeError('fetch failed (simulated)');
        if (chunkRequests === 3) return new Response('<html>bad gateway</html>', { status: 502 });
        if (chunkRequests === 5) {
          // Another writer moves the upload on first: the SDK's chunk meets OFFSET_MISMATCH and
          // carries on from extensions.expectedOffset.
          const ops = JSON.parse(String(init.body.get('operations')));
          const { uploadId, offset } = ops.variables as { uploadId: string; offset: number };
          await sendChunks(server.admin, uploadId, bytes, offset, offset + 100 * KiB, 100 * KiB);
        }
      }
      return fetch(input, init);
    };
    sdk = await client({ fetch: flaky });
    const retries: string[] = [];
    const result = await sdk.upload(new Blob([bytes]), {
      filename: 'flaky.bin',
      chunkSize: 64 * KiB,
      onRetry: (err) => retries.push(err.code),
    });
    assert.deepEqual(retries, ['NETWORK_ERROR', 'HTTP_ERROR']);
    assert.equal(result.file.md5, md5(bytes));
    assert.equal(result.bytesSent, bytes.length - 100 * KiB, 'the bytes the other writer sent were skipped');
    assert.deepEqual(await downloaded(sdk, result.file), bytes);

    const empty = await sdk.upload(new Blob([]), { filename: 'empty.txt' });
    assert.equal(empty.file.size, 0);
    assert.equal(empty.file.md5, 'd41d8cd98f00b204e9800998ecf8427e');
  });

  test('resuming an upload that holds another file\'s bytes ends in a new upload, not a wrong file', async () => {
    const c = await client();
    const first = randomFile(256 * KiB);
    const { uploadId } = await uploadUntilAborted(c, new Blob([first]), { filename: 'same-size.bin', chunkSize: 64 * KiB }, 128 * KiB);
    const second = randomFile(256 * KiB);
    const result = await c.upload(new Blob([second]), { filename: 'same-size.bin', chunkSize: 64 * KiB, uploadId });
    assert.notEqual(result.uploadId, uploadId, 'the md5 at completion exposed the foreign bytes');
    assert.equal(result.file.md5, md5(second));
    assert.equal((await c.uploadState(uploadId))?.status, 'ABORTED', 'the wrong upload was given up');
  });

  test('errors that are not transient reach the caller with their API code', async () => {
    const c = new UploadClient({ url: server.url, retry });
    await assert.rejects(c.upload(new Blob(['x']), { filename: 'x.txt' }), (err: unknown) => {
      assert.ok(err instanceof UploadError);
      assert.equal(err.code, 'UNAUTHENTICATED');
      return true;
    });
    const admin = await client();
    await assert.rejects(admin.upload(new Blob(['x']), { filename: '..' }), { code: 'BAD_USER_INPUT' });
  });
});
