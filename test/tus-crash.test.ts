import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { md5, randomFile } from './helpers/client';
import { ProcessFixture } from './helpers/process';
import { S3_SKIP, s3Env } from './helpers/s3';
import { eventually } from './helpers/timing';
import { openStalledPatch, startRaw, statusOf, tusRequest, tusUpload } from './helpers/tus';
import { verifyDownload } from './helpers/upload';

const MiB = 1024 * 1024;

describe('tus: the server SIGKILLed in the middle of a one-PATCH upload', () => {
  const fixture = new ProcessFixture();

  for (const storage of ['disk', 's3'] as const) {
    it(`resumes after a restart from the bytes really stored, to a matching md5 (${storage})`, { skip: storage === 's3' && S3_SKIP }, async () => {
      // Segments of 4 MiB commit as the PATCH streams; a short lease lets the dead process's run out soon.
      const node = await fixture.instance({ MAX_CHUNK_SIZE: String(4 * MiB), UPLOAD_LOCK_TTL: '3', ...(storage === 's3' ? s3Env() : {}) });
      const alice = await node.admin.newUser();
      const bytes = randomFile(24 * MiB + 321);
      const id = await startRaw(alice, bytes.length, `crash-${storage}.bin`);
      const url = `${node.url}/tus/${id}`;
      // One PATCH for the whole file, killed once two 4 MiB segments are committed and more is on its way.
      const patching = await openStalledPatch(alice, url, 0, bytes.length, bytes.subarray(0, 10 * MiB));
      await eventually(async () => assert.ok((await alice.getUpload(id)).offset >= 8 * MiB), 20_000);
      await node.kill();
      patching.destroy();

      await node.restart();
      const head = await tusRequest(`${node.url}/tus/${id}`, 'HEAD', { token: alice.token });
      assert.equal(head.status, 200);
      const offset = Number(head.headers.get('upload-offset'));
      assert.ok(offset >= 8 * MiB && offset <= 10 * MiB && offset % (4 * MiB) === 0, `whole committed segments, no more (offset ${offset})`);

      // An unmodified client resumes from the URL it was given; it retries while the dead
      // process's lease runs out (423).
      const resumed = await tusUpload(alice, bytes, {
        endpoint: `${node.url}/tus/`,
        uploadUrl: `${node.url}/tus/${id}`,
        retryDelays: [500, 1000, 2000, 3000],
        metadata: { filename: `crash-${storage}.bin`, md5: md5(bytes) },
      });
      assert.equal(resumed.error, undefined, `resumed upload: ${String(resumed.error)} (${statusOf(resumed)})`);
      await verifyDownload(alice, id, bytes);
    });
  }
});
