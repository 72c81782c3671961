import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { md5, randomFile, type GraphQLClient } from './helpers/client';
import { S3_SKIP, s3Env } from './helpers/s3';
import { startServer, type TestServer } from './helpers/server';
import { sleep, withTimeout } from './helpers/timing';
import { b64, dropMidway, openStalledPatch, patch, startRaw, statusOf, tusRequest, tusUpload, uploadIdOf } from './helpers/tus';
import { verifyDownload } from './helpers/upload';

const MiB = 1024 * 1024;
const UPLOAD = `query($id: ID!) { upload(id: $id) { id status offset totalSize filename } }`;
const FILE = `query($id: ID!) { file(id: $id) { id name size md5 description mimeType } }`;

for (const storage of ['disk', 's3'] as const) {
  describe(`tus 1.0.0 on ${storage} storage`, { skip: storage === 's3' && S3_SKIP }, () => {
    let server: TestServer;
    let alice: GraphQLClient;

    before(async () => {
      // Chunks are capped at 2 MiB: one PATCH of a larger file must still stream through.
      server = await startServer({ MAX_CHUNK_SIZE: String(2 * MiB), ...(storage === 's3' ? s3Env() : {}) });
      alice = await server.admin.newUser();
    });
    after(() => server?.close());

    it('takes a whole file larger than the chunk limit in one PATCH (tus-js-client defaults) and files it with its md5', async () => {
      const bytes = randomFile(11 * MiB + 123);
      const outcome = await tusUpload(alice, bytes, { metadata: { filename: 'one-patch.bin', filetype: 'application/x-test', description: 'sent whole' } });
      assert.equal(outcome.error, undefined, String(outcome.error));
      const id = uploadIdOf(outcome.url!);
      const { upload } = await alice.data(UPLOAD, { id });
      assert.deepEqual({ status: upload.status, offset: upload.offset }, { status: 'COMPLETE', offset: bytes.length });
      const { file } = await alice.data(FILE, { id });
      assert.equal(file.md5, md5(bytes));
      assert.equal(file.size, bytes.length);
      assert.equal(file.name, 'one-patch.bin');
      assert.equal(file.description, 'sent whole');
      assert.equal(file.mimeType, 'application/x-test');
      await verifyDownload(alice, id, bytes);
    });

    it('takes a file in chunks (PATCH after PATCH), checking the md5 declared in Upload-Metadata', async () => {
      const bytes = randomFile(7 * MiB + 5);
      const outcome = await tusUpload(alice, bytes, { chunkSize: 1536 * 1024, metadata: { filename: 'chunked.bin', md5: md5(bytes) } });
      assert.equal(outcome.error, undefined, String(outcome.error));
      const { file } = await alice.data(FILE, { id: uploadIdOf(outcome.url!) });
      assert.equal(file.md5, md5(bytes));
      await verifyDownload(alice, file.id, bytes);
    });

    it('starts with the first bytes in the POST (creation-with-upload) and with the length deferred', async () => {
      const bytes = randomFile(3 * MiB + 7);
      const withUpload = await tusUpload(alice, bytes, { uploadDataDuringCreation: true, chunkSize: 2 * MiB, metadata: { filename: 'early.bin' } });
      assert.equal(withUpload.error, undefined, String(withUpload.error));
      await verifyDownload(alice, uploadIdOf(withUpload.url!), bytes);

      const deferred = await tusUpload(alice, bytes, { uploadLengthDeferred: true, chunkSize: MiB, metadata: { filename: 'deferred.bin' } });
      assert.equal(deferred.error, undefined, String(deferred.error));
      const { file } = await alice.data(FILE, { id: uploadIdOf(deferred.url!) });
      assert.equal(file.size, bytes.length);
      await verifyDownload(alice, file.id, bytes);
    });

    it('answers 460 for a wrong declared md5, files nothing, and leaves the upload open', async () => {
      const bytes = randomFile(MiB);
      const outcome = await tusUpload(alice, bytes, { metadata: { filename: 'wrong-md5.bin', md5: md5(Buffer.from('other')) } });
      assert.equal(statusOf(outcome), 460);
      const id = uploadIdOf(outcome.url!);
      const { upload } = await alice.data(UPLOAD, { id });
      assert.deepEqual({ status: upload.status, offset: upload.offset }, { status: 'UPLOADING', offset: bytes.length });
      assert.equal((await alice.data(FILE, { id })).file, null, 'nothing was filed');
      // A client resuming it finds the same refusal rather than a false success.
      assert.equal((await tusRequest(outcome.url!, 'HEAD', { token: alice.token })).status, 460);
      // GraphQL can still file it with the right md5.
      assert.equal((await alice.complete(id, md5(bytes))).errors, undefined);
    });

    it('resumes an interrupted upload from the offset the server reports, with a new client', async () => {
      const bytes = randomFile(9 * MiB);
      const id = await startRaw(alice, bytes.length, 'resumed.bin');
      const url = `${alice.url}/tus/${id}`;
      // The first client sends 5 MiB in one PATCH, then its connection drops half-way through more.
      assert.equal((await patch(alice, url, 0, bytes.subarray(0, 5 * MiB))).status, 204);
      await dropMidway(alice, url, 5 * MiB, bytes.subarray(5 * MiB), MiB);
      const head = await tusRequest(url, 'HEAD', { token: alice.token });
      assert.equal(head.status, 200);
      const offset = Number(head.headers.get('upload-offset'));
      assert.ok(offset >= 5 * MiB && offset < bytes.length, `resumes at ${offset}`);
      const { upload } = await alice.data(UPLOAD, { id });
      assert.equal(upload.offset, offset, 'GraphQL and tus see the same offset');

      const resumed = await tusUpload(alice, bytes, { uploadUrl: url, metadata: { filename: 'resumed.bin' } });
      assert.equal(resumed.error, undefined, String(resumed.error));
      await verifyDownload(alice, id, bytes);
    });

    it('lets a reconnecting client in at once while its abandoned PATCH still holds the lease', async () => {
      const bytes = randomFile(4 * MiB);
      const id = await startRaw(alice, bytes.length, 'reconnect.bin');
      const url = `${alice.url}/tus/${id}`;
      // A PATCH whose client went silent (no FIN, no RST): the server still holds its lease.
      const stalled = await openStalledPatch(alice, url, 0, bytes.length, bytes.subarray(0, MiB));
      try {
        const head = await withTimeout(tusRequest(url, 'HEAD', { token: alice.token }), 5000, 'HEAD while an abandoned PATCH holds the lease');
        assert.equal(head.status, 200);
        const offset = Number(head.headers.get('upload-offset'));
        const rest = await withTimeout(patch(alice, url, offset, bytes.subarray(offset)), 10000, 'PATCH after the reconnect');
        assert.equal(rest.status, 204);
      } finally {
        stalled.destroy();
      }
      await verifyDownload(alice, id, bytes);
    });

    it('is a ChunkedUpload to GraphQL: listed in myUploads and aborted there; DELETE terminates', async () => {
      const id = await startRaw(alice, 100, 'seen.bin');
      const { myUploads } = await alice.data(`{ myUploads { id filename status } }`);
      assert.ok(myUploads.some((u: any) => u.id === id && u.filename === 'seen.bin' && u.status === 'UPLOADING'));
      const { abortUpload } = await alice.data(`mutation($id: ID!) { abortUpload(uploadId: $id) { status } }`, { id });
      assert.equal(abortUpload.status, 'ABORTED');
      assert.equal((await tusRequest(`${alice.url}/tus/${id}`, 'HEAD', { token: alice.token })).status, 410);

      const other = await startRaw(alice, 100, 'terminated.bin');
      const terminated = await tusRequest(`${alice.url}/tus/${other}`, 'DELETE', { token: alice.token });
      assert.equal(terminated.status, 204);
      assert.equal((await alice.data(UPLOAD, { id: other })).upload.status, 'ABORTED');
    });

    it('answers with the protocol status codes: 409, 410, 413, 401, 404, 412, 415', async () => {
      const id = await startRaw(alice, 1000, 'codes.bin');
      const url = `${alice.url}/tus/${id}`;
      const wrongOffset = await patch(alice, url, 10, Buffer.alloc(10));
      assert.equal(wrongOffset.status, 409);
      assert.equal((await patch(alice, url, 0, Buffer.alloc(1001))).status, 413);
      assert.equal((await alice.data(UPLOAD, { id })).upload.offset, 0, 'a refused PATCH stores nothing');

      assert.equal((await tusRequest(url, 'HEAD')).status, 401);
      assert.equal((await tusRequest(url, 'HEAD', { token: 'not-a-token' })).status, 401);
      const bob = await server.admin.newUser();
      assert.equal((await tusRequest(url, 'HEAD', { token: bob.token })).status, 404, "another user's upload is not found");
      assert.equal((await tusRequest(url, 'HEAD', { token: alice.token, headers: { 'tus-resumable': '0.2.2' } })).status, 412);
      const notTus = await tusRequest(url, 'PATCH', { token: alice.token, headers: { 'upload-offset': '0', 'content-type': 'application/octet-stream' }, body: Buffer.alloc(10) });
      assert.equal(notTus.status, 415);

      await server.sql(`update chunked_uploads set expires_at = now() - interval '1 second' where id = ?`, [id]);
      assert.equal((await patch(alice, url, 0, Buffer.alloc(10))).status, 410);
      assert.equal((await tusRequest(url, 'HEAD', { token: alice.token })).status, 410);

      const tooLarge = await tusRequest(`${alice.url}/tus/`, 'POST', {
        token: alice.token,
        headers: { 'upload-length': String(Number.MAX_SAFE_INTEGER), 'upload-metadata': `filename ${b64('big.bin')}` },
      });
      assert.equal(tooLarge.status, 413);
      const noName = await tusRequest(`${alice.url}/tus/`, 'POST', { token: alice.token, headers: { 'upload-length': '10' } });
      assert.equal(noName.status, 400);
      const badType = await tusRequest(`${alice.url}/tus/`, 'POST', {
        token: alice.token,
        headers: { 'upload-length': '10', 'upload-metadata': `filename ${b64('x.bin')},filetype ${b64('text/html\r\nx-injected: 1')}` },
      });
      assert.equal(badType.status, 400, 'filetype is checked as a media type, as startUpload checks mimeType');
    });

    it('answers OPTIONS with its version and extensions, and honours X-HTTP-Method-Override', async () => {
      const options = await fetch(`${alice.url}/tus/`, { method: 'OPTIONS' });
      assert.equal(options.status, 204);
      assert.equal(options.headers.get('tus-version'), '1.0.0');
      assert.deepEqual(options.headers.get('tus-extension')?.split(','), ['creation', 'creation-with-upload', 'creation-defer-length', 'termination', 'expiration']);
      assert.ok(Number(options.headers.get('tus-max-size')) > 0);

      const id = await startRaw(alice, 4, 'override.bin');
      const overridden = await tusRequest(`${alice.url}/tus/${id}`, 'POST', {
        token: alice.token,
        headers: { 'x-http-method-override': 'PATCH', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
        body: Buffer.from('tus!'),
      });
      assert.equal(overridden.status, 204);
      assert.equal(overridden.headers.get('upload-offset'), '4');
      assert.equal((await alice.data(FILE, { id })).file.md5, md5(Buffer.from('tus!')));
    });

    it('files an empty file at creation', async () => {
      const outcome = await tusUpload(alice, Buffer.alloc(0), { metadata: { filename: 'empty.bin' } });
      assert.equal(outcome.error, undefined, String(outcome.error));
      const { file } = await alice.data(FILE, { id: uploadIdOf(outcome.url!) });
      assert.equal(file.size, 0);
      assert.equal(file.md5, md5(Buffer.alloc(0)));
    });
  });
}

describe('tus: a long PATCH and an idle one', () => {
  let server: TestServer;
  let alice: GraphQLClient;

  before(async () => {
    server = await startServer({ BODY_TIMEOUT: '1', MAX_CHUNK_SIZE: String(MiB) });
    alice = await server.admin.newUser();
  });
  after(() => server?.close());

  it('keeps a PATCH that takes far longer than BODY_TIMEOUT as long as bytes keep coming', async () => {
    const bytes = randomFile(3 * MiB);
    const id = await startRaw(alice, bytes.length, 'slow.bin');
    const pieces = 12;
    const slowBody = (async function* () {
      for (let i = 0; i < pieces; i++) {
        await sleep(250);
        yield bytes.subarray((i * bytes.length) / pieces, ((i + 1) * bytes.length) / pieces);
      }
    })();
    const res = await fetch(`${alice.url}/tus/${id}`, {
      method: 'PATCH',
      headers: { 'tus-resumable': '1.0.0', authorization: `Bearer ${alice.token}`, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
      body: Readable.toWeb(Readable.from(slowBody)) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    assert.equal(res.status, 204, await res.text());
    await verifyDownload(alice, id, bytes);
  });

  it('cuts off a PATCH that sends nothing for BODY_TIMEOUT, keeping its committed segments', async () => {
    const bytes = randomFile(3 * MiB);
    const id = await startRaw(alice, bytes.length, 'idle.bin');
    const url = `${alice.url}/tus/${id}`;
    const stalled = await openStalledPatch(alice, url, 0, bytes.length, bytes.subarray(0, 2 * MiB + 10));
    const closed = new Promise((resolve) => stalled.once('close', resolve));
    await withTimeout(closed, 10_000, 'the server cutting off the idle PATCH');
    const head = await tusRequest(url, 'HEAD', { token: alice.token });
    assert.equal(head.headers.get('upload-offset'), String(2 * MiB), 'the two whole 1 MiB segments count, the partial one does not');
    assert.equal((await patch(alice, url, 2 * MiB, bytes.subarray(2 * MiB))).status, 204);
    await verifyDownload(alice, id, bytes);
  });
});
