import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import jwt from 'jsonwebtoken';
import { after, before, describe, it } from 'node:test';
import { eventually, expectCode, md5, openChunkRequest, randomFile, UPLOAD_FIELDS, type GraphQLClient, type GraphQLResult } from './helpers/client';
import { databaseKind } from './helpers/database';
import { ADMIN, startServer, type TestServer } from './helpers/server';

/**
 * Every error code API.md lists for the upload spine, over real HTTP and real GraphQL
 * multipart requests; after each refusal, the server still answers and nothing stored moved.
 */

const ME = `{ me { id username } }`;
const LOGIN = `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }`;
const CREATE_USER = `mutation($u: String!, $p: String!, $a: Boolean) { createUser(username: $u, password: $p, isAdmin: $a) { id username } }`;
const UPLOAD = `query($id: ID!) { upload(id: $id) { ${UPLOAD_FIELDS} } }`;
const ABORT = `mutation($id: ID!) { abortUpload(uploadId: $id) { ${UPLOAD_FIELDS} } }`;
const FILES_NAMED = `query($s: String) { files(search: $s) { totalCount } }`;

const hex = (bytes = 4) => randomBytes(bytes).toString('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function expectHealthy(server: TestServer): Promise<void> {
  const res = await fetch(`${server.url}/healthz`);
  assert.equal(res.status, 200, 'the server still answers GET /healthz');
  await res.arrayBuffer();
}

/** The stored state of an upload, as its owner sees it, did not move. */
async function expectStored(owner: GraphQLClient, uploadId: string, offset: number, status = 'UPLOADING'): Promise<void> {
  const upload = await owner.getUpload(uploadId);
  assert.equal(upload.offset, offset, 'the stored offset did not move');
  assert.equal(upload.status, status);
}

/** After a refusal: the server is up and the upload is where it was. */
async function expectUnharmed(server: TestServer, owner: GraphQLClient, uploadId: string, offset: number, status = 'UPLOADING') {
  await expectHealthy(server);
  await expectStored(owner, uploadId, offset, status);
}

function expectOk(result: GraphQLResult): any {
  assert.equal(result.errors, undefined, `unexpected errors: ${JSON.stringify(result.errors)}`);
  return result.data;
}

function abort(client: GraphQLClient, uploadId: string) {
  return client.request(ABORT, { id: uploadId });
}

async function fileCount(client: GraphQLClient, search: string): Promise<number> {
  return (await client.data(FILES_NAMED, { s: search })).files.totalCount;
}

/** A multipart uploadChunk request built by hand, so headers can be left out. */
async function rawMultipart(url: string, uploadId: string, offset: number, chunk: Buffer, headers: Record<string, string>) {
  const form = new FormData();
  form.append(
    'operations',
    JSON.stringify({
      query: `mutation($id: ID!, $offset: SafeInt!, $chunk: Upload!) { uploadChunk(uploadId: $id, offset: $offset, chunk: $chunk) { id offset } }`,
      variables: { id: uploadId, offset, chunk: null },
    }),
  );
  form.append('map', JSON.stringify({ 0: ['variables.chunk'] }));
  form.append('0', new Blob([chunk]), 'chunk.bin');
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers, body: form });
  const text = await res.text();
  return { status: res.status, text };
}

const base64url = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

interface OneConnection {
  /** The answer to the chunk. */
  result: GraphQLResult;
  /** An answer arrived while the chunk was still being sent (paused at `pauseAt`). */
  answeredBeforeBodyEnd: boolean;
  /** The server did not announce `Connection: close` with its answer. */
  keepAlive: boolean;
  /** A GET /healthz pipelined after the chunk on the same connection was answered. */
  nextAnswered: boolean;
}

interface RawResponse {
  status: number;
  headers: string;
  body: Buffer;
}

/** Splits what a server sent on one connection into HTTP/1.1 responses (complete ones only). */
function parseResponses(data: Buffer): RawResponse[] {
  const responses: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end < 0) return responses;
    const headers = data.subarray(at, end).toString('latin1');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1]);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(headers);
    let bodyStart = end + 4;
    if (length) {
      const bodyEnd = bodyStart + Number(length[1]);
      if (data.length < bodyEnd) return responses;
      responses.push({ status, headers, body: data.subarray(bodyStart, bodyEnd) });
      at = bodyEnd;
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(headers)) {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = data.indexOf('\r\n', bodyStart);
        if (lineEnd < 0) return responses;
        const size = parseInt(data.subarray(bodyStart, lineEnd).toString('latin1'), 16);
        if (data.length < lineEnd + 2 + size + 2) return responses;
        if (size === 0) {
          at = lineEnd + 4;
          break;
        }
        parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
        bodyStart = lineEnd + 2 + size + 2;
      }
      responses.push({ status, headers, body: Buffer.concat(parts) });
    } else {
      responses.push({ status, headers, body: Buffer.alloc(0) });
      at = bodyStart;
    }
  }
}

/**
 * One uploadChunk over a raw socket of its own (so a connection the server leaves in a bad
 * state cannot affect later requests): the body is sent up to `pauseAt` bytes of the chunk,
 * then after a pause the rest, followed by a pipelined GET /healthz on the same connection.
 */
