import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config';
import { openStore } from '../src/storage';
import { FileMissingError, type FileStore, type StoredUpload, type WriterLease } from '../src/storage/file-store';
import { randomFile } from './helpers/client';
import { S3_SKIP, s3Env } from './helpers/s3';

const MiB = 1024 * 1024;

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

function chunksOf(bytes: Buffer, piece = 64 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < bytes.length; i += piece) yield bytes.subarray(i, i + piece);
    })(),
  );
}

function failingAfter(bytes: Buffer, failAt: number): Readable {
  return Readable.from(
    (async function* () {
      yield bytes.subarray(0, failAt);
      throw new Error('client went away');
    })(),
  );
}

let generations = 0;

/** A lease as a writer sees it; `lost` makes it refuse as a writer past its deadline does. */
function lease(): WriterLease & { lost: boolean } {
  return {
    generation: ++generations,
    lost: false,
    assertHeld() {
      if (this.lost) throw new Error('lease lost');
    },
  };
}

/** A chunk body that sends `first`, then waits until `release()` before sending `rest`: a writer frozen mid-chunk. */
function frozenAfter(first: Buffer, rest: Buffer): { body: Readable; release: () => void } {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const body = Readable.from(
    (async function* () {
      yield first;
      await released;
      yield* chunksOf(rest);
    })(),
  );
  return { body, release };
}

/** Writes `bytes` in chunks of the given sizes, committing each returned state as the service does. */
async function writeAll(store: FileStore, upload: StoredUpload, bytes: Buffer, sizes: number[]): Promise<StoredUpload> {
  let current = upload;
  let i = 0;
  while (current.offset < bytes.length) {
    const size = sizes[i++ % sizes.length];
    const chunk = bytes.subarray(current.offset, current.offset + size);
    const written = await store.writeChunk(current, chunksOf(chunk), lease());
    assert.equal(written.bytesWritten, chunk.length);
    await store.stateCommitted(current.id, current.state, written.state);
    current = { ...current, offset: current.offset + written.bytesWritten, state: written.state };
  }
  return current;
}

