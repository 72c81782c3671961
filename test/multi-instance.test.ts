import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomFile } from './helpers/client';
import { NEEDS_POSTGRES } from './helpers/database';
import { ProcessFixture, type ServerInstance } from './helpers/process';
import { openChunkRequest } from './helpers/raw-chunk';
import { S3_SKIP, s3Env } from './helpers/s3';
import { sleep } from './helpers/timing';
import { completeAndVerify, resumeUpload, sendChunks } from './helpers/upload';

const MiB = 1024 * 1024;

/**
 * Two server processes on one database (and one bucket, or one shared DATA_DIR): a client sends
 * alternate chunks to each, one is killed in the middle of a chunk, the other finishes.
 */
function twoInstances(name: string, skip: string | false, storageEnv: () => Record<string, string>, sharedDataDir: boolean) {
  describe(`two server instances (${name})`, { skip }, () => {
    const fixture = new ProcessFixture();

    it('take alternate chunks of one upload, survive one being killed mid-chunk, and store the right bytes', async () => {
      const database = await fixture.database();
      const env = { UPLOAD_LOCK_TTL: '3', CHUNK_FSYNC: 'false', ...storageEnv() };
      const shared = sharedDataDir ? await fixture.tempDir('multi-shared') : undefined;
      const instances: ServerInstance[] = [];
      for (const label of ['a', 'b']) instances.push(await fixture.instance(env, shared ?? (await fixture.tempDir(`multi-${label}`)), database));
      const clients = instances.map((i) => i.admin);

      const chunk = 1.25 * MiB;
      const bytes = randomFile(8 * chunk + 100);
      const upload = await clients[0].start('shared.bin', bytes.length);
      let offset = 0;
      for (let i = 0; i < 4; i++, offset += chunk) await sendChunks(clients[i % 2], upload.id, bytes, offset, offset + chunk, chunk);

      // Instance A dies with half a chunk received.
      const cut = openChunkRequest(clients[0], upload.id, offset);
      await cut.send(bytes.subarray(offset, offset + chunk / 2));
      await sleep(200);
      await instances[0].kill();

      // Instance B carries on from the committed offset once the dead writer's lease runs out.
      assert.equal((await clients[1].getUpload(upload.id)).offset, offset);
      const resumed = await resumeUpload(clients[1], upload.id, bytes, chunk, 10_000);
      assert.equal(resumed.from, offset, 'the cut-off chunk counted nothing');
      await sendChunks(clients[1], upload.id, bytes, offset + chunk, bytes.length, chunk);
      await completeAndVerify(clients[1], upload.id, bytes);
    });
  });
}

twoInstances('disk, one shared DATA_DIR', NEEDS_POSTGRES, () => ({ STORAGE: 'disk' }), true);
twoInstances('S3, one bucket', NEEDS_POSTGRES || S3_SKIP, s3Env, false);
