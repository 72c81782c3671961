/**
 * Clients that vanish mid-chunk, stall past BODY_TIMEOUT, or race twenty at one offset, against
 * the server as its own process: the lease is released at once (long before UPLOAD_LOCK_TTL),
 * the next chunk goes through, exactly one racer wins, and every upload completes with the
 * source's md5.
 *
 * *.serial.test: it measures how soon a lease is released, so the runner gives it the machine
 * to itself.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { assertCleanError, expectCode } from './helpers/assert';
import { md5, randomFile, type GraphQLResult } from './helpers/client';
import { databaseKind } from './helpers/database';
import { ProcessFixture, type ServerInstance } from './helpers/process';
import { openChunkRequest, openHeldChunk } from './helpers/raw-chunk';
import { ADMIN } from './helpers/server';
import { sleep, withTimeout } from './helpers/timing';
import { assertLeaseHeld, completeAndVerify, raceChunks, resumeUpload, sendChunks } from './helpers/upload';

// A long lease: a next chunk that succeeds within a few seconds proves the lease was released, not that it ran out.
const LOCK_TTL = 10;
const RELEASE_WITHIN_MS = 3000;

describe(`clients that vanish or stall mid-chunk (${databaseKind}; the server as its own process)`, () => {
  const fixture = new ProcessFixture();
  let node: ServerInstance;

  before(async () => {
    node = await fixture.instance({ UPLOAD_LOCK_TTL: String(LOCK_TTL), BODY_TIMEOUT: '1' });
  });

  it('a client that disconnects mid-chunk: the lease is released at once and the upload completes', { timeout: 60_000 }, async (t) => {
    const admin = node.admin;
    const chunk = 512 * 1024;
    const bytes = randomFile(3 * chunk + 77);
    const { id } = await admin.start('disconnect.bin', bytes.length);
    await sendChunks(admin, id, bytes, 0, chunk, chunk);

    const request = await openHeldChunk(admin, id, chunk, randomFile(200_000));
    request.abort();
    const cutAt = Date.now();

    const resumed = await resumeUpload(admin, id, bytes, chunk, RELEASE_WITHIN_MS);
    assert.equal(resumed.from, chunk, 'the cut-off chunk counted nothing');
    const took = Date.now() - cutAt;
    assert.ok(took < RELEASE_WITHIN_MS, `the next chunk went through ${took} ms after the disconnect (UPLOAD_LOCK_TTL ${LOCK_TTL} s)`);
    t.diagnostic(`next chunk accepted ${took} ms after the disconnect, after ${resumed.seen.length} UPLOAD_LOCKED answer(s)`);
    assert.ok(node.alive());
    await sendChunks(admin, id, bytes, 2 * chunk, bytes.length, chunk);
    await completeAndVerify(admin, id, bytes);
  });

  it('a client that stalls past BODY_TIMEOUT is cut off, the lease is released and the upload completes', { timeout: 60_000 }, async (t) => {
    const admin = node.admin;
    const chunk = 512 * 1024;
    const bytes = randomFile(3 * chunk);
    const { id } = await admin.start('stall.bin', bytes.length);
    await sendChunks(admin, id, bytes, 0, chunk, chunk);

    const request = openChunkRequest(admin, id, chunk);
    let outcome: { answer?: GraphQLResult; err?: Error };
    let cutOffAfter: number;
    try {
      await request.send(bytes.subarray(chunk, chunk + 1000));
      const lastByteAt = Date.now();
      await sleep(200);
      await assertLeaseHeld(admin, id);
      // Send nothing more: after BODY_TIMEOUT (1 s) the server must give up on the body.
      outcome = await withTimeout(
        request.response.then(
          (answer) => ({ answer }),
          (err: Error) => ({ err }),
        ),
        LOCK_TTL * 1000 - 2000,
        'the server neither answered nor closed a stalled chunk body before the lease would have run out',
      );
      cutOffAfter = Date.now() - lastByteAt;
    } finally {
      request.abort();
    }
    assert.ok(cutOffAfter >= 800, `the server waited for the 1 s idle timeout, not ${cutOffAfter} ms`);
    // An answer or a closed connection are both fine; an answer must refuse the chunk cleanly.
    if (outcome.answer) {
      assert.equal(outcome.answer.data?.uploadChunk ?? null, null, 'a stalled chunk is not accepted');
      assertCleanError(outcome.answer.errors?.[0], 'the stalled chunk');
      expectCode(outcome.answer, 'BAD_USER_INPUT', 'the stalled chunk');
    }
    t.diagnostic(
      `cut off after ${cutOffAfter} ms: ${outcome.answer ? `HTTP ${outcome.answer.status} ${JSON.stringify(outcome.answer.errors?.map((e) => [e.extensions?.code, e.message]))}` : `connection closed (${outcome.err?.message})`}`,
    );

    const cutAt = Date.now();
    const resumed = await resumeUpload(admin, id, bytes, chunk, RELEASE_WITHIN_MS);
    assert.equal(resumed.from, chunk, 'the stalled chunk counted nothing');
    assert.ok(Date.now() - cutAt < RELEASE_WITHIN_MS, 'the lease was released when the body was cut off');
    await sendChunks(admin, id, bytes, 2 * chunk, bytes.length, chunk);
    await completeAndVerify(admin, id, bytes);
  });

  it('20 clients race chunks at one offset: exactly one wins, the others are UPLOAD_LOCKED or OFFSET_MISMATCH', { timeout: 60_000 }, async (t) => {
    const admin = node.admin;
    const prefix = randomFile(100_000);
    const size = 256 * 1024;
    const suffix = randomFile(50_000);
    const { id } = await admin.start('race20.bin', prefix.length + size + suffix.length);
    await sendChunks(admin, id, prefix, 0, prefix.length, prefix.length);
    // Twenty clients, each logged in on its own.
    const clients = await Promise.all(Array.from({ length: 20 }, () => node.base.login(ADMIN.username, ADMIN.password)));
    const candidates = clients.map(() => randomFile(size));

    const { winner, codes } = await raceChunks(clients, id, prefix.length, candidates);
    t.diagnostic(`answers: ${codes}`);
    const stored = Buffer.concat([prefix, candidates[winner], suffix]);
    await sendChunks(admin, id, stored, prefix.length + size, stored.length, suffix.length);
    const loser = Buffer.concat([prefix, candidates[(winner + 1) % 20], suffix]);
    expectCode(await admin.complete(id, md5(loser)), 'CHECKSUM_MISMATCH', "no loser's bytes were stored");
    await completeAndVerify(admin, id, stored);
  });
});