/** One behavioural suite every storage backend must pass. */
function conformance(name: string, env: () => Record<string, string>, skip: string | false) {
  describe(`FileStore conformance: ${name}`, { skip }, () => {
    let dataDir: string;
    let store: FileStore;
    let n = 0;
    const newId = () => `00000000-0000-4000-8000-${String(Date.now() % 1e6).padStart(6, '0')}${String(++n).padStart(6, '0')}`;

    const start = async (totalSize: number): Promise<StoredUpload> => {
      const id = newId();
      return { id, totalSize, offset: 0, state: await store.createUpload(id, totalSize) };
    };

    before(async () => {
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'store-test-'));
      store = await openStore(loadConfig({ DATA_DIR: dataDir, CHUNK_FSYNC: 'false', ...env() }));
    });
    after(() => rm(dataDir, { recursive: true, force: true }));

    it('stores chunks of any size in order, publishes them, and reads them back whole and by range', async () => {
      const bytes = randomFile(12 * MiB + 123);
      const upload = await writeAll(store, await start(bytes.length), bytes, [3 * MiB, 1, 700 * 1024, 6 * MiB]);
      await store.publishUpload(upload, upload.id);
      assert.equal(md5(await readAll(await store.readFile(upload.id))), md5(bytes));
      const range = await readAll(await store.readFile(upload.id, { start: 5 * MiB - 2, end: 5 * MiB + 1 }));
      assert.deepEqual(range, bytes.subarray(5 * MiB - 2, 5 * MiB + 2));
      const last = await readAll(await store.readFile(upload.id, { start: bytes.length - 1, end: bytes.length - 1 }));
      assert.deepEqual(last, bytes.subarray(bytes.length - 1));
    });

    it('lets a failed write leave the committed bytes intact, and the retry wins', async () => {
      const bytes = randomFile(7 * MiB);
      let upload = await writeAll(store, await start(bytes.length), bytes.subarray(0, 2 * MiB), [2 * MiB]);
      const rest = bytes.subarray(upload.offset);
      await assert.rejects(store.writeChunk(upload, failingAfter(rest, MiB), lease()), /client went away/);
      // A different retry (different bytes were cut off) at the same committed offset and state.
      const written = await store.writeChunk(upload, chunksOf(rest), lease());
      upload = { ...upload, offset: upload.offset + written.bytesWritten, state: written.state };
      await store.publishUpload(upload, upload.id);
      assert.equal(md5(await readAll(await store.readFile(upload.id))), md5(bytes));
    });

    it('writes nothing for a writer whose lease is already lost', async () => {
      const bytes = randomFile(6 * MiB);
      const upload = await writeAll(store, await start(bytes.length), bytes.subarray(0, MiB), [MiB]);
      const gone = lease();
      gone.lost = true;
      await assert.rejects(store.writeChunk(upload, chunksOf(randomFile(5 * MiB)), gone), /lease lost/);
      const done = await writeAll(store, upload, bytes, [5 * MiB]);
      await store.publishUpload(done, done.id);
      assert.equal(md5(await readAll(await store.readFile(done.id))), md5(bytes));
    });

    it('fences off a writer frozen mid-chunk: what it writes after a takeover never becomes visible', { timeout: 60_000 }, async () => {
      // Big enough that both writers cut full parts on S3 (5 MiB parts in these tests).
      const bytes = randomFile(19 * MiB + 77);
      // A committed prefix of exactly one part: the frozen writer's next part numbers are free, nothing else stops it.
      const upload = await writeAll(store, await start(bytes.length), bytes.subarray(0, 5 * MiB), [5 * MiB]);

      // Writer 1 (an older generation) starts its chunk and freezes with most of it unsent.
      const junk = randomFile(12 * MiB);
      const frozen = frozenAfter(junk.subarray(0, 64 * 1024), junk.subarray(64 * 1024));
      const oldWriter = store.writeChunk(upload, frozen.body, lease());
      await new Promise((resolve) => setTimeout(resolve, 200));

      // Its lease ran out; writer 2 takes over, fences, writes the real bytes and commits.
      const taker = lease();
      const fencedState = await store.fenceOlderWriters(upload, taker);
      await store.stateCommitted(upload.id, upload.state, fencedState);
      const fenced = { ...upload, state: fencedState };
      const rest = bytes.subarray(fenced.offset, fenced.offset + 12 * MiB);
      const written = await store.writeChunk(fenced, chunksOf(rest), taker);
      await store.stateCommitted(fenced.id, fenced.state, written.state);
      let current: StoredUpload = { ...fenced, offset: fenced.offset + written.bytesWritten, state: written.state };

      // Writer 1 wakes up and writes everything it had, past all of its own checks.
      frozen.release();
      await oldWriter.catch(() => undefined);

      current = await writeAll(store, current, bytes, [4 * MiB]);
      await store.publishUpload(current, current.id);
      assert.equal(md5(await readAll(await store.readFile(current.id))), md5(bytes), 'the file is exactly the bytes the current holders wrote');
    });

    it('fences off an older writer even before the first byte (no partial bytes exist yet)', { timeout: 60_000 }, async () => {
      const bytes = randomFile(11 * MiB + 5);
      const upload = await start(bytes.length);
      const taker = lease();
      const fencedState = await store.fenceOlderWriters(upload, taker);
      await store.stateCommitted(upload.id, upload.state, fencedState);
      let current = await writeAll(store, { ...upload, state: fencedState }, bytes.subarray(0, 5 * MiB), [5 * MiB]);

      // The older writer wakes with the state it read before the takeover, past its own checks.
      await store.writeChunk(upload, chunksOf(randomFile(6 * MiB)), lease()).catch(() => undefined);

      current = await writeAll(store, current, bytes, [5 * MiB]);
      await store.publishUpload(current, current.id);
      assert.equal(md5(await readAll(await store.readFile(current.id))), md5(bytes), 'the file is exactly the bytes the current holder wrote');
    });

    it('publishes idempotently (a completion retried after its commit was lost)', async () => {
      const bytes = randomFile(1000);
      const upload = await writeAll(store, await start(bytes.length), bytes, [1000]);
      await store.publishUpload(upload, upload.id);
      await store.publishUpload(upload, upload.id);
      assert.equal(md5(await readAll(await store.readFile(upload.id))), md5(bytes));
    });

    it('stores an empty file', async () => {
      const upload = await start(0);
      await store.publishUpload(upload, upload.id);
      assert.equal((await readAll(await store.readFile(upload.id))).length, 0);
    });

    it('lists uploads in progress and files, and deletes both', async () => {
      const bytes = randomFile(100);
      const pending = await writeAll(store, await start(bytes.length), bytes, [40]);
      const finished = await writeAll(store, await start(bytes.length), bytes, [100]);
      await store.publishUpload(finished, finished.id);
      const uploads: string[] = [];
      for await (const id of store.listUploadIds()) uploads.push(id);
      const files: string[] = [];
      for await (const id of store.listFileIds()) files.push(id);
      assert.ok(uploads.includes(pending.id), 'the pending upload is listed');
      assert.ok(!uploads.includes(finished.id), 'a published upload is no longer in progress');
      assert.ok(files.includes(finished.id));
      assert.ok(!files.includes(pending.id), 'bytes in progress are not a file');

      await store.deleteUpload(pending.id, pending.state);
      await store.deleteUpload(pending.id); // no error the second time, nor without state
      const after: string[] = [];
      for await (const id of store.listUploadIds()) after.push(id);
      assert.ok(!after.includes(pending.id));

      await store.deleteFile(finished.id);
      await store.deleteFile(finished.id);
      await assert.rejects(store.readFile(finished.id), FileMissingError);
    });
  });
}

conformance('disk', () => ({ STORAGE: 'disk' }), false);
conformance('s3', s3Env, S3_SKIP);
