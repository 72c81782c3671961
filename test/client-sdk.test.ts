import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JsonFileResumeStore, UploadClient, UploadError, type FetchLike, type UploadProgress } from '../client/src/node';
import { runCli, show, UPLOAD_CLI } from './helpers/cli';
import { md5, randomFile } from './helpers/client';
import { ADMIN, startServer, type TestServer } from './helpers/server';
import { assertMonotone, cuttingProxy, downloaded, uploadUntilAborted } from './helpers/sdk';
import { sendChunks } from './helpers/upload';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Quick retries: the tests provoke failures on purpose. */
const retry = { retries: 5, minDelayMs: 5, maxDelayMs: 50 };
/**
 * One chunk after another with uploadChunk (what a server without parallel parts gets): the tests
 * below that use it are about that path. client-sdk-parts.test.ts covers uploads in parts.
 */
const sequential = { parallelParts: 1 } as const;

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

  test('one chunk after another: a path interrupted by an AbortSignal, resumed by a new client (a new process) from the state file', async () => {
    const bytes = randomFile(1536 * KiB + 123);
    const file = path.join(dir, 'by-path.bin');
    await writeFile(file, bytes);
    const stateFile = path.join(dir, 'state', 'resume.json');

    const first = await client({ store: new JsonFileResumeStore(stateFile) });
    const last = await uploadUntilAborted(first, file, { ...sequential, chunkSize: 128 * KiB, description: 'from a path' }, 512 * KiB);
    assert.ok(last.bytesUploaded >= 512 * KiB && last.bytesUploaded < bytes.length, `stopped mid-way: ${JSON.stringify(last)}`);
    const stored = await new JsonFileResumeStore(stateFile).entries();
    assert.equal(stored.length, 1, 'the upload id is remembered on disk');
    const state = (await first.uploadState(last.uploadId))!;
    assert.equal(state.partSize, null, 'not an upload in parts: uploadChunk takes its chunks');
    const serverOffset = state.offset;

    const second = await client({ store: new JsonFileResumeStore(stateFile) });
    const phases = new Set<string>();
    const result = await second.upload(file, { ...sequential, chunkSize: 128 * KiB, onProgress: (p) => phases.add(p.phase) });
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

  test('one chunk after another: a Blob aborted mid-way, then resumed by a second call with the same Blob', async () => {
    const bytes = randomFile(1024 * KiB + 7);
    const blob = new Blob([bytes]);
    const c = await client();
    const firstSent = (await uploadUntilAborted(c, blob, { ...sequential, filename: 'blob.bin', chunkSize: 64 * KiB }, 300 * KiB)).bytesSent;
    let secondSent = 0;
    const result = await c.upload(blob, { ...sequential, filename: 'blob.bin', chunkSize: 64 * KiB, onProgress: (p) => (secondSent = p.bytesSent) });
    assert.ok(result.resumedFrom >= 300 * KiB, `resumed from ${result.resumedFrom}`);
    assert.equal(secondSent, bytes.length - result.resumedFrom);
    assert.equal(firstSent + secondSent, bytes.length, 'every byte was sent once');
    assert.equal(result.file.md5, md5(bytes));
    assert.deepEqual(await downloaded(c, result.file), bytes);

    // A different Blob of the same size is not mistaken for it: a new upload from 0.
    const other = await c.upload(new Blob([randomFile(bytes.length)]), { filename: 'other.bin', chunkSize: 256 * KiB });
    assert.equal(other.resumedFrom, 0);
  });

  test('one chunk after another: recovers from network errors, 5xx answers and OFFSET_MISMATCH; an empty file works', async () => {
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
      ...sequential,
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

  test('one chunk after another: progress moves while a chunk is sent, never backwards, and ends at the total', async () => {
    const bytes = randomFile(20 * MiB + 5);
    const file = path.join(dir, 'progress.bin');
    await writeFile(file, bytes);
    const c = await client();
    const events: UploadProgress[] = [];
    const result = await c.upload(file, { ...sequential, chunkSize: 8 * MiB, fingerprint: null, onProgress: (p) => events.push(p) });

    // The first chunk, before the server answered: its bytes are counted as they go out.
    const duringFirstChunk = events.filter((p) => p.bytesUploaded === 0 && p.bytesTransferred > 0);
    assert.ok(duringFirstChunk.length > 1, `${duringFirstChunk.length} reports while the first 8 MiB chunk was on its way`);
    assert.ok(duringFirstChunk.every((p) => p.bytesTransferred <= 8 * MiB));
    assertMonotone(events);
    const last = events.at(-1)!;
    assert.equal(last.phase, 'done');
    assert.equal(last.bytesTransferred, bytes.length);
    assert.equal(last.totalBytes, bytes.length);
    assert.equal(result.file.md5, md5(bytes));
    assert.deepEqual(await downloaded(c, result.file), bytes);
  });

  test('one chunk after another: a connection lost mid-chunk: the chunk is sent again and progress never goes back', async () => {
    const bytes = randomFile(16 * MiB + 5);
    // Cut 4 MiB into the second 8 MiB chunk (the login and startUpload are a few hundred bytes).
    const proxy = await cuttingProxy(server.url, 12 * MiB);
    try {
      // The server may hold the upload's lease a moment after the broken request (UPLOAD_LOCKED).
      const c = await client({ url: proxy.url, retry: { ...retry, retries: 10 } });
      const events: UploadProgress[] = [];
      let beforeFailure: UploadProgress | undefined;
      const retries: string[] = [];
      const result = await c.upload(new Blob([bytes]), {
        ...sequential,
        filename: 'cut.bin',
        chunkSize: 8 * MiB,
        onProgress: (p) => events.push(p),
        onRetry: (err) => {
          retries.push(err.code);
          beforeFailure ??= events.at(-1);
        },
      });
      assert.ok(proxy.cut(), 'the connection was broken');
      assert.equal(retries[0], 'NETWORK_ERROR');
      assert.ok(retries.every((code) => code === 'NETWORK_ERROR' || code === 'UPLOAD_LOCKED'), retries.join(', '));
      // Bytes of the lost chunk were reported before it failed, so a resend that started the
      // count again at the server's offset would have gone backwards.
      assert.ok(beforeFailure, 'progress was reported before the failure');
      assert.equal(beforeFailure.bytesUploaded, 8 * MiB);
      assert.ok(beforeFailure.bytesTransferred > 9 * MiB, `in flight at the failure: ${beforeFailure.bytesTransferred}`);
      assertMonotone(events);
      assert.equal(events.at(-1)!.bytesTransferred, bytes.length);
      assert.equal(result.bytesSent, bytes.length, 'the lost chunk counts once, as accepted');
      assert.equal(result.file.md5, md5(bytes));
      assert.deepEqual(await downloaded(c, result.file), bytes);
    } finally {
      await proxy.close();
    }
  });

  test('the command line\'s progress bar moves during a part (one line per 10% when stderr is not a terminal)', async () => {
    const bytes = randomFile(24 * MiB);
    const file = path.join(dir, 'cli-progress.bin');
    await writeFile(file, bytes);
    const run = await runCli(
      ['--url', server.url, '--username', ADMIN.username, '--password', ADMIN.password, '--chunk-size', '8M', '--no-resume', file],
      { XDG_STATE_HOME: path.join(dir, 'cli-state') },
      { script: UPLOAD_CLI },
    );
    assert.equal(run.code, 0, show(run));
    assert.equal(JSON.parse(run.stdout).md5, md5(bytes));
    const percents = [...run.stderr.matchAll(/\] +(\d+)% /g)].map((m) => Number(m[1]));
    // Three parts of 8M, sent at once: nothing is stored below 33%, so lines there come from bytes still on their way.
    assert.ok(percents.some((p) => p > 0 && p < 33), `percentages shown: ${percents.join(', ')}\n${run.stderr}`);
    assert.deepEqual(percents, [...percents].sort((a, b) => a - b), 'never backwards');
    assert.equal(percents.at(-1), 100);
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
