/**
 * PostgreSQL restarted while chunks stream, queries poll and /healthz is asked, against the
 * server as its own process: requests in flight get an HTTP answer with a clean GraphQL error
 * (no dropped connection, no crash), the same process recovers, and the uploads resume from
 * their stored offsets and complete with the source's md5.
 *
 * *.serial.test: it restarts the PostgreSQL server, so the runner gives it the machine to
 * itself. Needs TEST_DATABASE_URL (skipped on the embedded database).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertCleanError } from './helpers/assert';
import { healthStatus, randomFile, type GraphQLResult } from './helpers/client';
import { assertPartPrefix, assertRowsMatchBytes } from './helpers/consistency';
import { NEEDS_POSTGRES } from './helpers/database';
import { ProcessFixture } from './helpers/process';
import { openChunkRequest, type OpenChunkRequest } from './helpers/raw-chunk';
import { ensurePostgresUp, restartPostgres } from './helpers/system';
import { eventually, sleep, withTimeout } from './helpers/timing';
import { assertLeaseHeld, completeAndVerify, resumeUpload, sendChunks } from './helpers/upload';

const MiB = 1024 * 1024;

describe('PostgreSQL restarted while uploads run', { skip: NEEDS_POSTGRES }, () => {
  const fixture = new ProcessFixture();
  const LOCK_TTL = 2;

  it('requests in flight fail with a clean GraphQL error, the same process recovers, the uploads resume and complete', { timeout: 120_000 }, async (t) => {
    const node = await fixture.instance({ UPLOAD_LOCK_TTL: String(LOCK_TTL), BODY_TIMEOUT: '30' });
    const admin = node.admin;
    const chunk = 1 * MiB;
    const streamed = randomFile(4 * chunk + 5);
    const polled = randomFile(4 * chunk + 9);
    const streamedId = (await admin.start('pg-restart-streamed.bin', streamed.length)).id;
    const polledId = (await admin.start('pg-restart-polled.bin', polled.length)).id;
    await sendChunks(admin, streamedId, streamed, 0, chunk, chunk);
    await sendChunks(admin, polledId, polled, 0, chunk, chunk);

    const results: { what: string; result?: GraphQLResult; err?: string }[] = [];
    const health: number[] = [];
    let restarting = true;
    let restartDone = 0;
    let slow: OpenChunkRequest | undefined;
    try {
      // A chunk whose body streams slowly across the whole restart.
      slow = openChunkRequest(admin, streamedId, chunk);
      await slow.send(streamed.subarray(chunk, chunk + 64 * 1024));
      await sleep(300);
      await assertLeaseHeld(admin, streamedId);
      const slowBody = (async () => {
        let at = chunk + 64 * 1024;
        while (restarting || Date.now() - restartDone < 500) {
          const end = Math.min(at + 16 * 1024, 2 * chunk - 1);
          if (end > at) await slow!.send(streamed.subarray(at, end));
          at = end;
          await sleep(50);
        }
        await slow!.send(streamed.subarray(at, 2 * chunk));
        return slow!.finish();
      })();
      slowBody.catch(() => {}); // awaited below; if the test fails first, not an unhandled rejection

      // Small chunks and queries at the other upload, and /healthz, all through the restart.
      const traffic = (async () => {
        let offset = chunk;
        while (restarting || Date.now() - restartDone < 300) {
          const piece = 32 * 1024;
          const outcomes = await Promise.allSettled([
            admin.uploadChunk(polledId, offset, polled.subarray(offset, offset + piece)),
            admin.request(`query($id: ID!) { upload(id: $id) { offset } }`, { id: polledId }),
            healthStatus(node.url),
          ]);
          const [c, q, h] = outcomes;
          for (const [what, o] of [['uploadChunk', c], ['upload', q]] as const) {
            if (o.status === 'fulfilled') results.push({ what, result: o.value as GraphQLResult });
            else results.push({ what, err: String(o.reason) });
          }
          if (h.status === 'fulfilled') health.push(h.value);
          if (c.status === 'fulfilled' && !(c.value as GraphQLResult).errors) offset += piece;
          else if (c.status === 'fulfilled') {
            const expected = (c.value as GraphQLResult).errors?.[0].extensions?.expectedOffset;
            if (typeof expected === 'number') offset = expected;
          }
          await sleep(30);
        }
      })();
      traffic.catch(() => {});

      await sleep(200);
      const restartStarted = Date.now();
      await restartPostgres();
      restartDone = Date.now();
      restarting = false;
      t.diagnostic(`pg_ctlcluster restart took ${restartDone - restartStarted} ms`);

      // The same process answers /healthz again within a few seconds.
      let healthyAfter = -1;
      await eventually(async () => {
        assert.equal(await healthStatus(node.url), 200);
        healthyAfter = Date.now() - restartDone;
      }, 5000);
      t.diagnostic(`/healthz 200 again ${healthyAfter} ms after PostgreSQL was back`);
      assert.ok(node.alive(), 'the server process survived the database restart');

      const slowOutcome = await withTimeout(slowBody.then((r) => ({ r }), (err: Error) => ({ err })), 15_000, 'no answer to the chunk that streamed across the restart');
      await traffic;

      // What the clients saw.
      assert.ok('r' in slowOutcome, `the chunk streaming across the restart got an answer, not a dropped connection: ${'err' in slowOutcome ? slowOutcome.err : ''}`);
      const slowAnswer = slowOutcome.r;
      if (slowAnswer.errors) assertCleanError(slowAnswer.errors[0], 'the chunk streaming across the restart');
      t.diagnostic(`chunk streaming across the restart: HTTP ${slowAnswer.status} ${slowAnswer.errors ? JSON.stringify(slowAnswer.errors.map((e) => [e.extensions?.code, e.message])) : 'accepted'}`);

      const dropped = results.filter((r) => r.err);
      assert.deepEqual(dropped, [], 'every request got an HTTP answer (no dropped connection, no crash)');
      const failed = results.filter((r) => r.result?.errors);
      const codes = new Map<string, number>();
      for (const f of failed) {
        for (const e of f.result!.errors!) {
          assertCleanError(e, `${f.what} during the restart`);
          const key = `${f.what} ${e.extensions?.code} (HTTP ${f.result!.status}): ${e.message}`;
          codes.set(key, (codes.get(key) ?? 0) + 1);
        }
      }
      t.diagnostic(`${results.length} requests during the restart, ${failed.length} failed: ${JSON.stringify([...codes])}`);
      t.diagnostic(`/healthz during the restart: ${JSON.stringify([...new Set(health)])}`);
      assert.ok(failed.length > 0 || health.some((s) => s !== 200), 'the traffic really ran into the outage (at least one request failed)');
    } finally {
      restarting = false;
      slow?.abort();
      await ensurePostgresUp();
    }

    // Both uploads resume from their stored offsets (after the stuck lease, if any, runs out) and complete.
    assert.ok(node.alive(), 'the server process is still the same one');
    for (const [id, b] of [[streamedId, streamed], [polledId, polled]] as const) {
      const upload = await admin.getUpload(id);
      await assertPartPrefix(node, id, b, upload.offset);
      await resumeUpload(admin, id, b, chunk, LOCK_TTL * 1000 + 8000);
      const now = await admin.getUpload(id);
      await sendChunks(admin, id, b, now.offset, b.length, chunk);
      await completeAndVerify(admin, id, b);
    }
    await assertRowsMatchBytes(node, false);
  });
});
