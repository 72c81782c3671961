import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { expectCode, expectHealthy, expectOk } from './helpers/assert';
import { CREATE_USER, LOGIN, md5, randomFile, tag, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { chunkOnOwnConnection, openChunkRequest } from './helpers/raw-chunk';
import { ADMIN, startServers, type TestServer } from './helpers/server';
import { eventually, sleep } from './helpers/timing';
import { completeAndVerify, expectUnharmed, expectUploadAt, sendChunks } from './helpers/upload';

/**
 * What an upload refuses because of its input or its state (BAD_USER_INPUT, OFFSET_MISMATCH,
 * UPLOAD_LOCKED, PAYLOAD_TOO_LARGE past totalSize, UPLOAD_INCOMPLETE, CHECKSUM_MISMATCH,
 * UPLOAD_NOT_ACTIVE, UPLOAD_EXPIRED), over real HTTP and real GraphQL multipart requests;
 * after each refusal, the server still answers and nothing stored moved, and the upload then
 * completes with exactly the accepted bytes.
 */

const MiB = 1024 * 1024;
const FILES_NAMED = `query($s: String) { files(search: $s) { totalCount } }`;

async function fileCount(client: GraphQLClient, search: string): Promise<number> {
  return (await client.data(FILES_NAMED, { s: search })).files.totalCount;
}

describe(`error codes: upload input and state (${databaseKind})`, () => {
  let server: TestServer;
  /** UPLOAD_TTL of one second. */
  let expiring: TestServer;
  let alice: GraphQLClient;
  let dave: GraphQLClient;

  before(async () => {
    [server, expiring] = await startServers({}, { UPLOAD_TTL: '1' });
    [alice, dave] = await Promise.all([server.admin.newUser(), expiring.admin.newUser()]);
  });
  after(() => Promise.all([server?.close(), expiring?.close()]));

  describe('BAD_USER_INPUT', () => {
    it('refuses negative, fractional and unsafe totalSize, and bad filenames, creating no upload', async () => {
      const before = (await alice.data(`{ myUploads { id } }`)).myUploads.length;
      for (const totalSize of [-1, -1024, 1.5, 2 ** 53]) {
        expectCode(await alice.startUpload({ filename: 'size.bin', totalSize }), 'BAD_USER_INPUT', `totalSize ${totalSize}`);
      }
      for (const filename of ['', '.', '..', 'dir/', 'a/..', 'C:\\dir\\', '\u0000\u001f\u007f\u0085', 'x'.repeat(256), '\u00e9'.repeat(128)]) {
        expectCode(await alice.startUpload({ filename, totalSize: 1 }), 'BAD_USER_INPUT', `filename ${JSON.stringify(filename)}`);
      }
      assert.equal((await alice.data(`{ myUploads { id } }`)).myUploads.length, before, 'no upload was created');
      await expectHealthy(server.url);
    });

    it('refuses a negative or fractional offset, an empty chunk and a malformed chunkMd5', async () => {
      const bytes = randomFile(100);
      const upload = await alice.start('input.bin', bytes.length);
      await sendChunks(alice, upload.id, bytes, 0, 10, 10);
      const next = bytes.subarray(10, 60);

      expectCode(await alice.uploadChunk(upload.id, -1, next), 'BAD_USER_INPUT');
      await expectUnharmed(alice, upload.id, 10);
      expectCode(await alice.uploadChunk(upload.id, 10.5, next), 'BAD_USER_INPUT');
      await expectUnharmed(alice, upload.id, 10);
      expectCode(await alice.uploadChunk(upload.id, 10, Buffer.alloc(0)), 'BAD_USER_INPUT');
      await expectUnharmed(alice, upload.id, 10);

      const good = md5(next);
      for (const chunkMd5 of ['', 'abc', good.slice(0, 31), `${good}0`, 'g'.repeat(32), ` ${good.slice(1)}`, `${good.slice(0, 30)}-1`]) {
        expectCode(await alice.uploadChunk(upload.id, 10, next, { chunkMd5 }), 'BAD_USER_INPUT', `chunkMd5 ${JSON.stringify(chunkMd5)}`);
      }
      await expectUnharmed(alice, upload.id, 10);

      // The same bytes, well formed, are taken; nothing refused leaked into the file.
      expectOk(await alice.uploadChunk(upload.id, 10, next, { chunkMd5: good }));
      await sendChunks(alice, upload.id, bytes, 60, bytes.length, 40);
      await completeAndVerify(alice, upload.id, bytes);
    });

    it('refuses a completeUpload md5 of the wrong length or not hexadecimal, and leaves the upload open', async () => {
      const bytes = randomFile(50);
      const upload = await alice.start('md5-format.bin', bytes.length);
      await sendChunks(alice, upload.id, bytes, 0, bytes.length, bytes.length);
      const good = md5(bytes);
      for (const bad of ['', 'abc', good.slice(0, 31), `${good}a`, 'z'.repeat(32), `${good.slice(0, 31)}g`, `{${good.slice(2)}}`]) {
        expectCode(await alice.complete(upload.id, bad), 'BAD_USER_INPUT', `md5 ${JSON.stringify(bad)}`);
      }
      await expectUnharmed(alice, upload.id, bytes.length);
      await completeAndVerify(alice, upload.id, bytes);
    });

    it('refuses createUser with a username taken in another case, and keeps the first account', async () => {
      const username = `Carol_${tag()}`;
      await server.admin.data(CREATE_USER, { u: username, p: 'first-password', a: false });
      for (const taken of [username.toLowerCase(), ADMIN.username.toUpperCase()]) {
        expectCode(await server.admin.request(CREATE_USER, { u: taken, p: 'second-password', a: true }), 'BAD_USER_INPUT', taken);
      }
      await server.admin.login(username, 'first-password');
      expectCode(await server.client.request(LOGIN, { u: username.toLowerCase(), p: 'second-password' }), 'UNAUTHENTICATED');
    });
  });

  describe('OFFSET_MISMATCH', () => {
    it('says where to resume, as a number, for chunks ahead and behind, and writes nothing', async () => {
      const bytes = randomFile(3 * MiB);
      const upload = await alice.start('offsets.bin', bytes.length);
      const first = MiB;
      await sendChunks(alice, upload.id, bytes, 0, first, first);

      for (const offset of [first + 1, 2 * first, 0, first - 1]) {
        const error = expectCode(await alice.uploadChunk(upload.id, offset, bytes.subarray(offset, offset + first)), 'OFFSET_MISMATCH');
        assert.strictEqual(error.extensions?.expectedOffset, first, `at ${offset}: expectedOffset is the number ${first}`);
        await expectUnharmed(alice, upload.id, first);
      }

      // Resuming where the error said works, and the refused chunks left no trace.
      await sendChunks(alice, upload.id, bytes, first, bytes.length, bytes.length - first);
      await completeAndVerify(alice, upload.id, bytes);
    });
  });

  describe('UPLOAD_LOCKED', () => {
    it('refuses a second chunk while one is streaming; the first then finishes', async () => {
      const bytes = randomFile(2000);
      const upload = await alice.start('locked.bin', bytes.length);
      const open = openChunkRequest(alice, upload.id, 0);
      await open.send(bytes.subarray(0, 500));

      // Wait until the open chunk holds the upload. The probe is at a wrong offset so that it
      // cannot take the upload itself; while the upload is held it must answer UPLOAD_LOCKED
      // (UPLOAD_LOCKED comes before OFFSET_MISMATCH).
      await eventually(async () => {
        expectCode(await alice.uploadChunk(upload.id, 1, randomFile(1)), 'UPLOAD_LOCKED');
      });

      expectCode(await alice.uploadChunk(upload.id, 0, randomFile(1000)), 'UPLOAD_LOCKED');
      expectCode(await alice.uploadChunk(upload.id, 0, randomFile(1000), { chunkMd5: md5(randomFile(1)) }), 'UPLOAD_LOCKED');
      await expectHealthy(server.url);

      await open.send(bytes.subarray(500, 1000));
      const finished = await open.finish();
      assert.equal(finished.errors, undefined, JSON.stringify(finished.errors));
      assert.equal(finished.data.uploadChunk.offset, 1000);
      await expectUploadAt(alice, upload.id, 1000);

      // The refused chunks wrote nothing: the file is exactly the bytes of the accepted ones.
      await sendChunks(alice, upload.id, bytes, 1000, bytes.length, 1000);
      await completeAndVerify(alice, upload.id, bytes);
    });
  });

  describe('PAYLOAD_TOO_LARGE (chunk past totalSize)', () => {
    it('refuses a chunk that runs past totalSize; its bytes are not counted and the upload resumes', async () => {
      const bytes = randomFile(3 * MiB);
      const upload = await alice.start('past-total.bin', bytes.length);
      await sendChunks(alice, upload.id, bytes, 0, 2 * MiB, 2 * MiB);

      // 1.5 MiB where 1 MiB is left: the first MiB may reach the disk before the excess is seen.
      // (Sent on connections of their own: whether the connection survives is the transport test's business.)
      const tooLong = Buffer.concat([bytes.subarray(2 * MiB), randomFile(MiB / 2)]);
      expectCode((await chunkOnOwnConnection(alice, upload.id, 2 * MiB, tooLong, { next: false })).result, 'PAYLOAD_TOO_LARGE');
      await expectUnharmed(alice, upload.id, 2 * MiB);
      // A single byte too many, and a chunk past totalSize with a wrong chunkMd5 (PAYLOAD_TOO_LARGE comes first).
      const oneTooMany = Buffer.concat([bytes.subarray(2 * MiB), Buffer.from('!')]);
      expectCode((await chunkOnOwnConnection(alice, upload.id, 2 * MiB, oneTooMany, { next: false })).result, 'PAYLOAD_TOO_LARGE');
      const wrongMd5 = { next: false, chunkMd5: md5(Buffer.from('wrong')) };
      expectCode((await chunkOnOwnConnection(alice, upload.id, 2 * MiB, tooLong, wrongMd5)).result, 'PAYLOAD_TOO_LARGE');
      await expectUnharmed(alice, upload.id, 2 * MiB);

      // The refused bytes are not in the file.
      await sendChunks(alice, upload.id, bytes, 2 * MiB, bytes.length, MiB);
      await completeAndVerify(alice, upload.id, bytes);
    });
  });

  describe('UPLOAD_INCOMPLETE', () => {
    it('refuses to complete before offset == totalSize, even with the right md5', async () => {
      const bytes = randomFile(100);
      const upload = await alice.start('incomplete.bin', bytes.length);
      const nothing = expectCode(await alice.complete(upload.id, md5(bytes)), 'UPLOAD_INCOMPLETE');
      assert.deepEqual(nothing.extensions, { code: 'UPLOAD_INCOMPLETE', offset: 0, totalSize: 100 }, 'how far the upload is');
      assert.match(nothing.message, /\b0 of 100 bytes\b/);
      await expectUnharmed(alice, upload.id, 0);

      await sendChunks(alice, upload.id, bytes, 0, 99, 99);
      expectCode(await alice.complete(upload.id, md5(bytes)), 'UPLOAD_INCOMPLETE');
      expectCode(await alice.complete(upload.id, md5(bytes.subarray(0, 99))), 'UPLOAD_INCOMPLETE');
      await expectUnharmed(alice, upload.id, 99);

      await sendChunks(alice, upload.id, bytes, 99, bytes.length, 1);
      await completeAndVerify(alice, upload.id, bytes);
    });
  });

  describe('CHECKSUM_MISMATCH', () => {
    it('discards a chunk whose chunkMd5 differs; the same chunk with the right md5 is then accepted', async () => {
      const part = 1536 * 1024; // over a MiB, so the server has written bytes before it can check the md5
      const bytes = randomFile(2 * part);
      const upload = await alice.start('chunk-md5.bin', bytes.length);
      const first = bytes.subarray(0, part);
      const second = bytes.subarray(part);

      expectCode(await alice.uploadChunk(upload.id, 0, first, { chunkMd5: md5(second) }), 'CHECKSUM_MISMATCH');
      await expectUnharmed(alice, upload.id, 0);
      expectOk(await alice.uploadChunk(upload.id, 0, first, { chunkMd5: md5(first) }));

      expectCode(await alice.uploadChunk(upload.id, part, second, { chunkMd5: md5(first).toUpperCase() }), 'CHECKSUM_MISMATCH');
      await expectUnharmed(alice, upload.id, part);
      assert.equal(expectOk(await alice.uploadChunk(upload.id, part, second, { chunkMd5: md5(second) })).uploadChunk.offset, bytes.length);

      // The discarded chunks left nothing in the whole-file md5 nor on disk.
      await completeAndVerify(alice, upload.id, bytes);
    });

    it('refuses a whole-file md5 that differs: nothing is filed, the upload stays UPLOADING, the right md5 then completes it', async () => {
      const name = `whole-md5-${tag()}.bin`;
      const bytes = randomFile(1000);
      const upload = await alice.start(name, bytes.length);
      await sendChunks(alice, upload.id, bytes, 0, bytes.length, bytes.length);

      expectCode(await alice.complete(upload.id, md5(randomFile(1000))), 'CHECKSUM_MISMATCH');
      await expectUnharmed(alice, upload.id, bytes.length, 'UPLOADING');
      assert.equal(await fileCount(alice, name), 0, 'no File was created');
      expectCode(await alice.complete(upload.id, md5(bytes.subarray(0, 999))), 'CHECKSUM_MISMATCH');
      await expectUploadAt(alice, upload.id, bytes.length, 'UPLOADING');

      await completeAndVerify(alice, upload.id, bytes);
      assert.equal(await fileCount(alice, name), 1);
      await expectUploadAt(alice, upload.id, bytes.length, 'COMPLETE');
    });
  });

  describe('UPLOAD_NOT_ACTIVE', () => {
    it('refuses chunks for a COMPLETE upload', async () => {
      const bytes = randomFile(100);
      const upload = await alice.start('done.bin', bytes.length);
      await sendChunks(alice, upload.id, bytes, 0, bytes.length, bytes.length);
      await completeAndVerify(alice, upload.id, bytes);

      expectCode(await alice.uploadChunk(upload.id, bytes.length, randomFile(1)), 'UPLOAD_NOT_ACTIVE');
      expectCode(await alice.uploadChunk(upload.id, 0, bytes), 'UPLOAD_NOT_ACTIVE');
      await expectUnharmed(alice, upload.id, bytes.length, 'COMPLETE');
    });

    it('refuses chunks for an ABORTED upload, and completing it', async () => {
      const bytes = randomFile(100);
      const upload = await alice.start('aborted.bin', bytes.length);
      await sendChunks(alice, upload.id, bytes, 0, 50, 50);
      assert.equal(expectOk(await alice.abort(upload.id)).abortUpload.status, 'ABORTED');
      const offset = (await alice.getUpload(upload.id)).offset;

      expectCode(await alice.uploadChunk(upload.id, 50, bytes.subarray(50)), 'UPLOAD_NOT_ACTIVE');
      expectCode(await alice.uploadChunk(upload.id, offset, bytes.subarray(50)), 'UPLOAD_NOT_ACTIVE');
      expectCode(await alice.complete(upload.id, md5(bytes)), 'UPLOAD_NOT_ACTIVE');
      expectCode(await alice.complete(upload.id, md5(bytes.subarray(0, 50))), 'UPLOAD_NOT_ACTIVE');
      await expectUnharmed(alice, upload.id, offset, 'ABORTED');
    });
  });

  describe('UPLOAD_EXPIRED', () => {
    it('refuses chunks and completion after expiresAt; finished and aborted uploads stay UPLOAD_NOT_ACTIVE', async () => {
      const bytes = randomFile(100);
      const fullName = `full-${tag()}.bin`;
      // Within the TTL everything works (the control for what follows).
      const full = await dave.start(fullName, bytes.length);
      await sendChunks(dave, full.id, bytes, 0, bytes.length, bytes.length);
      const partial = await dave.start('partial.bin', bytes.length);
      const afterChunk = await sendChunks(dave, partial.id, bytes, 0, 50, 50);
      const done = await dave.start('done.bin', 10);
      await sendChunks(dave, done.id, bytes, 0, 10, 10);
      expectOk(await dave.complete(done.id, md5(bytes.subarray(0, 10))));
      const aborted = await dave.start('aborted.bin', 10);
      expectOk(await dave.abort(aborted.id));

      const expiresAt = Date.parse(afterChunk.expiresAt);
      assert.ok(expiresAt - Date.now() <= 1500, `expiresAt ${afterChunk.expiresAt} is UPLOAD_TTL after the last chunk`);
      await sleep(Math.max(1500, expiresAt - Date.now() + 500));

      expectCode(await dave.uploadChunk(partial.id, 50, bytes.subarray(50)), 'UPLOAD_EXPIRED');
      expectCode(await dave.complete(full.id, md5(bytes)), 'UPLOAD_EXPIRED');
      // UPLOAD_EXPIRED comes before OFFSET_MISMATCH, PAYLOAD_TOO_LARGE and CHECKSUM_MISMATCH.
      expectCode(await dave.uploadChunk(partial.id, 0, bytes), 'UPLOAD_EXPIRED');
      expectCode(await dave.uploadChunk(partial.id, 50, randomFile(500)), 'UPLOAD_EXPIRED');
      expectCode(await dave.uploadChunk(partial.id, 50, bytes.subarray(50), { chunkMd5: md5(bytes) }), 'UPLOAD_EXPIRED');
      expectCode(await dave.complete(full.id, md5(randomFile(10))), 'UPLOAD_EXPIRED');
      // NOT_FOUND comes before UPLOAD_EXPIRED (for an admin too: uploads are their owner's only).
      expectCode(await expiring.admin.uploadChunk(partial.id, 50, bytes.subarray(50)), 'NOT_FOUND');
      expectCode(await expiring.admin.complete(full.id, md5(bytes)), 'NOT_FOUND');
      // UPLOAD_NOT_ACTIVE comes before UPLOAD_EXPIRED.
      expectCode(await dave.uploadChunk(done.id, 10, randomFile(1)), 'UPLOAD_NOT_ACTIVE');
      expectCode(await dave.uploadChunk(aborted.id, 0, randomFile(10)), 'UPLOAD_NOT_ACTIVE');
      expectCode(await dave.complete(aborted.id, md5(randomFile(10))), 'UPLOAD_NOT_ACTIVE');

      // Nothing moved. The status stays UPLOADING until the cleanup job marks it EXPIRED (cleanup.test.ts).
      await expectUnharmed(dave, partial.id, 50, 'UPLOADING');
      await expectUploadAt(dave, full.id, 100, 'UPLOADING');
      assert.equal(await fileCount(dave, fullName), 0, 'the expired upload was not filed');
    });
  });
});
