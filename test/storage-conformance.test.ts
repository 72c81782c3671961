import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config';
import { openStore } from '../src/storage';
import { FileMissingError, type FileStore, type StoredUpload } from '../src/storage/file-store';
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

/** Writes `bytes` in chunks of the given sizes, committing each returned state as the service does. */
async function writeAll(store: FileStore, upload: StoredUpload, bytes: Buffer, sizes: number[]): Promise<StoredUpload> {
  let current = upload;
  let i = 0;
  while (current.offset < bytes.length) {
    const size = sizes[i++ % sizes.length];
    const chunk = bytes.subarray(current.offset, current.offset + size);
    const written = await store.writeChunk(current, chunksOf(chunk));
    assert.equal(written.bytesWritten, chunk.length);
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
      await assert.rejects(store.writeChunk(upload, failingAfter(rest, MiB)), /client went away/);
      // A different retry (different bytes were cut off) at the same committed offset and state.
      const written = await store.writeChunk(upload, chunksOf(rest));
      upload = { ...upload, offset: upload.offset + written.bytesWritten, state: written.state };
      await store.publishUpload(upload, upload.id);
      assert.equal(md5(await readAll(await store.readFile(upload.id))), md5(bytes));
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
