import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { expectCode, expectOk } from './helpers/assert';
import { md5, randomFile, type GraphQLClient } from './helpers/client';
import { S3_SKIP, s3Env } from './helpers/s3';
import { startServer, type TestServer } from './helpers/server';
import { completeAndVerify, sendChunks } from './helpers/upload';

const MiB = 1024 * 1024;

describe('uploads on S3 storage', { skip: S3_SKIP }, () => {
  let server: TestServer;
  let alice: GraphQLClient;

  before(async () => {
    server = await startServer(s3Env());
    alice = await server.admin.newUser();
  });
  after(() => server?.close());

  it('tells clients a chunk size S3 accepts and completes uploads made of small chunks', async () => {
    const bytes = randomFile(11 * MiB + 5);
    const upload = await alice.start('small-chunks.bin', bytes.length);
    assert.equal(upload.chunkSize, 5 * MiB, 'the part size, so no chunk leaves a tail');
    // 1.5 MiB chunks: below S3's 5 MiB part minimum, so the server must stage them.
    await sendChunks(alice, upload.id, bytes, 0, bytes.length, 1.5 * MiB);
    const file = await completeAndVerify(alice, upload.id, bytes);
    const range = await alice.download(`/files/${file.id}/content`, { range: `bytes=${5 * MiB - 3}-${5 * MiB + 2}` });
    assert.equal(range.status, 206);
    assert.deepEqual(range.body, bytes.subarray(5 * MiB - 3, 5 * MiB + 3));
  });

  it('resumes across a restart from the committed offset and refuses a wrong chunk md5 without moving', async () => {
    const bytes = randomFile(6 * MiB + 1);
    const upload = await alice.start('resume.bin', bytes.length);
    await sendChunks(alice, upload.id, bytes, 0, 2 * MiB, 2 * MiB);
    expectCode(await alice.uploadChunk(upload.id, 2 * MiB, bytes.subarray(2 * MiB, 4 * MiB), { chunkMd5: md5(Buffer.from('x')) }), 'CHECKSUM_MISMATCH');
    await server.restart();
    const { offset } = await alice.getUpload(upload.id);
    assert.equal(offset, 2 * MiB);
    await sendChunks(alice, upload.id, bytes, offset, bytes.length, bytes.length - offset);
    await completeAndVerify(alice, upload.id, bytes);
  });

  it('stores an empty file and aborts uploads', async () => {
    const empty = await alice.start('empty.txt', 0);
    await completeAndVerify(alice, empty.id, Buffer.alloc(0));

    const doomed = await alice.start('doomed.bin', 10);
    await sendChunks(alice, doomed.id, randomFile(5), 0, 5, 5);
    assert.equal(expectOk(await alice.abort(doomed.id)).abortUpload.status, 'ABORTED');
    const pending: string[] = [];
    for await (const id of server.app.store.listUploadIds()) pending.push(id);
    assert.ok(!pending.includes(doomed.id), 'the multipart upload and its staged tail are gone');
  });
});
