import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { after, before, describe, it } from 'node:test';
import { expectCode, expectHealthy, expectOk, outcome } from './helpers/assert';
import { CREATE_USER, LOGIN, md5, ME, randomFile, tag, UPLOAD_FIELDS, type GraphQLClient, type GraphQLResult } from './helpers/client';
import { databaseKind } from './helpers/database';
import { ADMIN, startServer, type TestServer } from './helpers/server';
import { expiredToken, randomSecret, signedToken, unsignedToken } from './helpers/tokens';
import { completeAndVerify, expectUnharmed, expectUploadAt, sendChunks } from './helpers/upload';

/**
 * Who may ask (UNAUTHENTICATED, FORBIDDEN, NOT_FOUND as API.md lists them for the upload spine)
 * and which code comes first when several apply, over real HTTP and real GraphQL multipart
 * requests; after each refusal, the server still answers and nothing stored moved.
 */

const UPLOAD = `query($id: ID!) { upload(id: $id) { ${UPLOAD_FIELDS} } }`;

describe(`error codes: access and precedence (${databaseKind})`, () => {
  let server: TestServer;
  /** Shared users; neither ever starts an upload here (bob and the admin own none). */
  let alice: GraphQLClient;
  let bob: GraphQLClient;
  let anonymous: GraphQLClient;

  before(async () => {
    server = await startServer();
    [alice, bob] = await Promise.all([server.admin.newUser(), server.admin.newUser()]);
    anonymous = server.client;
  });
  after(() => server?.close());

  describe('UNAUTHENTICATED', () => {
    it('refuses me, startUpload, upload, myUploads, completeUpload, abortUpload and a multipart uploadChunk without a token', async () => {
      const bytes = randomFile(2 * 1024 * 1024);
      const upload = await alice.start('anonymous.bin', bytes.length);

      const me = await anonymous.request(ME);
      expectCode(me, 'UNAUTHENTICATED');
      assert.equal(me.data?.me ?? null, null, 'no user is reported');
      expectCode(await anonymous.startUpload({ filename: 'a.txt', totalSize: 1 }), 'UNAUTHENTICATED');
      expectCode(await anonymous.request(UPLOAD, { id: upload.id }), 'UNAUTHENTICATED');
      expectCode(await anonymous.request(`{ myUploads { id } }`), 'UNAUTHENTICATED');

      // A real 2 MiB multipart chunk: the answer is the GraphQL error, not a reset connection.
      const chunk = await anonymous.uploadChunk(upload.id, 0, bytes);
      expectCode(chunk, 'UNAUTHENTICATED');
      await expectUnharmed(alice, upload.id, 0);

      expectCode(await anonymous.complete(upload.id, md5(bytes)), 'UNAUTHENTICATED');
      expectCode(await anonymous.abort(upload.id), 'UNAUTHENTICATED');
      await expectUnharmed(alice, upload.id, 0);

      // The owner is unaffected: the same chunk with a token is accepted.
      await sendChunks(alice, upload.id, bytes, 0, bytes.length, bytes.length);
    });

    it('refuses malformed Authorization headers, on JSON and on multipart requests', async () => {
      const upload = await alice.start('malformed.bin', 100);
      const headers = [
        `Token ${alice.token}`,
        'Bearer',
        `Bearer ${alice.token} extra`,
        `Basic ${Buffer.from(`${ADMIN.username}:${ADMIN.password}`).toString('base64')}`,
        'Bearer not-a-jwt',
        'Bearer a.b.c',
        alice.token!, // the token without its scheme
        `Bearer ${alice.token!.slice(0, -2)}`, // a truncated signature
      ];
      for (const authorization of headers) {
        expectCode(await anonymous.request(ME, {}, { authorization }), 'UNAUTHENTICATED', `Authorization: ${JSON.stringify(authorization)}`);
      }
      expectCode(await anonymous.uploadChunk(upload.id, 0, randomFile(100), { headers: { authorization: 'Bearer garbage' } }), 'UNAUTHENTICATED');
      expectCode(await anonymous.uploadChunk(upload.id, 0, randomFile(100), { headers: { authorization: `Token ${alice.token}` } }), 'UNAUTHENTICATED');
      await expectUnharmed(alice, upload.id, 0);
    });

    it('refuses a token signed with another secret, an unsigned one, an expired one and one for no user', async () => {
      const secret = server.app.services.config.jwtSecret;
      const claims = jwt.decode(alice.token!) as { sub: string; ver: number };
      const own = { sub: claims.sub, ver: claims.ver };
      const upload = await alice.start('tokens.bin', 1000);

      // Control: a token this test signs with the server's secret is accepted, so the
      // refusals below come from what was changed, not from how the test builds tokens.
      assert.equal((await anonymous.withToken(signedToken(own, secret)).data(ME)).me.id, claims.sub);

      const tokens: Record<string, string> = {
        'another secret': signedToken(own, randomSecret()),
        'alg none': unsignedToken(own),
        expired: expiredToken(own, secret),
        'no such user': signedToken({ sub: randomUUID(), ver: 0 }, secret),
        'not an access token': signedToken({ fid: upload.id, typ: 'download' }, secret),
      };
      for (const [what, token] of Object.entries(tokens)) {
        const client = anonymous.withToken(token);
        for (const [op, result] of [
          ['me', await client.request(ME)],
          ['startUpload', await client.startUpload({ filename: 'x.txt', totalSize: 1 })],
          ['uploadChunk', await client.uploadChunk(upload.id, 0, randomFile(1000))],
          ['completeUpload', await client.complete(upload.id, md5(Buffer.alloc(0)))],
        ] as const) {
          expectCode(result, 'UNAUTHENTICATED', `${op} with a token (${what})`);
        }
      }
      await expectUnharmed(alice, upload.id, 0);
    });

    it('refuses a wrong password and an unknown username, and still logs in correctly afterwards', async () => {
      const wrong = await anonymous.request(LOGIN, { u: ADMIN.username, p: 'not-the-password' });
      expectCode(wrong, 'UNAUTHENTICATED');
      assert.equal(wrong.data ?? null, null, 'no token is handed out');
      expectCode(await anonymous.request(LOGIN, { u: `nobody_${tag()}`, p: ADMIN.password }), 'UNAUTHENTICATED');
      expectCode(await anonymous.request(LOGIN, { u: ADMIN.username, p: '' }), 'UNAUTHENTICATED');
      const admin = await anonymous.login(ADMIN.username, ADMIN.password);
      assert.equal((await admin.data(ME)).me.username, ADMIN.username);
      await expectHealthy(server.url);
    });
  });

  describe('FORBIDDEN', () => {
    it('refuses createUser by a non-admin, and creates nothing', async () => {
      const username = `made_by_alice_${tag()}`;
      expectCode(await alice.request(CREATE_USER, { u: username, p: 'password-123', a: false }), 'FORBIDDEN');
      expectCode(await alice.request(CREATE_USER, { u: `${username}_admin`, p: 'password-123', a: true }), 'FORBIDDEN');
      // Nothing was created: the name is still free, and the refused password never worked.
      expectCode(await anonymous.request(LOGIN, { u: username, p: 'password-123' }), 'UNAUTHENTICATED');
      const created = await server.admin.data(CREATE_USER, { u: username, p: 'password-456', a: false });
      assert.equal(created.createUser.username, username);
    });
  });

  describe('NOT_FOUND', () => {
    it('hides an upload from everyone but its owner, admins included, and leaves it untouched', async () => {
      const bytes = randomFile(200);
      const upload = await alice.start('private.bin', bytes.length);
      await sendChunks(alice, upload.id, bytes, 0, 100, 100);

      for (const other of [bob, server.admin]) {
        const seen = await other.request(UPLOAD, { id: upload.id });
        expectCode(seen, 'NOT_FOUND');
        assert.equal(seen.data?.upload ?? null, null);
        expectCode(await other.uploadChunk(upload.id, 100, bytes.subarray(100)), 'NOT_FOUND');
        expectCode(await other.complete(upload.id, md5(bytes)), 'NOT_FOUND');
        expectCode(await other.abort(upload.id), 'NOT_FOUND');
        assert.deepEqual((await other.data(`{ myUploads { id } }`)).myUploads, [], 'not listed among their uploads (they have none)');
      }
      await expectUnharmed(alice, upload.id, 100);

      // The owner carries on as if nothing happened.
      await sendChunks(alice, upload.id, bytes, 100, bytes.length, 100);
      await completeAndVerify(alice, upload.id, bytes);
    });

    it('answers NOT_FOUND for a non-uuid and for an unknown uuid, on every operation', async () => {
      for (const id of ['not-a-uuid', '', '12345', `${randomUUID()}x`, randomUUID()]) {
        const label = JSON.stringify(id);
        for (const [op, result] of [
          ['upload', await alice.request(UPLOAD, { id })],
          ['uploadChunk', await alice.uploadChunk(id, 0, randomFile(10))],
          ['completeUpload', await alice.complete(id, md5(randomFile(10)))],
          ['abortUpload', await alice.abort(id)],
        ] as const) {
          expectCode(result, 'NOT_FOUND', `${op}(${label})`);
        }
      }
      await expectHealthy(server.url);
    });
  });

  describe('precedence', () => {
    it('UNAUTHENTICATED comes before bad input, unknown ids and everything else', async () => {
      const expired = expiredToken({ sub: randomUUID(), ver: 0 }, server.app.services.config.jwtSecret);
      for (const client of [anonymous, anonymous.withToken(expired)]) {
        expectCode(await client.startUpload({ filename: '..', totalSize: -1 }), 'UNAUTHENTICATED');
        expectCode(await client.uploadChunk(randomUUID(), -5, Buffer.alloc(0), { chunkMd5: 'nope' }), 'UNAUTHENTICATED');
        expectCode(await client.uploadChunk('not-a-uuid', 0, randomFile(10)), 'UNAUTHENTICATED');
        expectCode(await client.complete('not-a-uuid', 'nope'), 'UNAUTHENTICATED');
        expectCode(await client.abort('not-a-uuid'), 'UNAUTHENTICATED');
        expectCode(await client.request(UPLOAD, { id: 'not-a-uuid' }), 'UNAUTHENTICATED');
        expectCode(await client.request(CREATE_USER, { u: '', p: '', a: true }), 'UNAUTHENTICATED');
      }
      await expectHealthy(server.url);
    });

    it('UNAUTHENTICATED comes before a totalSize or offset that GraphQL coercion refuses', async () => {
      const cases: [string, GraphQLResult][] = [
        ['startUpload with totalSize 1.5', await anonymous.startUpload({ filename: 'a.txt', totalSize: 1.5 })],
        ['startUpload with totalSize 2^53', await anonymous.startUpload({ filename: 'a.txt', totalSize: 2 ** 53 })],
        ['a multipart uploadChunk with offset 0.5', await anonymous.uploadChunk(randomUUID(), 0.5, randomFile(10))],
      ];
      assert.deepEqual(
        cases.map(([what, result]) => `${what}: ${outcome(result)}`),
        cases.map(([what]) => `${what}: UNAUTHENTICATED`),
      );
      await expectHealthy(server.url);
    });

    it('BAD_USER_INPUT comes before NOT_FOUND', async () => {
      const upload = await alice.start('bad-before-missing.bin', 100);
      expectCode(await bob.uploadChunk(upload.id, -1, randomFile(10)), 'BAD_USER_INPUT');
      expectCode(await bob.uploadChunk(upload.id, 0, randomFile(10), { chunkMd5: 'xyz' }), 'BAD_USER_INPUT');
      expectCode(await bob.complete(upload.id, 'xyz'), 'BAD_USER_INPUT');
      expectCode(await alice.uploadChunk(randomUUID(), -1, randomFile(10)), 'BAD_USER_INPUT');
      expectCode(await alice.complete('not-a-uuid', 'xyz'), 'BAD_USER_INPUT');
      await expectUnharmed(alice, upload.id, 0);
    });

    it('an empty chunk is BAD_USER_INPUT even where NOT_FOUND, UPLOAD_NOT_ACTIVE or OFFSET_MISMATCH also apply', async () => {
      const bytes = randomFile(100);
      const upload = await alice.start('empty-precedence.bin', bytes.length);
      await sendChunks(alice, upload.id, bytes, 0, 10, 10);
      const aborted = await alice.start('empty-precedence-aborted.bin', 10);
      expectOk(await alice.abort(aborted.id));

      const cases: [string, GraphQLResult][] = [
        ["on another user's upload", await bob.uploadChunk(upload.id, 10, Buffer.alloc(0))],
        ['on an unknown upload', await alice.uploadChunk(randomUUID(), 0, Buffer.alloc(0))],
        ['on an aborted upload', await alice.uploadChunk(aborted.id, 0, Buffer.alloc(0))],
        ['at a wrong offset', await alice.uploadChunk(upload.id, 50, Buffer.alloc(0))],
      ];
      assert.deepEqual(
        cases.map(([what, result]) => `${what}: ${outcome(result)}`),
        cases.map(([what]) => `${what}: BAD_USER_INPUT`),
      );
      await expectUnharmed(alice, upload.id, 10);
    });

    it("NOT_FOUND comes before UPLOAD_NOT_ACTIVE: another user's finished or aborted upload", async () => {
      const x = Buffer.from('x');
      const done = await alice.start('nf-done.bin', 1);
      await sendChunks(alice, done.id, x, 0, 1, 1);
      await completeAndVerify(alice, done.id, x);
      const aborted = await alice.start('nf-aborted.bin', 10);
      expectOk(await alice.abort(aborted.id));
      for (const id of [done.id, aborted.id]) {
        expectCode(await bob.uploadChunk(id, 0, randomFile(1)), 'NOT_FOUND');
        expectCode(await bob.complete(id, md5(x)), 'NOT_FOUND');
        expectCode(await bob.request(UPLOAD, { id }), 'NOT_FOUND');
      }
      await expectUploadAt(alice, done.id, 1, 'COMPLETE');
      await expectUploadAt(alice, aborted.id, 0, 'ABORTED');
    });

    it('UPLOAD_NOT_ACTIVE comes before OFFSET_MISMATCH and PAYLOAD_TOO_LARGE', async () => {
      const upload = await alice.start('na-before-offset.bin', 100);
      await sendChunks(alice, upload.id, randomFile(40), 0, 40, 40);
      expectOk(await alice.abort(upload.id));
      const offset = (await alice.getUpload(upload.id)).offset;
      expectCode(await alice.uploadChunk(upload.id, offset + 7, randomFile(10)), 'UPLOAD_NOT_ACTIVE');
      expectCode(await alice.uploadChunk(upload.id, offset, randomFile(500)), 'UPLOAD_NOT_ACTIVE');
      await expectUnharmed(alice, upload.id, offset, 'ABORTED');
    });

    it('OFFSET_MISMATCH comes before PAYLOAD_TOO_LARGE and CHECKSUM_MISMATCH', async () => {
      const upload = await alice.start('offset-first.bin', 100);
      await sendChunks(alice, upload.id, randomFile(10), 0, 10, 10);
      const tooBig = expectCode(await alice.uploadChunk(upload.id, 20, randomFile(500)), 'OFFSET_MISMATCH');
      assert.strictEqual(tooBig.extensions?.expectedOffset, 10);
      const wrongMd5 = expectCode(await alice.uploadChunk(upload.id, 0, randomFile(10), { chunkMd5: md5(Buffer.from('other')) }), 'OFFSET_MISMATCH');
      assert.strictEqual(wrongMd5.extensions?.expectedOffset, 10);
      await expectUnharmed(alice, upload.id, 10);
    });
  });
});
