import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { expectCode } from './helpers/assert';
import { md5, randomFile, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { openChunkRequest, openHeldChunk } from './helpers/raw-chunk';
import { startServers, type TestServer } from './helpers/server';
import { sleep, withTimeout } from './helpers/timing';
import { assertLeaseHeld, completeAndVerify, raceChunks, resumeUpload, sendChunks, uploadFile } from './helpers/upload';

/**
 * Lease lifetime on the shared server. Short enough that a test that has to wait for a stale
 * lease (after a restart) stays quick, long enough that a chunk that succeeds within
 * RELEASE_WINDOW_MS of an abort proves the lease was released, not that it ran out.
 */
const LOCK_TTL_SECONDS = 6;
const RELEASE_WINDOW_MS = 2500;

describe(`resilience (${databaseKind})`, () => {
  let server: TestServer;
  /** Gives up on a chunk body after 1 s of silence. */
  let stallServer: TestServer;
  let alice: GraphQLClient;

  before(async () => {
    // Started side by side: booting a server is most of this file's run time.
    [server, stallServer] = await startServers({ UPLOAD_LOCK_TTL: String(LOCK_TTL_SECONDS) }, { BODY_TIMEOUT: '1' });
    alice = await server.admin.newUser();
  });
  after(() => Promise.all([server?.close(), stallServer?.close()]));

  it('a chunk cut off mid-way leaves the committed offset and releases the lease at once', async () => {
    const chunkSize = 256 * 1024;
    const bytes = randomFile(3 * chunkSize + 123);
    const upload = await alice.start('aborted.bin', bytes.length);
    await sendChunks(alice, upload.id, bytes, 0, chunkSize, chunkSize);

    // The server has claimed the lease and is writing the partial bytes when the client goes.
    const request = await openHeldChunk(alice, upload.id, chunkSize, bytes.subarray(chunkSize, chunkSize + chunkSize / 2), 500);
    request.abort();

    const resumed = await resumeUpload(alice, upload.id, bytes, chunkSize, RELEASE_WINDOW_MS);
    assert.equal(resumed.from, chunkSize, 'the offset counts only the committed bytes, not the cut-off ones');
    assert.ok(resumed.waited < LOCK_TTL_SECONDS * 1000, `resumed after ${resumed.waited} ms, before the lease could have run out`);
    await sendChunks(alice, upload.id, bytes, 2 * chunkSize, bytes.length, chunkSize);
    await completeAndVerify(alice, upload.id, bytes);
  });

  it('two chunks racing at one offset: one wins, the stored bytes are exactly the winner\'s', async (t) => {
    const prefix = randomFile(100_000);
    const candidates = [randomFile(300_000), randomFile(300_000)];
    const suffix = randomFile(50_000);
    const total = prefix.length + 300_000 + suffix.length;
    const upload = await alice.start('race2.bin', total);
    await sendChunks(alice, upload.id, prefix, 0, prefix.length, prefix.length);

    const { winner, codes } = await raceChunks(alice, upload.id, prefix.length, candidates);
    t.diagnostic(`answers: ${codes}`);
    assert.equal((await alice.getUpload(upload.id)).offset, prefix.length + 300_000);
    const stored = Buffer.concat([prefix, candidates[winner], suffix]);
    const loser = Buffer.concat([prefix, candidates[1 - winner], suffix]);
    await sendChunks(alice, upload.id, stored, prefix.length + 300_000, stored.length, suffix.length);

    expectCode(await alice.complete(upload.id, md5(loser)), 'CHECKSUM_MISMATCH');
    await completeAndVerify(alice, upload.id, stored);
  });

  it('ten chunks racing at one offset: one wins, the stored bytes are exactly the winner\'s', async (t) => {
    const prefix = randomFile(64 * 1024);
    const size = 512 * 1024;
    const candidates = Array.from({ length: 10 }, () => randomFile(size));
    const upload = await alice.start('race10.bin', prefix.length + size);
    await sendChunks(alice, upload.id, prefix, 0, prefix.length, prefix.length);

    const { winner, codes } = await raceChunks(alice, upload.id, prefix.length, candidates);
    t.diagnostic(`answers: ${codes}`);
    const stored = Buffer.concat([prefix, candidates[winner]]);
    const upl = await alice.getUpload(upload.id);
    assert.equal(upl.offset, stored.length);
    assert.equal(upl.status, 'UPLOADING');
    // Any loser's bytes in the stored file would show up here.
    expectCode(await alice.complete(upload.id, md5(Buffer.concat([prefix, candidates[(winner + 1) % 10]]))), 'CHECKSUM_MISMATCH');
    await completeAndVerify(alice, upload.id, stored);
  });

  it('completes a fully sent upload and resumes a half-sent one after a restart', async () => {
    const chunkSize = 200_000;
    const full = randomFile(3 * chunkSize + 7);
    const half = randomFile(4 * chunkSize + 11);
    const fullUpload = await alice.start('before-restart-full.bin', full.length);
    await sendChunks(alice, fullUpload.id, full, 0, full.length, chunkSize);
    const halfUpload = await alice.start('before-restart-half.bin', half.length);
    await sendChunks(alice, halfUpload.id, half, 0, 2 * chunkSize, chunkSize);

    await server.restart();

    assert.equal((await alice.getUpload(fullUpload.id)).offset, full.length);
    await completeAndVerify(alice, fullUpload.id, full);

    const resumed = await alice.getUpload(halfUpload.id);
    assert.equal(resumed.status, 'UPLOADING');
    assert.equal(resumed.offset, 2 * chunkSize, 'the restart kept every acknowledged byte');
    expectCode(await alice.uploadChunk(halfUpload.id, 0, half.subarray(0, chunkSize)), 'OFFSET_MISMATCH');
    await sendChunks(alice, halfUpload.id, half, resumed.offset, half.length, chunkSize);
    await completeAndVerify(alice, halfUpload.id, half);
  });

  it('a chunk cut off mid-way just before a restart resumes from the stored offset', async (t) => {
    const chunkSize = 256 * 1024;
    const bytes = randomFile(3 * chunkSize + 5);
    const upload = await alice.start('abort-restart.bin', bytes.length);
    await sendChunks(alice, upload.id, bytes, 0, chunkSize, chunkSize);

    const request = await openHeldChunk(alice, upload.id, chunkSize, bytes.subarray(chunkSize, chunkSize + 100_000), 500);
    request.abort();
    await server.restart();

    // A lease left behind by a stopped server may have to run out first.
    const resumed = await resumeUpload(alice, upload.id, bytes, chunkSize, LOCK_TTL_SECONDS * 1000 + 4000);
    assert.equal(resumed.from, chunkSize, 'the offset counts only the committed bytes, not the cut-off ones');
    t.diagnostic(`resumed ${resumed.waited} ms after the restart (UPLOAD_LOCK_TTL ${LOCK_TTL_SECONDS} s)`);
    await sendChunks(alice, upload.id, bytes, 2 * chunkSize, bytes.length, chunkSize);
    await completeAndVerify(alice, upload.id, bytes);
  });

  it('reads a chunk that runs past totalSize to its end before refusing it with PAYLOAD_TOO_LARGE', async () => {
    const upload = await alice.start('too-large-raw.bin', 1000);
    const request = openChunkRequest(alice, upload.id, 0);
    const total = 2 * 1024 * 1024;
    const piece = randomFile(64 * 1024);
    let sent = 0;
    let bodyFinished = false;
    let earlyAnswer: string | undefined;
    request.response.then(
      (answer) => {
        if (!bodyFinished) earlyAnswer = `${JSON.stringify(answer.errors?.map((e) => e.extensions?.code))} after ${sent} of ${total} bytes`;
      },
      () => {},
    );
    try {
      let sendError: unknown;
      try {
        for (; sent < total; sent += piece.length) {
          await withTimeout(request.send(piece), 5000, 'the server stopped reading the refused chunk');
          await sleep(5);
        }
      } catch (err) {
        sendError = err;
      }
      assert.equal(earlyAnswer, undefined, 'the server answered before the chunk\'s body was finished');
      assert.equal(sendError, undefined, `sending the chunk failed after ${sent} bytes`);
      bodyFinished = true;
      expectCode(await withTimeout(request.finish(), 5000, 'no answer to the refused chunk'), 'PAYLOAD_TOO_LARGE');
    } finally {
      request.abort();
    }
    assert.equal((await alice.getUpload(upload.id)).offset, 0);
  });

  it('refuses a chunk past totalSize with PAYLOAD_TOO_LARGE, keeps the offset, then completes with the right bytes', async () => {
    const bytes = randomFile(100_000);
    const upload = await alice.start('too-large.bin', bytes.length);
    await sendChunks(alice, upload.id, bytes, 0, 60_000, 60_000);

    // 40 000 bytes are left: one byte more, then far more.
    expectCode(await alice.uploadChunk(upload.id, 60_000, Buffer.concat([bytes.subarray(60_000), randomFile(1)])), 'PAYLOAD_TOO_LARGE');
    assert.equal((await alice.getUpload(upload.id)).offset, 60_000);
    expectCode(await alice.uploadChunk(upload.id, 60_000, randomFile(3 * 1024 * 1024)), 'PAYLOAD_TOO_LARGE');
    const after = await alice.getUpload(upload.id);
    assert.equal(after.offset, 60_000, 'a refused chunk does not move the offset');
    assert.equal(after.status, 'UPLOADING');

    await sendChunks(alice, upload.id, bytes, 60_000, bytes.length, 40_000);
    // Once full, any further byte passes totalSize.
    expectCode(await alice.uploadChunk(upload.id, bytes.length, randomFile(10)), 'PAYLOAD_TOO_LARGE');
    assert.equal((await alice.getUpload(upload.id)).offset, bytes.length);
    // The refused bytes never reached the running md5 either.
    await completeAndVerify(alice, upload.id, bytes);
  });

  it('a token stops working when its user changes the password', async () => {
    const username = `pw_${randomBytes(4).toString('hex')}`;
    const oldPassword = 'old-password-123';
    const newPassword = 'new-password-456';
    await server.admin.data(`mutation($u: String!, $p: String!) { createUser(username: $u, password: $p) { id } }`, { u: username, p: oldPassword });
    const before = await server.client.login(username, oldPassword);
    const other = await server.client.login(username, oldPassword);

    const bytes = randomFile(50_000);
    const upload = await before.start('password.bin', bytes.length);
    await sendChunks(before, upload.id, bytes, 0, 20_000, 20_000);
    const existing = await uploadFile(before, randomFile(1000), 'password-existing.bin');

    const wrong = await before.request(`mutation { changePassword(oldPassword: "not-the-password", newPassword: "whatever-789") }`);
    expectCode(wrong, 'FORBIDDEN');
    assert.equal((await before.data(`{ me { username } }`)).me.username, username, 'a refused change revokes nothing');

    const changed = await before.data(`mutation($o: String!, $n: String!) { changePassword(oldPassword: $o, newPassword: $n) }`, {
      o: oldPassword,
      n: newPassword,
    });
    assert.equal(changed.changePassword, true);

    for (const stale of [before, other]) {
      expectCode(await stale.request(`{ me { id } }`), 'UNAUTHENTICATED');
      expectCode(await stale.uploadChunk(upload.id, 20_000, bytes.subarray(20_000)), 'UNAUTHENTICATED');
      expectCode(await stale.request(`query($id: ID!) { upload(id: $id) { offset } }`, { id: upload.id }), 'UNAUTHENTICATED');
      const download = await stale.download(`/files/${existing.id}/content`);
      assert.equal(download.status, 401, 'the old token does not download either');
    }
    expectCode(
      await server.client.request(`mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }`, { u: username, p: oldPassword }),
      'UNAUTHENTICATED',
    );

    const fresh = await server.client.login(username, newPassword);
    assert.equal((await fresh.data(`{ me { username } }`)).me.username, username);
    assert.equal((await fresh.getUpload(upload.id)).offset, 20_000, 'the refused chunk wrote nothing');
    await sendChunks(fresh, upload.id, bytes, 20_000, bytes.length, 30_000);
    await completeAndVerify(fresh, upload.id, bytes);
  });

  it('cuts off a chunk whose client stalls (BODY_TIMEOUT=1), keeps the committed offset and releases the lease', async () => {
    const bob = await stallServer.admin.newUser();
    const chunkSize = 100_000;
    const bytes = randomFile(3 * chunkSize);
    const upload = await bob.start('stall.bin', bytes.length);
    await sendChunks(bob, upload.id, bytes, 0, chunkSize, chunkSize);

    const request = openChunkRequest(bob, upload.id, chunkSize);
    try {
      await request.send(bytes.subarray(chunkSize, chunkSize + 1000));
      const lastByteAt = Date.now();
      await sleep(200);
      await assertLeaseHeld(bob, upload.id);
      // Now send nothing: the server must give up on the body after BODY_TIMEOUT (1 s).
      const outcome = await withTimeout(
        request.response.then(
          (answer) => ({ answer, err: undefined }),
          (err: Error) => ({ answer: undefined, err }),
        ),
        5000,
        'the server neither answered nor closed a chunk body that stalled',
      );
      const waited = Date.now() - lastByteAt;
      assert.ok(waited >= 800, `the server waited for the 1 s idle timeout, not ${waited} ms`);
      if (outcome.answer) {
        // An answer or a closed connection are both fine; an answer refuses the chunk.
        expectCode(outcome.answer, 'BAD_USER_INPUT', 'a stalled chunk is not accepted');
        assert.equal(outcome.answer.data?.uploadChunk ?? null, null);
      }
    } finally {
      request.abort();
    }

    const resumed = await resumeUpload(bob, upload.id, bytes, chunkSize, RELEASE_WINDOW_MS);
    assert.equal(resumed.from, chunkSize, 'the stalled chunk counted nothing');
    await sendChunks(bob, upload.id, bytes, 2 * chunkSize, bytes.length, chunkSize);
    await completeAndVerify(bob, upload.id, bytes);
  });
});
