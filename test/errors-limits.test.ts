import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { expectCode, expectHealthy, expectOk, outcome } from './helpers/assert';
import { md5, randomFile, type GraphQLClient, type GraphQLResult } from './helpers/client';
import { databaseKind } from './helpers/database';
import { chunkOnOwnConnection, type OneConnection } from './helpers/raw-chunk';
import { startServers, type TestServer } from './helpers/server';
import { expiredToken } from './helpers/tokens';
import { completeAndVerify, expectUnharmed, sendChunks } from './helpers/upload';

/**
 * The configured maxima (MAX_FILE_SIZE, MAX_CHUNK_SIZE) and the transport under refusals: a
 * refused chunk is read to its end before the answer, the connection stays usable, and a
 * multipart request without the CSRF-prevention header is refused before anything runs.
 */

const MiB = 1024 * 1024;
// The limits server: MAX_FILE_SIZE above MAX_CHUNK_SIZE, so an oversize chunk is not also one past totalSize.
const MAX_FILE_SIZE = 10_000;
const MAX_CHUNK_SIZE = 4096;

describe(`error codes: configured limits and the transport (${databaseKind})`, () => {
  let server: TestServer;
  /** MAX_FILE_SIZE and MAX_CHUNK_SIZE set low. */
  let limited: TestServer;
  let alice: GraphQLClient;
  let bob: GraphQLClient;
  let carol: GraphQLClient;

  before(async () => {
    [server, limited] = await startServers({}, { MAX_FILE_SIZE: String(MAX_FILE_SIZE), MAX_CHUNK_SIZE: String(MAX_CHUNK_SIZE) });
    [alice, bob, carol] = await Promise.all([server.admin.newUser(), server.admin.newUser(), limited.admin.newUser()]);
  });
  after(() => Promise.all([server?.close(), limited?.close()]));

  describe('PAYLOAD_TOO_LARGE (configured maxima)', () => {
    it('serverLimits tells a client the maxima before it starts (with a token only)', async () => {
      assert.deepEqual((await carol.data(`{ serverLimits { maxFileSize maxChunkSize } }`)).serverLimits, {
        maxFileSize: MAX_FILE_SIZE,
        maxChunkSize: MAX_CHUNK_SIZE,
      });
      expectCode(await limited.client.request(`{ serverLimits { maxFileSize } }`), 'UNAUTHENTICATED');
    });

    it('refuses a totalSize over MAX_FILE_SIZE; exactly MAX_FILE_SIZE is allowed', async () => {
      const count = async () => (await carol.data(`{ myUploads { id } }`)).myUploads.length;
      const before = await count();
      expectCode(await carol.startUpload({ filename: 'big.bin', totalSize: MAX_FILE_SIZE + 1 }), 'PAYLOAD_TOO_LARGE');
      expectCode(await carol.startUpload({ filename: 'big.bin', totalSize: 2 ** 53 - 1 }), 'PAYLOAD_TOO_LARGE');
      assert.equal(await count(), before, 'no upload was created');
      // BAD_USER_INPUT comes before PAYLOAD_TOO_LARGE.
      expectCode(await carol.startUpload({ filename: '..', totalSize: MAX_FILE_SIZE + 1 }), 'BAD_USER_INPUT');
      await expectHealthy(limited.url);
      assert.equal((await carol.start('max.bin', MAX_FILE_SIZE)).totalSize, MAX_FILE_SIZE);
    });

    it('refuses a chunk over MAX_CHUNK_SIZE, by one byte or by a lot; exactly MAX_CHUNK_SIZE is accepted', async () => {
      const bytes = randomFile(MAX_FILE_SIZE);
      const upload = await carol.start('chunks.bin', bytes.length);
      for (const size of [MAX_CHUNK_SIZE + 1, 64 * 1024, 2 * MiB]) {
        expectCode(await carol.uploadChunk(upload.id, 0, randomFile(size)), 'PAYLOAD_TOO_LARGE', `a ${size}-byte chunk`);
        await expectUnharmed(carol, upload.id, 0);
      }

      await sendChunks(carol, upload.id, bytes, 0, bytes.length, MAX_CHUNK_SIZE, { withMd5: true });
      await completeAndVerify(carol, upload.id, bytes);
    });

    it('an oversize chunk still gets the codes that come before PAYLOAD_TOO_LARGE', async () => {
      const upload = await carol.start('oversize-precedence.bin', MAX_FILE_SIZE);
      await sendChunks(carol, upload.id, randomFile(100), 0, 100, 100);
      const aborted = await carol.start('oversize-aborted.bin', MAX_FILE_SIZE);
      expectOk(await carol.abort(aborted.id));
      const other = limited.admin; // another user (an admin: uploads are still their owner's only)
      const oversize = randomFile(MAX_CHUNK_SIZE + 1);

      const cases: [string, string, GraphQLResult][] = [
        ['no token', 'UNAUTHENTICATED', await limited.client.uploadChunk(upload.id, 100, oversize)],
        ['a negative offset', 'BAD_USER_INPUT', await carol.uploadChunk(upload.id, -1, oversize)],
        ['a malformed chunkMd5', 'BAD_USER_INPUT', await carol.uploadChunk(upload.id, 100, oversize, { chunkMd5: 'nope' })],
        ["another user's upload", 'NOT_FOUND', await other.uploadChunk(upload.id, 100, oversize)],
        ['an unknown upload', 'NOT_FOUND', await carol.uploadChunk(randomUUID(), 0, oversize)],
        ['an aborted upload', 'UPLOAD_NOT_ACTIVE', await carol.uploadChunk(aborted.id, 0, oversize)],
        ['a wrong offset', 'OFFSET_MISMATCH', await carol.uploadChunk(upload.id, 5, oversize)],
      ];
      assert.deepEqual(
        cases.map(([what, , result]) => `${what}: ${outcome(result)}`),
        cases.map(([what, code]) => `${what}: ${code}`),
      );
      await expectUnharmed(carol, upload.id, 100);
    });
  });

  describe('transport', () => {
    it('refuses a multipart request without apollo-require-preflight with 400, writes nothing and stays up', async () => {
      const bytes = randomFile(2 * MiB);
      const upload = await alice.start('csrf.bin', bytes.length);
      const refused = await alice.uploadChunk(upload.id, 0, bytes, { preflight: false });
      assert.equal(refused.status, 400, JSON.stringify(refused));
      expectCode(refused, 'BAD_REQUEST');
      assert.equal(refused.data, undefined, 'the operation did not run');
      await expectUnharmed(alice, upload.id, 0);

      // Control: the same request with the header is accepted.
      await sendChunks(alice, upload.id, bytes, 0, bytes.length, bytes.length);
    });

    it('reads every refused chunk to its end before answering, and keeps the connection usable', async () => {
      const size = 2 * MiB;
      const pauseAt = 1.5 * MiB; // past every limit below, before the end of the chunk
      const open = await alice.start('transport-open.bin', 4 * MiB);
      const small = await alice.start('transport-small.bin', MiB);
      const aborted = await alice.start('transport-aborted.bin', 4 * MiB);
      expectOk(await alice.abort(aborted.id));
      const limitedUpload = await carol.start('transport-limited.bin', MAX_FILE_SIZE);
      const expired = server.client.withToken(expiredToken({ sub: randomUUID(), ver: 0 }, server.app.services.config.jwtSecret));

      const cases: [string, string, () => Promise<OneConnection>][] = [
        ['no token', 'UNAUTHENTICATED', () => chunkOnOwnConnection(server.client, open.id, 0, randomFile(size), { pauseAt })],
        ['an expired token', 'UNAUTHENTICATED', () => chunkOnOwnConnection(expired, open.id, 0, randomFile(size), { pauseAt })],
        ['a negative offset', 'BAD_USER_INPUT', () => chunkOnOwnConnection(alice, open.id, -1, randomFile(size), { pauseAt })],
        ["another user's upload", 'NOT_FOUND', () => chunkOnOwnConnection(bob, open.id, 0, randomFile(size), { pauseAt })],
        ['an aborted upload', 'UPLOAD_NOT_ACTIVE', () => chunkOnOwnConnection(alice, aborted.id, 0, randomFile(size), { pauseAt })],
        ['a wrong offset', 'OFFSET_MISMATCH', () => chunkOnOwnConnection(alice, open.id, 7, randomFile(size), { pauseAt })],
        ['a chunk past totalSize', 'PAYLOAD_TOO_LARGE', () => chunkOnOwnConnection(alice, small.id, 0, randomFile(size), { pauseAt })],
        ['a chunk over MAX_CHUNK_SIZE', 'PAYLOAD_TOO_LARGE', () => chunkOnOwnConnection(carol, limitedUpload.id, 0, randomFile(size), { pauseAt })],
        ['a wrong chunkMd5', 'CHECKSUM_MISMATCH', () => chunkOnOwnConnection(alice, open.id, 0, randomFile(size), { pauseAt, chunkMd5: md5(Buffer.from('x')) })],
      ];
      const problems: string[] = [];
      for (const [what, code, send] of cases) {
        const sent = await send();
        if (outcome(sent.result) !== code) problems.push(`${what}: ${outcome(sent.result)} instead of ${code}`);
        if (sent.answeredBeforeBodyEnd) problems.push(`${what}: answered before the chunk was fully sent`);
        if (sent.keepAlive && !sent.nextAnswered) {
          problems.push(`${what}: the connection was kept alive, but the next request on it got no answer (the rest of the chunk was never read)`);
        }
      }
      assert.deepEqual(problems, []);

      // Control: an accepted chunk on the same kind of connection, and nothing refused was stored.
      await expectUnharmed(alice, open.id, 0);
      await expectUnharmed(alice, small.id, 0);
      const accepted = await chunkOnOwnConnection(alice, open.id, 0, randomFile(size), { pauseAt });
      assert.equal(outcome(accepted.result), 'OK');
      assert.equal(accepted.result.data.uploadChunk.offset, size);
      // Either is right for HTTP/1.1: the connection is closed, or it answers the next request.
      assert.ok(accepted.nextAnswered || !accepted.keepAlive, 'the connection stays usable after an accepted chunk');
    });
  });
});
