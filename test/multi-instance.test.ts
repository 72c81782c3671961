import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { eventually, GraphQLClient, md5, openChunkRequest, randomFile } from './helpers/client';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { spawnServer, type ServerProcess } from './helpers/process';
import { S3_SKIP, s3Env } from './helpers/s3';
import { ADMIN } from './helpers/server';

const MiB = 1024 * 1024;
const NEEDS_POSTGRES = process.env.TEST_DATABASE_URL ? false : 'two processes cannot share the embedded database: set TEST_DATABASE_URL';

/**
 * Two server processes on one database (and one bucket, or one shared DATA_DIR): a client sends
 * alternate chunks to each, one is killed in the middle of a chunk, the other finishes.
 */
function twoInstances(name: string, skip: string | false, storageEnv: () => Record<string, string>, sharedDataDir: boolean) {
  describe(`two server instances (${name})`, { skip }, () => {
    const cleanups: (() => Promise<unknown>)[] = [];
    after(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });

    it('take alternate chunks of one upload, survive one being killed mid-chunk, and store the right bytes', async () => {
      const database: TestDatabase = await createTestDatabase();
      cleanups.push(() => database.drop());
      const dirs = [await mkdtemp(path.join(os.tmpdir(), 'multi-a-')), await mkdtemp(path.join(os.tmpdir(), 'multi-b-'))];
      cleanups.push(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
      const common = {
        DATABASE_URL: database.url!,
        JWT_SECRET: randomBytes(32).toString('hex'),
        ADMIN_USERNAME: ADMIN.username,
        ADMIN_PASSWORD: ADMIN.password,
        UPLOAD_LOCK_TTL: '3',
        CHUNK_FSYNC: 'false',
        CLEANUP_INTERVAL: '0',
        ...storageEnv(),
      };
      const servers: ServerProcess[] = [];
      for (const dir of dirs) {
        const server = await spawnServer({ ...common, DATA_DIR: sharedDataDir ? dirs[0] : dir });
        servers.push(server);
        cleanups.push(() => server.kill());
      }
      const clients = await Promise.all(servers.map((s) => GraphQLClient.for(s.url).login(ADMIN.username, ADMIN.password)));

      const chunk = 1.25 * MiB;
      const bytes = randomFile(8 * chunk + 100);
      const upload = await clients[0].start('shared.bin', bytes.length);
      let offset = 0;
      for (let i = 0; i < 4; i++, offset += chunk) {
        const result = await clients[i % 2].uploadChunk(upload.id, offset, bytes.subarray(offset, offset + chunk));
        assert.equal(result.errors, undefined, JSON.stringify(result.errors));
        assert.equal(result.data.uploadChunk.offset, offset + chunk);
      }

      // Instance A dies with half a chunk received.
      const cut = openChunkRequest(clients[0], upload.id, offset);
      cut.response.catch(() => {});
      await cut.send(bytes.subarray(offset, offset + chunk / 2));
      await new Promise((r) => setTimeout(r, 200));
      await servers[0].kill('SIGKILL');

      // Instance B carries on from the committed offset once the dead writer's lease runs out.
      assert.equal((await clients[1].getUpload(upload.id)).offset, offset);
      await eventually(async () => {
        const result = await clients[1].uploadChunk(upload.id, offset, bytes.subarray(offset, offset + chunk));
        assert.equal(result.errors, undefined, JSON.stringify(result.errors));
      }, 10_000);
      offset += chunk;
      for (; offset < bytes.length; offset += chunk) {
        const result = await clients[1].uploadChunk(upload.id, offset, bytes.subarray(offset, offset + chunk));
        assert.equal(result.errors, undefined, JSON.stringify(result.errors));
      }
      const done = await clients[1].complete(upload.id, md5(bytes));
      assert.equal(done.errors, undefined, JSON.stringify(done.errors));
      const download = await clients[1].download(`/files/${done.data.completeUpload.id}/content`);
      assert.equal(md5(download.body), md5(bytes));
    });
  });
}

twoInstances('disk, one shared DATA_DIR', NEEDS_POSTGRES, () => ({ STORAGE: 'disk' }), true);
twoInstances('S3, one bucket', NEEDS_POSTGRES || S3_SKIP, s3Env, false);
