import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JsonFileResumeStore, UploadClient, type FetchLike, type UploadProgress } from '../client/src/node';
import { runCli, show, UPLOAD_CLI } from './helpers/cli';
import { md5, randomFile } from './helpers/client';
import { assertMonotone, cuttingProxy, downloaded, uploadUntilAborted } from './helpers/sdk';
import { ADMIN, startServer, type TestServer } from './helpers/server';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Quick retries: the tests provoke failures on purpose. */
const retry = { retries: 8, minDelayMs: 5, maxDelayMs: 100 };

/** One multipart request the SDK sent, and whether the server took it. */
interface SentPart {
  operation: 'uploadPart' | 'uploadChunk';
  partNumber?: number;
  chunkMd5?: string | null;
  /** md5 of the bytes in the request's file field. */
  md5: string;
  size: number;
  accepted: boolean;
  /** The lowest part number the server had not accepted when this request went out. */
  lowestMissing: number;
}

/**
 * A fetch for the SDK that records its chunk and part requests (a custom fetch sends them as
 * FormData) and counts how many are on their way at once. `holdFirst`: the first requests wait
 * until that many are open together, so a client that sends fewer at once shows as such (a
 * safety valve lets them go after 10 s, and the count then falls short).
 */
function recordingFetch(holdFirst = 0) {
  const sent: SentPart[] = [];
  let open = 0;
  let mostOpen = 0;
  let held: (() => void)[] = [];
  let holding = holdFirst > 1;
  const acceptedParts = new Set<number>();
  const fetchImpl: FetchLike = async (input, init) => {
    if (!(init.body instanceof FormData)) return fetch(input, init);
    const { query, variables } = JSON.parse(String(init.body.get('operations'))) as { query: string; variables: Record<string, unknown> };
    const file = Buffer.from(await (init.body.get('0') as Blob).arrayBuffer());
    const operation = query.includes('uploadPart(') ? 'uploadPart' : 'uploadChunk';
    let lowestMissing = 1;
    while (acceptedParts.has(lowestMissing)) lowestMissing++;
    open++;
    mostOpen = Math.max(mostOpen, open);
    try {
      if (holding) {
        if (open >= holdFirst) {
          holding = false;
          for (const release of held) release();
          held = [];
        } else {
          await new Promise<void>((resolve) => {
            held.push(resolve);
            setTimeout(resolve, 10_000).unref();
          });
        }
      }
      const res = await fetch(input, init);
      const text = await res.text();
      const accepted = (JSON.parse(text) as { data?: Record<string, unknown> | null }).data?.[operation] != null;
      const partNumber = variables.partNumber as number | undefined;
      if (accepted && partNumber) acceptedParts.add(partNumber);
      sent.push({ operation, partNumber, chunkMd5: variables.chunkMd5 as string | null, md5: md5(file), size: file.length, accepted, lowestMissing });
      return new Response(text, { status: res.status, headers: { 'content-type': res.headers.get('content-type') ?? 'application/json' } });
    } finally {
      open--;
    }
  };
  return {
    fetch: fetchImpl,
    sent,
    mostOpen: () => mostOpen,
    reset: () => {
      sent.length = 0;
      mostOpen = 0;
      acceptedParts.clear();
    },
  };
}

/** The parts [1..partCount] of `bytes`. */
function partsOf(bytes: Buffer, partSize: number): Buffer[] {
  const parts: Buffer[] = [];
  for (let start = 0; start < bytes.length; start += partSize) parts.push(bytes.subarray(start, start + partSize));
  return parts;
}

