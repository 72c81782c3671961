import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { LeaseRepository } from '../src/uploads/lease.repository';
import { md5, randomFile } from './helpers/client';
import { sleep } from './helpers/timing';
import { verifyDownload } from './helpers/upload';
import { databaseKind } from './helpers/database';
import { S3_SKIP, s3Env } from './helpers/s3';
import { startServer, type TestServer } from './helpers/server';

const MiB = 1024 * 1024;
const LEASE_TTL_SECONDS = 2;

/**
 * A writer that froze after passing its last lease check (a GC pause, a suspended VM) and
 * wakes up after another request took the upload over. Here the frozen writer is played by
 * the test itself, through the same lease repository and store the server uses, so the
 * freeze lands exactly where no local check can help; the multi-process suite freezes a
 * real server process with SIGSTOP.
 */
for (const backend of [
  { name: 'disk', env: (): Record<string, string> => ({}), skip: false as const },
  { name: 's3', env: s3Env, skip: S3_SKIP },
]) {
  describe(`a writer frozen past its lease (${backend.name} storage, ${databaseKind} database)`, { skip: backend.skip }, () => {
    let server: TestServer | undefined;
    after(() => server?.close());

    it('cannot change what the request that took over stored: the upload completes with the source md5', { timeout: 60_000 }, async () => {
      server = await startServer({ UPLOAD_LOCK_TTL: String(LEASE_TTL_SECONDS), ...backend.env() });
      const { admin, app } = server;
      // Exactly two 5 MiB parts per chunk on S3: the frozen writer's part numbers are the next ones.
      const chunk = 10 * MiB;
      const bytes = randomFile(3 * chunk + 4321);
      const { id } = await admin.start('frozen-writer.bin', bytes.length);
      assert.equal((await admin.uploadChunk(id, 0, bytes.subarray(0, chunk))).errors, undefined);
      const { me } = await admin.data<{ me: { id: string } }>('{ me { id } }');

      // The frozen writer claims the next chunk as a request would, then stops answering.
      const leases = new LeaseRepository(app.database.orm, LEASE_TTL_SECONDS, 3600);
      const frozen = await leases.claim(id, me.id, chunk);
      assert.ok(frozen, 'the first writer gets the lease');
      assert.equal(frozen.lease.tookOver, false);
      await sleep(LEASE_TTL_SECONDS * 1000 + 300);

      // The client retries: its request takes the lease over, fences, stores and commits.
      const retried = await admin.uploadChunk(id, chunk, bytes.subarray(chunk, 2 * chunk));
      assert.equal(retried.errors, undefined, JSON.stringify(retried.errors));
      assert.equal(retried.data.uploadChunk.offset, 2 * chunk);

      // The frozen writer wakes up and writes the chunk it had, with the state it read back then.
      const stale = { id, totalSize: bytes.length, offset: chunk, state: frozen.upload.storageState ?? null };
      const passedItsChecks = { generation: frozen.lease.generation, assertHeld() {} };
      await app.store.writeChunk(stale, Readable.from([randomFile(chunk)]), passedItsChecks).catch(() => undefined);
      const committed = await leases.commitChunk(frozen.lease, { offset: chunk, bytesWritten: chunk, md5State: new Uint8Array(), storageState: null });
      assert.equal(committed, undefined, 'the database refuses the frozen writer\'s commit');

      assert.equal((await admin.uploadChunk(id, 2 * chunk, bytes.subarray(2 * chunk))).errors, undefined);
      const done = await admin.complete(id, md5(bytes));
      assert.equal(done.errors, undefined, `completeUpload: ${JSON.stringify(done.errors)}`);
      await verifyDownload(admin, done.data.completeUpload.id, bytes);
    });
  });
}