async function chunkOnOneConnection(
  client: GraphQLClient,
  uploadId: string,
  offset: number,
  chunk: Buffer,
  options: { chunkMd5?: string; pauseAt?: number; next?: boolean; headers?: Record<string, string> } = {},
): Promise<OneConnection> {
  const boundary = `----raw${hex(8)}`;
  const operations = JSON.stringify({
    query: `mutation($id: ID!, $offset: SafeInt!, $chunk: Upload!, $chunkMd5: String) {
      uploadChunk(uploadId: $id, offset: $offset, chunk: $chunk, chunkMd5: $chunkMd5) { ${UPLOAD_FIELDS} } }`,
    variables: { id: uploadId, offset, chunk: null, chunkMd5: options.chunkMd5 ?? null },
  });
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${operations}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.chunk"]}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="chunk.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const body = Buffer.concat([head, chunk, Buffer.from(`\r\n--${boundary}--\r\n`)]);
  const url = new URL(client.url);
  const headers = {
    host: url.host,
    'content-type': `multipart/form-data; boundary=${boundary}`,
    'content-length': String(body.length),
    'apollo-require-preflight': 'true',
    ...client.authHeaders(),
    ...options.headers,
  };
  const requestHead = `POST /graphql HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  const next = options.next ?? true;
  const wanted = next ? 2 : 1;

  const socket = net.connect(Number(url.port), url.hostname);
  socket.on('error', () => {}); // a reset shows as a missing answer below
  await once(socket, 'connect');
  const received: Buffer[] = [];
  let answeredBeforeBodyEnd = false;
  const done = new Promise<void>((resolve) => {
    socket.on('data', (data) => {
      received.push(data);
      if (parseResponses(Buffer.concat(received)).length >= wanted) resolve();
    });
    socket.once('close', () => resolve());
    // A wedged keep-alive connection is reset by the server after its keep-alive timeout (5 s).
    setTimeout(resolve, 6000).unref();
  });
  try {
    // Writes are not awaited: a server that stops reading must not hang the test.
    const pauseAt = Math.min(options.pauseAt ?? chunk.length, chunk.length);
    socket.write(Buffer.concat([Buffer.from(requestHead), body.subarray(0, head.length + pauseAt)]));
    if (pauseAt < chunk.length) {
      await sleep(200);
      answeredBeforeBodyEnd = received.length > 0;
    }
    socket.write(body.subarray(head.length + pauseAt));
    if (next) socket.write(`GET /healthz HTTP/1.1\r\nhost: ${url.host}\r\nconnection: close\r\n\r\n`);
    await done;
  } finally {
    socket.destroy();
  }
  const [answer, second] = parseResponses(Buffer.concat(received));
  assert.ok(answer, `no complete answer to the chunk: ${JSON.stringify(Buffer.concat(received).toString('latin1').slice(0, 300))}`);
  return {
    result: { status: answer.status, ...JSON.parse(answer.body.toString('utf8')) },
    answeredBeforeBodyEnd,
    keepAlive: !/\r\nconnection:\s*close/i.test(answer.headers),
    nextAnswered: second?.status === 200 && second.body.toString().includes('ok'),
  };
}

const codesOf = (result: GraphQLResult) => (result.errors ?? []).map((e) => e.extensions?.code).join(',') || 'no error';

// The limits server: MAX_FILE_SIZE above MAX_CHUNK_SIZE, so an oversize chunk is not also one past totalSize.
const MAX_FILE_SIZE = 10_000;
const MAX_CHUNK_SIZE = 4096;

describe(`error codes (${databaseKind})`, () => {
  let server: TestServer;
  /** MAX_FILE_SIZE and MAX_CHUNK_SIZE set low. */
  let limited: TestServer;
  /** UPLOAD_TTL of one second. */
  let expiring: TestServer;
  let alice: GraphQLClient;
  let bob: GraphQLClient;
  let carol: GraphQLClient;
  let dave: GraphQLClient;
  let anonymous: GraphQLClient;

  before(async () => {
    // Three servers, started side by side to keep the file's run time down.
    const started = await Promise.allSettled([
      startServer(),
      startServer({ MAX_FILE_SIZE: String(MAX_FILE_SIZE), MAX_CHUNK_SIZE: String(MAX_CHUNK_SIZE) }),
      startServer({ UPLOAD_TTL: '1' }),
    ]);
    [server, limited, expiring] = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined)) as TestServer[];
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    [alice, bob, carol, dave] = await Promise.all([
      server.admin.newUser(),
      server.admin.newUser(),
      limited.admin.newUser(),
      expiring.admin.newUser(),
    ]);
    anonymous = server.client;
  });
  after(() => Promise.all([server?.close(), limited?.close(), expiring?.close()]));

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
      await expectUnharmed(server, alice, upload.id, 0);

      expectCode(await anonymous.complete(upload.id, md5(bytes)), 'UNAUTHENTICATED');
      expectCode(await abort(anonymous, upload.id), 'UNAUTHENTICATED');
      await expectUnharmed(server, alice, upload.id, 0);

      // The owner is unaffected: the same chunk with a token is accepted.
      assert.equal(expectOk(await alice.uploadChunk(upload.id, 0, bytes)).uploadChunk.offset, bytes.length);
    });

    it('refuses malformed Authorization headers, on JSON and on multipart requests', async () => {
      const upload = await alice.start('malformed.bin', 100);
      const headers = [
        `Token ${alice.token}`,
        'Bearer',
        `Bearer ${alice.token} extra`,
        `Basic ${Buffer.from('admin:admin-password-for-tests').toString('base64')}`,
        'Bearer not-a-jwt',
        'Bearer a.b.c',
        alice.token!, // the token without its scheme
        `Bearer ${alice.token!.slice(0, -2)}`, // a truncated signature
      ];
      for (const authorization of headers) {
        const result = await anonymous.request(ME, {}, { authorization });
        assert.deepEqual(
          (result.errors ?? []).map((e) => e.extensions?.code),
          ['UNAUTHENTICATED'],
          `Authorization: ${JSON.stringify(authorization)} gave ${JSON.stringify(result)}`,
        );
      }
      expectCode(await anonymous.uploadChunk(upload.id, 0, randomFile(100), { headers: { authorization: 'Bearer garbage' } }), 'UNAUTHENTICATED');
      expectCode(await anonymous.uploadChunk(upload.id, 0, randomFile(100), { headers: { authorization: `Token ${alice.token}` } }), 'UNAUTHENTICATED');
      await expectUnharmed(server, alice, upload.id, 0);
    });

    it('refuses a token signed with another secret, an unsigned one, an expired one and one for no user', async () => {
      const secret = server.app.services.config.jwtSecret;
      const claims = jwt.decode(alice.token!) as { sub: string; ver: number };
      const now = Math.floor(Date.now() / 1000);
      const upload = await alice.start('tokens.bin', 1000);

      // Control: a token this test signs with the server's secret is accepted, so the
      // refusals below come from what was changed, not from how the test builds tokens.
      const fresh = jwt.sign({ sub: claims.sub, ver: claims.ver }, secret, { algorithm: 'HS256', expiresIn: 60 });
      assert.equal((await anonymous.withToken(fresh).data(ME)).me.id, claims.sub);

      const tokens: Record<string, string> = {
        'another secret': jwt.sign({ sub: claims.sub, ver: claims.ver }, `another-secret-${hex(24)}`, { algorithm: 'HS256', expiresIn: 60 }),
        'alg none': `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ sub: claims.sub, ver: claims.ver, iat: now, exp: now + 60 })}.`,
        expired: jwt.sign({ sub: claims.sub, ver: claims.ver, iat: now - 120, exp: now - 60 }, secret, { algorithm: 'HS256' }),
        'no such user': jwt.sign({ sub: randomUUID(), ver: 0 }, secret, { algorithm: 'HS256', expiresIn: 60 }),
        'not an access token': jwt.sign({ fid: upload.id, typ: 'download' }, secret, { algorithm: 'HS256', expiresIn: 60 }),
      };
      for (const [what, token] of Object.entries(tokens)) {
        const client = anonymous.withToken(token);
        for (const [op, result] of [
          ['me', await client.request(ME)],
          ['startUpload', await client.startUpload({ filename: 'x.txt', totalSize: 1 })],
          ['uploadChunk', await client.uploadChunk(upload.id, 0, randomFile(1000))],
          ['completeUpload', await client.complete(upload.id, md5(Buffer.alloc(0)))],
        ] as const) {
          assert.deepEqual(
            (result.errors ?? []).map((e) => e.extensions?.code),
            ['UNAUTHENTICATED'],
            `${op} with a token (${what}) gave ${JSON.stringify(result)}`,
          );
        }
      }
      await expectUnharmed(server, alice, upload.id, 0);
    });

    it('refuses a wrong password and an unknown username, and still logs in correctly afterwards', async () => {
      const wrong = await anonymous.request(LOGIN, { u: ADMIN.username, p: 'not-the-password' });
      expectCode(wrong, 'UNAUTHENTICATED');
      assert.equal(wrong.data ?? null, null, 'no token is handed out');
      expectCode(await anonymous.request(LOGIN, { u: `nobody_${hex()}`, p: ADMIN.password }), 'UNAUTHENTICATED');
      expectCode(await anonymous.request(LOGIN, { u: ADMIN.username, p: '' }), 'UNAUTHENTICATED');
      const admin = await anonymous.login(ADMIN.username, ADMIN.password);
      assert.equal((await admin.data(ME)).me.username, ADMIN.username);
      await expectHealthy(server);
    });
  });

  describe('FORBIDDEN', () => {
    it('refuses createUser by a non-admin, and creates nothing', async () => {
      const username = `made_by_alice_${hex()}`;
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
      expectOk(await alice.uploadChunk(upload.id, 0, bytes.subarray(0, 100)));

      for (const other of [bob, server.admin]) {
        const seen = await other.request(UPLOAD, { id: upload.id });
        expectCode(seen, 'NOT_FOUND');
        assert.equal(seen.data?.upload ?? null, null);
        expectCode(await other.uploadChunk(upload.id, 100, bytes.subarray(100)), 'NOT_FOUND');
        expectCode(await other.complete(upload.id, md5(bytes)), 'NOT_FOUND');
        expectCode(await abort(other, upload.id), 'NOT_FOUND');
        const { myUploads } = await other.data(`{ myUploads { id } }`);
        assert.ok(!myUploads.some((u: any) => u.id === upload.id), 'not listed among their uploads');
      }
      await expectUnharmed(server, alice, upload.id, 100);

      // The owner carries on as if nothing happened.
      expectOk(await alice.uploadChunk(upload.id, 100, bytes.subarray(100)));
      assert.equal(expectOk(await alice.complete(upload.id, md5(bytes))).completeUpload.md5, md5(bytes));
    });

    it('answers NOT_FOUND for a non-uuid and for an unknown uuid, on every operation', async () => {
      for (const id of ['not-a-uuid', '', '12345', `${randomUUID()}x`, randomUUID()]) {
        const label = JSON.stringify(id);
        for (const [op, result] of [
          ['upload', await alice.request(UPLOAD, { id })],
          ['uploadChunk', await alice.uploadChunk(id, 0, randomFile(10))],
          ['completeUpload', await alice.complete(id, md5(randomFile(10)))],
          ['abortUpload', await abort(alice, id)],
        ] as const) {
          assert.deepEqual((result.errors ?? []).map((e) => e.extensions?.code), ['NOT_FOUND'], `${op}(${label}) gave ${JSON.stringify(result)}`);
        }
      }
      await expectHealthy(server);
    });
  });

  describe('BAD_USER_INPUT', () => {
    it('refuses negative, fractional and unsafe totalSize, and bad filenames, creating no upload', async () => {
      const before = (await alice.data(`{ myUploads { id } }`)).myUploads.length;
      for (const totalSize of [-1, -1024, 1.5, 2 ** 53]) {
        expectCode(await alice.startUpload({ filename: 'size.bin', totalSize }), 'BAD_USER_INPUT');
      }
      for (const filename of ['', '.', '..', 'dir/', 'a/..', 'C:\\dir\\', '\u0000\u001f\u007f\u0085', 'x'.repeat(256), '\u00e9'.repeat(128)]) {
        const result = await alice.startUpload({ filename, totalSize: 1 });
        assert.deepEqual((result.errors ?? []).map((e) => e.extensions?.code), ['BAD_USER_INPUT'], `filename ${JSON.stringify(filename)}`);
      }
      assert.equal((await alice.data(`{ myUploads { id } }`)).myUploads.length, before, 'no upload was created');
      await expectHealthy(server);
    });

    it('refuses a negative or fractional offset, an empty chunk and a malformed chunkMd5', async () => {
      const bytes = randomFile(100);
      const upload = await alice.start('input.bin', bytes.length);
      expectOk(await alice.uploadChunk(upload.id, 0, bytes.subarray(0, 10)));
      const next = bytes.subarray(10, 60);

      expectCode(await alice.uploadChunk(upload.id, -1, next), 'BAD_USER_INPUT');
      await expectUnharmed(server, alice, upload.id, 10);
      expectCode(await alice.uploadChunk(upload.id, 10.5, next), 'BAD_USER_INPUT');
      await expectUnharmed(server, alice, upload.id, 10);
      expectCode(await alice.uploadChunk(upload.id, 10, Buffer.alloc(0)), 'BAD_USER_INPUT');
      await expectUnharmed(server, alice, upload.id, 10);

      const good = md5(next);
      for (const chunkMd5 of ['', 'abc', good.slice(0, 31), `${good}0`, 'g'.repeat(32), ` ${good.slice(1)}`, `${good.slice(0, 30)}-1`]) {
        const result = await alice.uploadChunk(upload.id, 10, next, { chunkMd5 });
        assert.deepEqual((result.errors ?? []).map((e) => e.extensions?.code), ['BAD_USER_INPUT'], `chunkMd5 ${JSON.stringify(chunkMd5)}`);
      }
      await expectUnharmed(server, alice, upload.id, 10);

      // The same bytes, well formed, are taken; nothing refused leaked into the file.
      expectOk(await alice.uploadChunk(upload.id, 10, next, { chunkMd5: good }));
      expectOk(await alice.uploadChunk(upload.id, 60, bytes.subarray(60)));
      expectOk(await alice.complete(upload.id, md5(bytes)));
    });

    it('refuses a completeUpload md5 of the wrong length or not hexadecimal, and leaves the upload open', async () => {
      const bytes = randomFile(50);
      const upload = await alice.start('md5-format.bin', bytes.length);
      expectOk(await alice.uploadChunk(upload.id, 0, bytes));
      const good = md5(bytes);
      for (const bad of ['', 'abc', good.slice(0, 31), `${good}a`, 'z'.repeat(32), `${good.slice(0, 31)}g`, `{${good.slice(2)}}`]) {
        const result = await alice.complete(upload.id, bad);
        assert.deepEqual((result.errors ?? []).map((e) => e.extensions?.code), ['BAD_USER_INPUT'], `md5 ${JSON.stringify(bad)}`);
      }
      await expectUnharmed(server, alice, upload.id, bytes.length);
      assert.equal(expectOk(await alice.complete(upload.id, good)).completeUpload.md5, good);
    });

    it('refuses createUser with a username taken in another case, and keeps the first account', async () => {
      const username = `Carol_${hex()}`;
      await server.admin.data(CREATE_USER, { u: username, p: 'first-password', a: false });
      for (const taken of [username.toLowerCase(), ADMIN.username.toUpperCase()]) {
        expectCode(await server.admin.request(CREATE_USER, { u: taken, p: 'second-password', a: true }), 'BAD_USER_INPUT');
      }
      await server.admin.login(username, 'first-password');
      expectCode(await anonymous.request(LOGIN, { u: username.toLowerCase(), p: 'second-password' }), 'UNAUTHENTICATED');
    });
  });

  describe('OFFSET_MISMATCH', () => {
    it('says where to resume, as a number, for chunks ahead and behind, and writes nothing', async () => {
      const bytes = randomFile(3 * 1024 * 1024);
      const upload = await alice.start('offsets.bin', bytes.length);
      const first = 1024 * 1024;
      expectOk(await alice.uploadChunk(upload.id, 0, bytes.subarray(0, first)));

      for (const offset of [first + 1, 2 * first, 0, first - 1]) {
        const error = expectCode(await alice.uploadChunk(upload.id, offset, bytes.subarray(offset, offset + first)), 'OFFSET_MISMATCH');
        assert.strictEqual(error.extensions?.expectedOffset, first, `at ${offset}: expectedOffset is the number ${first}`);
        await expectUnharmed(server, alice, upload.id, first);
      }

      // Resuming where the error said works, and the refused chunks left no trace.
      expectOk(await alice.uploadChunk(upload.id, first, bytes.subarray(first)));
      assert.equal(expectOk(await alice.complete(upload.id, md5(bytes))).completeUpload.size, bytes.length);
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
      await expectHealthy(server);

      await open.send(bytes.subarray(500, 1000));
      const finished = await open.finish();
      assert.equal(finished.errors, undefined, JSON.stringify(finished.errors));
      assert.equal(finished.data.uploadChunk.offset, 1000);
      await expectStored(alice, upload.id, 1000);

      // The refused chunks wrote nothing: the file is exactly the bytes of the accepted ones.
      expectOk(await alice.uploadChunk(upload.id, 1000, bytes.subarray(1000)));
      assert.equal(expectOk(await alice.complete(upload.id, md5(bytes))).completeUpload.md5, md5(bytes));
    });
  });

  describe('PAYLOAD_TOO_LARGE (chunk past totalSize)', () => {
    it('refuses a chunk that runs past totalSize; its bytes are not counted and the upload resumes', async () => {
      const MiB = 1024 * 1024;
      const bytes = randomFile(3 * MiB);
      const upload = await alice.start('past-total.bin', bytes.length);
      expectOk(await alice.uploadChunk(upload.id, 0, bytes.subarray(0, 2 * MiB)));

      // 1.5 MiB where 1 MiB is left: the first MiB may reach the disk before the excess is seen.
      // (Sent on connections of their own: whether the connection survives is the transport test's business.)
      const tooLong = Buffer.concat([bytes.subarray(2 * MiB), randomFile(MiB / 2)]);
      expectCode((await chunkOnOneConnection(alice, upload.id, 2 * MiB, tooLong, { next: false })).result, 'PAYLOAD_TOO_LARGE');
      await expectUnharmed(server, alice, upload.id, 2 * MiB);
      // A single byte too many, and a chunk past totalSize with a wrong chunkMd5 (PAYLOAD_TOO_LARGE comes first).
      const oneTooMany = Buffer.concat([bytes.subarray(2 * MiB), Buffer.from('!')]);
      expectCode((await chunkOnOneConnection(alice, upload.id, 2 * MiB, oneTooMany, { next: false })).result, 'PAYLOAD_TOO_LARGE');
      const wrongMd5 = { next: false, chunkMd5: md5(Buffer.from('wrong')) };
      expectCode((await chunkOnOneConnection(alice, upload.id, 2 * MiB, tooLong, wrongMd5)).result, 'PAYLOAD_TOO_LARGE');
      await expectUnharmed(server, alice, upload.id, 2 * MiB);

      expectOk(await alice.uploadChunk(upload.id, 2 * MiB, bytes.subarray(2 * MiB)));
      const file = expectOk(await alice.complete(upload.id, md5(bytes))).completeUpload;
      assert.equal(file.size, bytes.length);
      const download = await alice.download(`/files/${file.id}/content`);
      assert.equal(download.status, 200);
      assert.equal(download.body.length, bytes.length);
      assert.equal(md5(download.body), md5(bytes), 'the refused bytes are not in the file');
    });
  });

  describe('UPLOAD_INCOMPLETE', () => {
    it('refuses to complete before offset == totalSize, even with the right md5', async () => {
      const bytes = randomFile(100);
      const upload = await alice.start('incomplete.bin', bytes.length);
      const nothing = expectCode(await alice.complete(upload.id, md5(bytes)), 'UPLOAD_INCOMPLETE');
      assert.ok(nothing.message.length > 0);
      await expectUnharmed(server, alice, upload.id, 0);

      expectOk(await alice.uploadChunk(upload.id, 0, bytes.subarray(0, 99)));
      expectCode(await alice.complete(upload.id, md5(bytes)), 'UPLOAD_INCOMPLETE');
      expectCode(await alice.complete(upload.id, md5(bytes.subarray(0, 99))), 'UPLOAD_INCOMPLETE');
      await expectUnharmed(server, alice, upload.id, 99);

      expectOk(await alice.uploadChunk(upload.id, 99, bytes.subarray(99)));
      assert.equal(expectOk(await alice.complete(upload.id, md5(bytes))).completeUpload.size, 100);
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
      await expectUnharmed(server, alice, upload.id, 0);
      expectOk(await alice.uploadChunk(upload.id, 0, first, { chunkMd5: md5(first) }));

      expectCode(await alice.uploadChunk(upload.id, part, second, { chunkMd5: md5(first).toUpperCase() }), 'CHECKSUM_MISMATCH');
      await expectUnharmed(server, alice, upload.id, part);
      assert.equal(expectOk(await alice.uploadChunk(upload.id, part, second, { chunkMd5: md5(second) })).uploadChunk.offset, bytes.length);

      // The discarded chunks left nothing in the whole-file md5 nor on disk.
      const file = expectOk(await alice.complete(upload.id, md5(bytes))).completeUpload;
      assert.equal(md5((await alice.download(`/files/${file.id}/content`)).body), md5(bytes));
    });

    it('refuses a whole-file md5 that differs: nothing is filed, the upload stays UPLOADING, the right md5 then completes it', async () => {
      const name = `whole-md5-${hex()}.bin`;
      const bytes = randomFile(1000);
      const upload = await alice.start(name, bytes.length);
      expectOk(await alice.uploadChunk(upload.id, 0, bytes));

      expectCode(await alice.complete(upload.id, md5(randomFile(1000))), 'CHECKSUM_MISMATCH');
      await expectUnharmed(server, alice, upload.id, bytes.length, 'UPLOADING');
      assert.equal(await fileCount(alice, name), 0, 'no File was created');
      expectCode(await alice.complete(upload.id, md5(bytes.subarray(0, 999))), 'CHECKSUM_MISMATCH');
      await expectStored(alice, upload.id, bytes.length, 'UPLOADING');

      const file = expectOk(await alice.complete(upload.id, md5(bytes))).completeUpload;
      assert.equal(file.md5, md5(bytes));
      assert.equal(await fileCount(alice, name), 1);
      await expectStored(alice, upload.id, bytes.length, 'COMPLETE');
    });
  });

  describe('UPLOAD_NOT_ACTIVE', () => {
    it('refuses chunks for a COMPLETE upload', async () => {
      const bytes = randomFile(100);
      const upload = await alice.start('done.bin', bytes.length);
      expectOk(await alice.uploadChunk(upload.id, 0, bytes));
      expectOk(await alice.complete(upload.id, md5(bytes)));

      expectCode(await alice.uploadChunk(upload.id, bytes.length, randomFile(1)), 'UPLOAD_NOT_ACTIVE');
      expectCode(await alice.uploadChunk(upload.id, 0, bytes), 'UPLOAD_NOT_ACTIVE');
      await expectUnharmed(server, alice, upload.id, bytes.length, 'COMPLETE');
    });

    it('refuses chunks for an ABORTED upload, and completing it', async () => {
      const bytes = randomFile(100);
      const upload = await alice.start('aborted.bin', bytes.length);
      expectOk(await alice.uploadChunk(upload.id, 0, bytes.subarray(0, 50)));
      assert.equal(expectOk(await abort(alice, upload.id)).abortUpload.status, 'ABORTED');
      const offset = (await alice.getUpload(upload.id)).offset;

      expectCode(await alice.uploadChunk(upload.id, 50, bytes.subarray(50)), 'UPLOAD_NOT_ACTIVE');
      expectCode(await alice.uploadChunk(upload.id, offset, bytes.subarray(50)), 'UPLOAD_NOT_ACTIVE');
      expectCode(await alice.complete(upload.id, md5(bytes)), 'UPLOAD_NOT_ACTIVE');
      expectCode(await alice.complete(upload.id, md5(bytes.subarray(0, 50))), 'UPLOAD_NOT_ACTIVE');
      await expectUnharmed(server, alice, upload.id, offset, 'ABORTED');
    });
  });

  describe('precedence', () => {
    it('UNAUTHENTICATED comes before bad input, unknown ids and everything else', async () => {
      const expired = jwt.sign({ sub: randomUUID(), ver: 0, exp: Math.floor(Date.now() / 1000) - 60 }, server.app.services.config.jwtSecret);
      for (const client of [anonymous, anonymous.withToken(expired)]) {
        expectCode(await client.startUpload({ filename: '..', totalSize: -1 }), 'UNAUTHENTICATED');
        expectCode(await client.uploadChunk(randomUUID(), -5, Buffer.alloc(0), { chunkMd5: 'nope' }), 'UNAUTHENTICATED');
        expectCode(await client.uploadChunk('not-a-uuid', 0, randomFile(10)), 'UNAUTHENTICATED');
        expectCode(await client.complete('not-a-uuid', 'nope'), 'UNAUTHENTICATED');
        expectCode(await abort(client, 'not-a-uuid'), 'UNAUTHENTICATED');
        expectCode(await client.request(UPLOAD, { id: 'not-a-uuid' }), 'UNAUTHENTICATED');
        expectCode(await client.request(CREATE_USER, { u: '', p: '', a: true }), 'UNAUTHENTICATED');
      }
      await expectHealthy(server);
    });

    it('UNAUTHENTICATED comes before a totalSize or offset that GraphQL coercion refuses', async () => {
      const cases: [string, GraphQLResult][] = [
        ['startUpload with totalSize 1.5', await anonymous.startUpload({ filename: 'a.txt', totalSize: 1.5 })],
        ['startUpload with totalSize 2^53', await anonymous.startUpload({ filename: 'a.txt', totalSize: 2 ** 53 })],
        ['a multipart uploadChunk with offset 0.5', await anonymous.uploadChunk(randomUUID(), 0.5, randomFile(10))],
      ];
      assert.deepEqual(
        cases.map(([what, result]) => `${what}: ${codesOf(result)}`),
        cases.map(([what]) => `${what}: UNAUTHENTICATED`),
      );
      await expectHealthy(server);
    });

    it('BAD_USER_INPUT comes before NOT_FOUND', async () => {
      const upload = await alice.start('bad-before-missing.bin', 100);
      expectCode(await bob.uploadChunk(upload.id, -1, randomFile(10)), 'BAD_USER_INPUT');
      expectCode(await bob.uploadChunk(upload.id, 0, randomFile(10), { chunkMd5: 'xyz' }), 'BAD_USER_INPUT');
      expectCode(await bob.complete(upload.id, 'xyz'), 'BAD_USER_INPUT');
      expectCode(await alice.uploadChunk(randomUUID(), -1, randomFile(10)), 'BAD_USER_INPUT');
      expectCode(await alice.complete('not-a-uuid', 'xyz'), 'BAD_USER_INPUT');
      await expectUnharmed(server, alice, upload.id, 0);
    });

    it('an empty chunk is BAD_USER_INPUT even where NOT_FOUND, UPLOAD_NOT_ACTIVE or OFFSET_MISMATCH also apply', async () => {
      const bytes = randomFile(100);
      const upload = await alice.start('empty-precedence.bin', bytes.length);
      expectOk(await alice.uploadChunk(upload.id, 0, bytes.subarray(0, 10)));
      const aborted = await alice.start('empty-precedence-aborted.bin', 10);
      expectOk(await abort(alice, aborted.id));

      const cases: [string, GraphQLResult][] = [
        ["on another user's upload", await bob.uploadChunk(upload.id, 10, Buffer.alloc(0))],
        ['on an unknown upload', await alice.uploadChunk(randomUUID(), 0, Buffer.alloc(0))],
        ['on an aborted upload', await alice.uploadChunk(aborted.id, 0, Buffer.alloc(0))],
        ['at a wrong offset', await alice.uploadChunk(upload.id, 50, Buffer.alloc(0))],
      ];
      const codes = cases.map(([what, result]) => `${what}: ${(result.errors ?? []).map((e) => e.extensions?.code).join(',')}`);
      assert.deepEqual(
        codes,
        cases.map(([what]) => `${what}: BAD_USER_INPUT`),
      );
      await expectUnharmed(server, alice, upload.id, 10);
    });

    it("NOT_FOUND comes before UPLOAD_NOT_ACTIVE: another user's finished or aborted upload", async () => {
      const done = await alice.start('nf-done.bin', 1);
      expectOk(await alice.uploadChunk(done.id, 0, Buffer.from('x')));
      expectOk(await alice.complete(done.id, md5(Buffer.from('x'))));
      const aborted = await alice.start('nf-aborted.bin', 10);
      expectOk(await abort(alice, aborted.id));
      for (const id of [done.id, aborted.id]) {
        expectCode(await bob.uploadChunk(id, 0, randomFile(1)), 'NOT_FOUND');
        expectCode(await bob.complete(id, md5(Buffer.from('x'))), 'NOT_FOUND');
        expectCode(await bob.request(UPLOAD, { id }), 'NOT_FOUND');
      }
      await expectStored(alice, done.id, 1, 'COMPLETE');
      await expectStored(alice, aborted.id, 0, 'ABORTED');
    });

    it('UPLOAD_NOT_ACTIVE comes before OFFSET_MISMATCH and PAYLOAD_TOO_LARGE', async () => {
      const upload = await alice.start('na-before-offset.bin', 100);
      expectOk(await alice.uploadChunk(upload.id, 0, randomFile(40)));
      expectOk(await abort(alice, upload.id));
      const offset = (await alice.getUpload(upload.id)).offset;
      expectCode(await alice.uploadChunk(upload.id, offset + 7, randomFile(10)), 'UPLOAD_NOT_ACTIVE');
      expectCode(await alice.uploadChunk(upload.id, offset, randomFile(500)), 'UPLOAD_NOT_ACTIVE');
      await expectUnharmed(server, alice, upload.id, offset, 'ABORTED');
    });

    it('OFFSET_MISMATCH comes before PAYLOAD_TOO_LARGE and CHECKSUM_MISMATCH', async () => {
      const upload = await alice.start('offset-first.bin', 100);
      expectOk(await alice.uploadChunk(upload.id, 0, randomFile(10)));
      const tooBig = expectCode(await alice.uploadChunk(upload.id, 20, randomFile(500)), 'OFFSET_MISMATCH');
      assert.strictEqual(tooBig.extensions?.expectedOffset, 10);
      const wrongMd5 = expectCode(await alice.uploadChunk(upload.id, 0, randomFile(10), { chunkMd5: md5(Buffer.from('other')) }), 'OFFSET_MISMATCH');
      assert.strictEqual(wrongMd5.extensions?.expectedOffset, 10);
      await expectUnharmed(server, alice, upload.id, 10);
    });
  });


  describe('PAYLOAD_TOO_LARGE (configured maxima)', () => {
    it('refuses a totalSize over MAX_FILE_SIZE; exactly MAX_FILE_SIZE is allowed', async () => {
      const count = async () => (await carol.data(`{ myUploads { id } }`)).myUploads.length;
      const before = await count();
      expectCode(await carol.startUpload({ filename: 'big.bin', totalSize: MAX_FILE_SIZE + 1 }), 'PAYLOAD_TOO_LARGE');
      expectCode(await carol.startUpload({ filename: 'big.bin', totalSize: 2 ** 53 - 1 }), 'PAYLOAD_TOO_LARGE');
      assert.equal(await count(), before, 'no upload was created');
      // BAD_USER_INPUT comes before PAYLOAD_TOO_LARGE.
      expectCode(await carol.startUpload({ filename: '..', totalSize: MAX_FILE_SIZE + 1 }), 'BAD_USER_INPUT');
      await expectHealthy(limited);
      assert.equal((await carol.start('max.bin', MAX_FILE_SIZE)).totalSize, MAX_FILE_SIZE);
    });

    it('refuses a chunk over MAX_CHUNK_SIZE, by one byte or by a lot; exactly MAX_CHUNK_SIZE is accepted', async () => {
      const bytes = randomFile(MAX_FILE_SIZE);
      const upload = await carol.start('chunks.bin', bytes.length);
      for (const size of [MAX_CHUNK_SIZE + 1, 64 * 1024, 2 * 1024 * 1024]) {
        const result = await carol.uploadChunk(upload.id, 0, randomFile(size));
        assert.equal(codesOf(result), 'PAYLOAD_TOO_LARGE', `a ${size}-byte chunk: ${JSON.stringify(result)}`);
        await expectUnharmed(limited, carol, upload.id, 0);
      }

      let offset = 0;
      while (offset < bytes.length) {
        const chunk = bytes.subarray(offset, offset + MAX_CHUNK_SIZE);
        offset = expectOk(await carol.uploadChunk(upload.id, offset, chunk, { chunkMd5: md5(chunk) })).uploadChunk.offset;
      }
      assert.equal(offset, MAX_FILE_SIZE);
      assert.equal(expectOk(await carol.complete(upload.id, md5(bytes))).completeUpload.md5, md5(bytes));
    });

    it('an oversize chunk still gets the codes that come before PAYLOAD_TOO_LARGE', async () => {
      const upload = await carol.start('oversize-precedence.bin', MAX_FILE_SIZE);
      expectOk(await carol.uploadChunk(upload.id, 0, randomFile(100)));
      const aborted = await carol.start('oversize-aborted.bin', MAX_FILE_SIZE);
      expectOk(await abort(carol, aborted.id));
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
        cases.map(([what, , result]) => `${what}: ${codesOf(result)}`),
        cases.map(([what, code]) => `${what}: ${code}`),
      );
      await expectUnharmed(limited, carol, upload.id, 100);
    });
  });

  describe('UPLOAD_EXPIRED', () => {
    it('refuses chunks and completion after expiresAt; finished and aborted uploads stay UPLOAD_NOT_ACTIVE', async () => {
      const bytes = randomFile(100);
      // Within the TTL everything works (the control for what follows).
      const full = await dave.start('full.bin', bytes.length);
      expectOk(await dave.uploadChunk(full.id, 0, bytes));
      const partial = await dave.start('partial.bin', bytes.length);
      const afterChunk = expectOk(await dave.uploadChunk(partial.id, 0, bytes.subarray(0, 50))).uploadChunk;
      const done = await dave.start('done.bin', 10);
      expectOk(await dave.uploadChunk(done.id, 0, bytes.subarray(0, 10)));
      expectOk(await dave.complete(done.id, md5(bytes.subarray(0, 10))));
      const aborted = await dave.start('aborted.bin', 10);
      expectOk(await abort(dave, aborted.id));

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

      await expectHealthy(expiring);
      for (const [upload, offset] of [
        [partial, 50],
        [full, 100],
      ] as const) {
        const stored = await dave.getUpload(upload.id);
        assert.equal(stored.offset, offset, 'the stored offset did not move');
        assert.ok(['UPLOADING', 'EXPIRED'].includes(stored.status), `an expired upload is not ${stored.status}`);
      }
      assert.equal(await fileCount(dave, 'full.bin'), 0, 'the expired upload was not filed');
    });
  });

  describe('transport', () => {
    it('refuses a multipart request without apollo-require-preflight with 400, writes nothing and stays up', async () => {
      const bytes = randomFile(2 * 1024 * 1024);
      const upload = await alice.start('csrf.bin', bytes.length);
      const refused = await rawMultipart(server.url, upload.id, 0, bytes, alice.authHeaders());
      assert.equal(refused.status, 400, refused.text);
      assert.ok(!refused.text.includes('"uploadChunk"'), `the operation did not run: ${refused.text}`);
      await expectUnharmed(server, alice, upload.id, 0);

      // Control: the same request with the header is accepted.
      const accepted = await rawMultipart(server.url, upload.id, 0, bytes, { ...alice.authHeaders(), 'apollo-require-preflight': 'true' });
      assert.equal(accepted.status, 200, accepted.text);
      assert.equal(JSON.parse(accepted.text).data.uploadChunk.offset, bytes.length);
    });

    it('reads every refused chunk to its end before answering, and keeps the connection usable', async () => {
      const MiB = 1024 * 1024;
      const size = 2 * MiB;
      const pauseAt = 1.5 * MiB; // past every limit below, before the end of the chunk
      const open = await alice.start('transport-open.bin', 4 * MiB);
      const small = await alice.start('transport-small.bin', MiB);
      const aborted = await alice.start('transport-aborted.bin', 4 * MiB);
      expectOk(await abort(alice, aborted.id));
      const limitedUpload = await carol.start('transport-limited.bin', MAX_FILE_SIZE);
      const expired = jwt.sign({ sub: randomUUID(), ver: 0, exp: Math.floor(Date.now() / 1000) - 60 }, server.app.services.config.jwtSecret);

      const cases: [string, string, () => Promise<OneConnection>][] = [
        ['no token', 'UNAUTHENTICATED', () => chunkOnOneConnection(anonymous, open.id, 0, randomFile(size), { pauseAt })],
        ['an expired token', 'UNAUTHENTICATED', () => chunkOnOneConnection(anonymous.withToken(expired), open.id, 0, randomFile(size), { pauseAt })],
        ['a negative offset', 'BAD_USER_INPUT', () => chunkOnOneConnection(alice, open.id, -1, randomFile(size), { pauseAt })],
        ["another user's upload", 'NOT_FOUND', () => chunkOnOneConnection(bob, open.id, 0, randomFile(size), { pauseAt })],
        ['an aborted upload', 'UPLOAD_NOT_ACTIVE', () => chunkOnOneConnection(alice, aborted.id, 0, randomFile(size), { pauseAt })],
        ['a wrong offset', 'OFFSET_MISMATCH', () => chunkOnOneConnection(alice, open.id, 7, randomFile(size), { pauseAt })],
        ['a chunk past totalSize', 'PAYLOAD_TOO_LARGE', () => chunkOnOneConnection(alice, small.id, 0, randomFile(size), { pauseAt })],
        ['a chunk over MAX_CHUNK_SIZE', 'PAYLOAD_TOO_LARGE', () => chunkOnOneConnection(carol, limitedUpload.id, 0, randomFile(size), { pauseAt })],
        ['a wrong chunkMd5', 'CHECKSUM_MISMATCH', () => chunkOnOneConnection(alice, open.id, 0, randomFile(size), { pauseAt, chunkMd5: md5(Buffer.from('x')) })],
      ];
      const problems: string[] = [];
      for (const [what, code, send] of cases) {
        const sent = await send();
        if (codesOf(sent.result) !== code) problems.push(`${what}: ${codesOf(sent.result)} instead of ${code}`);
        if (sent.answeredBeforeBodyEnd) problems.push(`${what}: answered before the chunk was fully sent`);
        if (sent.keepAlive && !sent.nextAnswered) {
          problems.push(`${what}: the connection was kept alive, but the next request on it got no answer (the rest of the chunk was never read)`);
        }
      }
      assert.deepEqual(problems, []);

      // Control: an accepted chunk on the same kind of connection, and nothing refused was stored.
      await expectUnharmed(server, alice, open.id, 0);
      await expectUnharmed(server, alice, small.id, 0);
      const accepted = await chunkOnOneConnection(alice, open.id, 0, randomFile(size), { pauseAt });
      assert.equal(codesOf(accepted.result), 'no error');
      assert.equal(accepted.result.data.uploadChunk.offset, size);
      assert.ok(accepted.nextAnswered || !accepted.keepAlive, 'the connection stays usable after an accepted chunk');
    });
  });
});
