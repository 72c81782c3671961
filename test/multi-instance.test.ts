import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomFile } from './helpers/client';
import { NEEDS_POSTGRES } from './helpers/database';
import { ProcessFixture, type ServerInstance } from './helpers/process';
import { openChunkRequest } from './helpers/raw-chunk';
import { S3_SKIP, s3Env } from './helpers/s3';
import { sleep, withTimeout } from './helpers/timing';
import { openStalledPatch, patch, startRaw, tusRequest } from './helpers/tus';
import { completeAndVerify, resumeUpload, sendChunks, verifyDownload } from './helpers/upload';

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

describe('two server instances and a tus client that reconnects to the other one', { skip: NEEDS_POSTGRES }, () => {
  const fixture = new ProcessFixture();

  /**
   * The client's connection to A goes silent mid-PATCH (no FIN, no RST): A still holds the
   * lease. `resume` sends the rest to B, which must get the lease within seconds.
   */
  async function resumeOnTheOtherInstance(resume: (b: ServerInstance, urlOnB: string, bytes: Buffer) => Promise<Response>): Promise<void> {
    const database = await fixture.database();
    const shared = await fixture.tempDir('tus-shared');
    // A lease far longer than tus-js-client's retry delays (0, 1, 3, 5 s): waiting it out would fail.
    const env = { UPLOAD_LOCK_TTL: '60', BODY_TIMEOUT: '120' };
    const [a, b] = [await fixture.instance(env, shared, database), await fixture.instance(env, shared, database)];
    const bytes = randomFile(4 * MiB);
    const id = await startRaw(a.admin, bytes.length, 'moved.bin');
    const stalled = await openStalledPatch(a.admin, `${a.url}/tus/${id}`, 0, bytes.length, bytes.subarray(0, MiB));
    try {
      const rest = await resume(b, `${b.url}/tus/${id}`, bytes);
      assert.equal(rest.status, 204, await rest.text());
    } finally {
      stalled.destroy();
    }
    await verifyDownload(b.admin, id, bytes);
  }

  it("asks the first instance's abandoned PATCH to give the lease back, so the client goes on within seconds", async () => {
    await resumeOnTheOtherInstance(async (b, urlOnB, bytes) => {
      const head = await withTimeout(tusRequest(urlOnB, 'HEAD', { token: b.admin.token }), 6000, 'HEAD on the other instance');
      assert.equal(head.status, 200);
      const offset = Number(head.headers.get('upload-offset'));
      return withTimeout(patch(b.admin, urlOnB, offset, bytes.subarray(offset)), 10_000, 'PATCH on the other instance');
    });
  });

  it('a PATCH sent straight to the other instance (no HEAD first) asks for the lease too, after its claim is refused', async () => {
    // The stalled PATCH committed nothing yet (its first segment is far from full): offset 0.
    await resumeOnTheOtherInstance((b, urlOnB, bytes) => withTimeout(patch(b.admin, urlOnB, 0, bytes), 10_000, 'PATCH on the other instance'));
  });
});