describe('client SDK: uploads in parallel parts (uploadPart)', () => {
  let server: TestServer;
  let dir: string;

  before(async () => {
    server = await startServer();
    dir = await mkdtemp(path.join(os.tmpdir(), 'sdk-parts-test-'));
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

  /** How the server holds an upload: in parts or not, and which parts it lacks. */
  async function serverView(uploadId: string): Promise<{ status: string; offset: number; partSize: number | null; partCount: number | null; missingParts: number[] }> {
    return (
      await server.admin.data(`query($id: ID!) { upload(id: $id) { status offset partSize partCount missingParts(first: 10000) } }`, { id: uploadId })
    ).upload;
  }

  test('the server offers parallel parts, and the SDK sends four parts at once, each with its md5; the file is whole', async () => {
    const c = await client();
    const limits = await c.serverLimits();
    assert.equal(limits.parallelParts, true);
    assert.ok(limits.maxPartsAhead >= 4, `maxPartsAhead ${limits.maxPartsAhead}`);

    const bytes = randomFile(MiB + 1000);
    const recorder = recordingFetch(4);
    const sdk = await client({ fetch: recorder.fetch });
    const result = await sdk.upload(new Blob([bytes]), { filename: 'parts.bin', chunkSize: 128 * KiB });

    assert.equal(recorder.mostOpen(), 4, 'four parts were on their way together (parallelParts defaults to 4)');
    const parts = partsOf(bytes, 128 * KiB);
    assert.equal(parts.length, 9);
    assert.ok(recorder.sent.every((s) => s.operation === 'uploadPart'), 'no uploadChunk for an upload in parts');
    assert.ok(recorder.sent.every((s) => s.accepted), JSON.stringify(recorder.sent.filter((s) => !s.accepted)));
    assert.deepEqual(
      recorder.sent.map((s) => s.partNumber).sort((a, b) => a! - b!),
      parts.map((_, i) => i + 1),
      'each part once',
    );
    for (const s of recorder.sent) {
      const part = parts[s.partNumber! - 1];
      assert.equal(s.size, part.length, `part ${s.partNumber}'s size`);
      assert.equal(s.md5, md5(part), `part ${s.partNumber}'s bytes`);
      assert.equal(s.chunkMd5, s.md5, `part ${s.partNumber} carries its own md5`);
    }

    const state = await serverView(result.uploadId);
    assert.deepEqual({ status: state.status, partSize: state.partSize, partCount: state.partCount }, { status: 'COMPLETE', partSize: 128 * KiB, partCount: 9 });
    assert.equal(result.resumedFrom, 0);
    assert.equal(result.bytesSent, bytes.length);
    assert.equal(result.md5, md5(bytes));
    assert.equal(result.file.md5, md5(bytes));
    assert.deepEqual(await downloaded(sdk, result.file), bytes);
  });

  test('more parts at once than the server takes ahead: never a part past maxPartsAhead, so at most maxPartsAhead + 1 on their way', async () => {
    const c = await client();
    const { maxPartsAhead } = await c.serverLimits();
    const partCount = maxPartsAhead + 16;
    const bytes = randomFile(partCount * 16 * KiB - 100);
    // The first maxPartsAhead + 1 requests wait for each other: all the window allows.
    const recorder = recordingFetch(maxPartsAhead + 1);
    // More patience than the other tests: a part at the window's edge waits for the server to
    // append the stored parts before it to its prefix (UPLOAD_LOCKED until then).
    const sdk = await client({ fetch: recorder.fetch, retry: { retries: 20, minDelayMs: 10, maxDelayMs: 500 } });
    const retries: string[] = [];
    const result = await sdk.upload(new Blob([bytes]), {
      filename: 'window.bin',
      chunkSize: 16 * KiB,
      parallelParts: maxPartsAhead + 8,
      onRetry: (err) => retries.push(err.code),
    });
    const tooFar = recorder.sent.filter((s) => s.partNumber! > s.lowestMissing + maxPartsAhead);
    assert.deepEqual(tooFar, [], 'no part was sent further ahead than the server takes');
    assert.equal(recorder.mostOpen(), maxPartsAhead + 1);
    // The server may still be appending a stored part to the prefix (UPLOAD_LOCKED), and it
    // lets a user stream only so many requests at once (RATE_LIMITED, retryAfter 1 s).
    assert.ok(retries.every((code) => code === 'UPLOAD_LOCKED' || code === 'RATE_LIMITED'), retries.join(', '));
    assert.deepEqual(
      [...new Set(recorder.sent.filter((s) => s.accepted).map((s) => s.partNumber))].sort((a, b) => a! - b!),
      Array.from({ length: partCount }, (_, i) => i + 1),
    );
    assert.equal(result.file.md5, md5(bytes));
    assert.deepEqual(await downloaded(sdk, result.file), bytes);
  });

  test('progress over Node\'s streamed requests: bytes on their way count, bytesUploaded grows by whole parts, never backwards, ends at the total', async () => {
    const bytes = randomFile(12 * MiB + 5);
    const file = path.join(dir, 'progress.bin');
    await writeFile(file, bytes);
    const c = await client();
    const events: UploadProgress[] = [];
    const result = await c.upload(file, { chunkSize: 4 * MiB, fingerprint: null, onProgress: (p) => events.push(p) });

    assert.equal((await serverView(result.uploadId)).partSize, 4 * MiB);
    const beforeFirstPart = events.filter((p) => p.bytesUploaded === 0 && p.bytesTransferred > 0);
    assert.ok(beforeFirstPart.length > 1, `${beforeFirstPart.length} reports while the first parts were on their way`);
    assertMonotone(events);
    for (const p of events) assert.ok(p.bytesTransferred >= p.bytesUploaded && p.bytesTransferred <= bytes.length, JSON.stringify(p));
    // Each step of bytesUploaded is one part stored: 4 MiB, or the last part's 5 bytes.
    const steps = events.slice(1).map((p, i) => p.bytesUploaded - events[i].bytesUploaded).filter((step) => step !== 0);
    assert.deepEqual([...steps].sort((a, b) => a - b), [5, 4 * MiB, 4 * MiB, 4 * MiB], `steps of bytesUploaded: ${steps.join(', ')}`);
    const last = events.at(-1)!;
    assert.equal(last.phase, 'done');
    assert.equal(last.bytesTransferred, bytes.length);
    assert.equal(last.bytesUploaded, bytes.length);
    assert.equal(result.md5, md5(bytes));
    assert.deepEqual(await downloaded(c, result.file), bytes);
  });

  test('a path interrupted by an AbortSignal, resumed by a new client from the state file: only the parts the server lacks are sent', async () => {
    const bytes = randomFile(2 * MiB + 123);
    const file = path.join(dir, 'by-path.bin');
    await writeFile(file, bytes);
    const stateFile = path.join(dir, 'state', 'resume.json');

    const first = await client({ store: new JsonFileResumeStore(stateFile) });
    const last = await uploadUntilAborted(first, file, { chunkSize: 128 * KiB, description: 'in parts' }, 512 * KiB);
    assert.ok(last.bytesUploaded >= 512 * KiB && last.bytesUploaded < bytes.length, `stopped mid-way: ${JSON.stringify(last)}`);
    assert.equal((await new JsonFileResumeStore(stateFile).entries()).length, 1, 'the upload id is remembered on disk');
    const before = await serverView(last.uploadId);
    assert.equal(before.partSize, 128 * KiB);
    const storedBefore = bytes.length - before.missingParts.reduce((sum, n) => sum + Math.min(128 * KiB, bytes.length - (n - 1) * 128 * KiB), 0);
    assert.ok(storedBefore >= last.bytesUploaded, `the server holds the ${last.bytesUploaded} bytes reported stored (it has ${storedBefore})`);

    const second = await client({ store: new JsonFileResumeStore(stateFile) });
    const phases = new Set<string>();
    const events: UploadProgress[] = [];
    const result = await second.upload(file, {
      chunkSize: 128 * KiB,
      onProgress: (p) => {
        phases.add(p.phase);
        events.push(p);
      },
    });
    assert.equal(result.uploadId, last.uploadId, 'the same upload was resumed');
    // Parts still on their way at the abort may have been stored after the look above.
    assert.ok(result.resumedFrom >= storedBefore, `resumed from ${result.resumedFrom}, the server held ${storedBefore}`);
    assert.equal(result.bytesSent, bytes.length - result.resumedFrom, 'only the missing parts were sent');
    assert.ok(result.bytesSent < bytes.length);
    assert.ok(phases.has('hashing'), 'the parts already on the server were read for the md5');
    assert.equal(events[0].bytesUploaded, result.resumedFrom, 'bytesUploaded starts at what the server holds');
    assertMonotone(events);
    assert.equal(events.at(-1)!.bytesTransferred, bytes.length);
    assert.equal(result.md5, md5(bytes));
    assert.equal(result.file.description, 'in parts');
    assert.deepEqual(await downloaded(second, result.file), bytes);
    assert.deepEqual(await new JsonFileResumeStore(stateFile).entries(), [], 'a finished upload is forgotten');
  });

  test('an upload in parts resumed with parallelParts: 1 stays in parts: the missing parts one at a time, none the server holds', async () => {
    const bytes = randomFile(MiB + 7);
    const blob = new Blob([bytes]);
    const recorder = recordingFetch();
    const c = await client({ fetch: recorder.fetch });
    const { uploadId } = await uploadUntilAborted(c, blob, { filename: 'blob.bin', chunkSize: 64 * KiB }, 300 * KiB);
    const held = new Set((await serverView(uploadId)).missingParts);
    const storedBefore = Array.from({ length: 17 }, (_, i) => i + 1).filter((n) => !held.has(n));

    recorder.reset();
    const result = await c.upload(blob, { filename: 'blob.bin', chunkSize: 64 * KiB, parallelParts: 1 });
    assert.equal(result.uploadId, uploadId);
    assert.equal(recorder.mostOpen(), 1, 'one part at a time');
    assert.ok(recorder.sent.every((s) => s.operation === 'uploadPart'), 'uploadChunk is refused for an upload in parts');
    const accepted = recorder.sent.filter((s) => s.accepted).map((s) => s.partNumber!);
    assert.equal(new Set(accepted).size, accepted.length, `no part stored twice: ${accepted.join(', ')}`);
    assert.deepEqual(
      accepted.filter((n) => storedBefore.includes(n)),
      [],
      `parts the server held before (${storedBefore.join(', ')}) were not sent again`,
    );
    const acceptedBytes = recorder.sent.filter((s) => s.accepted).reduce((sum, s) => sum + s.size, 0);
    assert.equal(result.bytesSent, acceptedBytes);
    assert.equal(result.resumedFrom + result.bytesSent, bytes.length);
    assert.ok(result.resumedFrom >= 300 * KiB, `resumed from ${result.resumedFrom}`);
    assert.equal(result.file.md5, md5(bytes));
    assert.deepEqual(await downloaded(c, result.file), bytes);
  });

  test('a connection lost mid-part: the parts on their way are sent again, each counted once, progress never goes back', async () => {
    const bytes = randomFile(16 * MiB + 5);
    // Cut 6 MiB into the parts (the login and startUpload are a few hundred bytes).
    const proxy = await cuttingProxy(server.url, 6 * MiB);
    try {
      // Each cut part's lease is held until the server has noticed the cut and cleaned up after
      // it (a loaded PostgreSQL takes a while): more patience than the other tests.
      const c = await client({ url: proxy.url, retry: { retries: 12, minDelayMs: 10, maxDelayMs: 500 } });
      const events: UploadProgress[] = [];
      let beforeFailure: UploadProgress | undefined;
      const retries: string[] = [];
      const result = await c.upload(new Blob([bytes]), {
        filename: 'cut.bin',
        chunkSize: 4 * MiB,
        onProgress: (p) => events.push(p),
        onRetry: (err) => {
          retries.push(err.code);
          beforeFailure ??= events.at(-1);
        },
      });
      assert.ok(proxy.cut(), 'the connection was broken');
      assert.equal(retries[0], 'NETWORK_ERROR');
      // A part whose request was cut may still hold its lease on the server a moment (UPLOAD_LOCKED).
      assert.ok(retries.every((code) => code === 'NETWORK_ERROR' || code === 'UPLOAD_LOCKED'), retries.join(', '));
      assert.ok(beforeFailure, 'progress was reported before the failure');
      assert.ok(beforeFailure.bytesTransferred > beforeFailure.bytesUploaded, `bytes on their way at the failure: ${JSON.stringify(beforeFailure)}`);
      assertMonotone(events);
      assert.equal(events.at(-1)!.bytesTransferred, bytes.length);
      assert.equal(result.bytesSent, bytes.length, 'a part sent again counts once, as accepted');
      assert.equal((await serverView(result.uploadId)).partSize, 4 * MiB);
      assert.equal(result.file.md5, md5(bytes));
      assert.deepEqual(await downloaded(c, result.file), bytes);
    } finally {
      await proxy.close();
    }
  });

  test('parallelParts: 1 for a new upload sends one chunk after another with uploadChunk', async () => {
    const bytes = randomFile(300 * KiB);
    const recorder = recordingFetch();
    const c = await client({ fetch: recorder.fetch });
    const result = await c.upload(new Blob([bytes]), { filename: 'sequential.bin', chunkSize: 64 * KiB, parallelParts: 1 });
    assert.deepEqual(
      recorder.sent.map((s) => s.operation),
      ['uploadChunk', 'uploadChunk', 'uploadChunk', 'uploadChunk', 'uploadChunk'],
    );
    assert.equal((await serverView(result.uploadId)).partSize, null);
    assert.equal(result.file.md5, md5(bytes));
  });

  test('the command line sends parts by default and one chunk after another with --parallel 1', async () => {
    const bytes = randomFile(700 * KiB);
    const inParts = path.join(dir, 'cli-parts.bin');
    const oneByOne = path.join(dir, 'cli-sequential.bin');
    await writeFile(inParts, bytes);
    await writeFile(oneByOne, bytes);
    const common = ['--url', server.url, '--username', ADMIN.username, '--password', ADMIN.password, '--chunk-size', '128K', '--quiet'];
    const env = { XDG_STATE_HOME: path.join(dir, 'cli-state') };
    for (const run of await Promise.all([
      runCli([...common, inParts], env, { script: UPLOAD_CLI }),
      runCli([...common, '--parallel', '1', oneByOne], env, { script: UPLOAD_CLI }),
    ])) {
      assert.equal(run.code, 0, show(run));
      assert.equal(JSON.parse(run.stdout).md5, md5(bytes));
    }
    const uploads: { filename: string; partSize: number | null; partCount: number | null }[] = (
      await server.admin.data(`{ myUploads(status: COMPLETE, first: 500) { filename partSize partCount } }`)
    ).myUploads;
    assert.deepEqual(
      uploads.filter((u) => u.filename.startsWith('cli-')).sort((a, b) => a.filename.localeCompare(b.filename)),
      [
        { filename: 'cli-parts.bin', partSize: 128 * KiB, partCount: 6 },
        { filename: 'cli-sequential.bin', partSize: null, partCount: null },
      ],
    );

    const help = await runCli(['--help'], {}, { script: UPLOAD_CLI });
    assert.match(help.stdout, /--parallel N +parts sent at once \(default 4\)/);
  });
});
