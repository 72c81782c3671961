import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectCode, FILE_FIELDS, md5, randomFile, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { startServer, type TestServer } from './helpers/server';

describe(`upload lifecycle (${databaseKind})`, () => {
  let server: TestServer;
  let alice: GraphQLClient;

  before(async () => {
    server = await startServer();
    alice = await server.admin.newUser();
  });
  after(() => server?.close());

  it('uploads in chunks, completes with a matching md5 and serves the same bytes', async () => {
    const bytes = randomFile(1_000_000 + 17);
    const upload = await alice.start('report.pdf', bytes.length, { description: 'Q3 numbers' });
    assert.equal(upload.offset, 0);
    assert.equal(upload.status, 'UPLOADING');
    assert.equal(upload.mimeType, 'application/pdf');

    const chunkSize = 300_000;
    for (let offset = 0; offset < bytes.length; offset += chunkSize) {
      const chunk = bytes.subarray(offset, offset + chunkSize);
      const result = await alice.uploadChunk(upload.id, offset, chunk, { chunkMd5: md5(chunk) });
      assert.equal(result.errors, undefined, JSON.stringify(result.errors));
      assert.equal(result.data.uploadChunk.offset, Math.min(offset + chunkSize, bytes.length));
    }
    assert.equal((await alice.getUpload(upload.id)).offset, bytes.length);

    const done = await alice.complete(upload.id, md5(bytes));
    assert.equal(done.errors, undefined, JSON.stringify(done.errors));
    const file = done.data.completeUpload;
    assert.equal(file.name, 'report.pdf');
    assert.equal(file.size, bytes.length);
    assert.equal(file.md5, md5(bytes));
    assert.equal(file.description, 'Q3 numbers');
    assert.equal(file.mimeType, 'application/pdf');
    assert.ok(file.author.username.startsWith('user_'));

    const onDisk = await readFile(path.join(server.dataDir, 'files', file.id));
    assert.equal(md5(onDisk), md5(bytes), 'the stored bytes are the uploaded bytes');
    await assert.rejects(stat(path.join(server.dataDir, 'uploads', `${upload.id}.part`)), 'the partial file was moved, not copied');

    const download = await alice.download(`/files/${file.id}/content`);
    assert.equal(download.status, 200);
    assert.equal(md5(download.body), md5(bytes));
    assert.equal(download.headers.get('content-length'), String(bytes.length));
    assert.match(download.headers.get('content-disposition') ?? '', /^attachment;.*report\.pdf/);

    assert.equal((await alice.getUpload(upload.id)).status, 'COMPLETE');
  });

  it('returns the same File when completion is repeated, and refuses a different md5', async () => {
    const bytes = randomFile(4096);
    const upload = await alice.start('twice.txt', bytes.length);
    await alice.uploadChunk(upload.id, 0, bytes);
    const first = (await alice.complete(upload.id, md5(bytes))).data.completeUpload;
    const again = await alice.complete(upload.id, md5(bytes).toUpperCase());
    assert.equal(again.errors, undefined, JSON.stringify(again.errors));
    assert.deepEqual(again.data.completeUpload.id, first.id);
    assert.equal(again.data.completeUpload.name, first.name);
    expectCode(await alice.complete(upload.id, md5(Buffer.from('other'))), 'CHECKSUM_MISMATCH');
  });

  it('gives clashing names a numbered suffix, case-insensitively', async () => {
    const names = [];
    for (const name of ['clash.tar.gz', 'CLASH.tar.gz', 'clash.tar.gz']) {
      names.push((await alice.uploadFile(randomFile(100), name)).name);
    }
    assert.deepEqual(names, ['clash.tar.gz', 'CLASH.tar_1.gz', 'clash.tar_2.gz']);
  });

  it('keeps names unique when many completions race for one name', async () => {
    const uploads = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const bytes = randomFile(1000);
        const upload = await alice.start('race.bin', bytes.length);
        await alice.uploadChunk(upload.id, 0, bytes);
        return { upload, bytes };
      }),
    );
    const results = await Promise.all(uploads.map(({ upload, bytes }) => alice.complete(upload.id, md5(bytes))));
    for (const r of results) assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const names = results.map((r) => r.data.completeUpload.name).sort();
    assert.deepEqual(names, ['race.bin', 'race_1.bin', 'race_2.bin', 'race_3.bin', 'race_4.bin', 'race_5.bin']);
  });

  it('replaces the description at completion and accepts an empty file', async () => {
    const upload = await alice.start('empty.txt', 0, { description: 'old' });
    const done = await alice.complete(upload.id, md5(Buffer.alloc(0)), 'new');
    assert.equal(done.errors, undefined, JSON.stringify(done.errors));
    assert.equal(done.data.completeUpload.size, 0);
    assert.equal(done.data.completeUpload.description, 'new');
    const download = await alice.download(`/files/${done.data.completeUpload.id}/content`);
    assert.equal(download.status, 200);
    assert.equal(download.body.length, 0);
  });

  it('cleans file names: path components and control characters go, NFD becomes NFC', async () => {
    const cases: [string, string][] = [
      ['../../etc/passwd', 'passwd'],
      ['C:\\Users\\me\\notes.txt', 'notes.txt'],
      ['bad\u0000na\u0007me\u009f.txt', 'badname.txt'],
      ['cafe\u0301.txt', 'caf\u00e9.txt'],
      ['\u202ereversed.txt', '\u202ereversed.txt'],
    ];
    for (const [given, stored] of cases) {
      const upload = await alice.start(given, 1);
      assert.equal(upload.filename, stored, `for ${JSON.stringify(given)}`);
    }
    for (const bad of ['', '/', 'dir/', '..', 'a/..', '\u0001\u0002', 'x'.repeat(256), '\u00e9'.repeat(128)]) {
      expectCode(await alice.startUpload({ filename: bad, totalSize: 1 }), 'BAD_USER_INPUT');
    }
    assert.equal((await alice.start('\u00e9'.repeat(127) + 'x', 1)).filename.length, 128, '255 bytes of UTF-8 is allowed');
  });

  it('accepts and round-trips a 5 GiB totalSize as a 64-bit number', async () => {
    const fiveGiB = 5 * 1024 ** 3;
    const upload = await alice.start('huge.iso', fiveGiB);
    assert.equal(upload.totalSize, fiveGiB);
    const bytes = randomFile(1000);
    const after = await alice.uploadChunk(upload.id, 0, bytes);
    assert.equal(after.data.uploadChunk.offset, 1000);
    assert.equal((await alice.getUpload(upload.id)).totalSize, fiveGiB);
    const mine = await alice.data(`{ myUploads(status: UPLOADING) { id totalSize } }`);
    assert.equal(mine.myUploads.find((u: any) => u.id === upload.id).totalSize, fiveGiB);
  });

  it('lists my uploads newest first, filtered by status, and aborts', async () => {
    const first = await alice.start('a.bin', 10);
    const second = await alice.start('b.bin', 10);
    const aborted = await alice.data(`mutation($id: ID!) { abortUpload(uploadId: $id) { id status } }`, { id: first.id });
    assert.equal(aborted.abortUpload.status, 'ABORTED');
    const { myUploads } = await alice.data(`{ myUploads { id status } }`);
    const ids = myUploads.map((u: any) => u.id);
    assert.ok(ids.indexOf(second.id) < ids.indexOf(first.id), 'newest first');
    const { myUploads: onlyAborted } = await alice.data(`{ myUploads(status: ABORTED) { id } }`);
    assert.deepEqual(onlyAborted.map((u: any) => u.id), [first.id]);
    await assert.rejects(stat(path.join(server.dataDir, 'uploads', `${first.id}.part`)), 'abort removes the partial bytes');
  });

  it('reports who I am and reads a finished file by id', async () => {
    const { me } = await alice.data(`{ me { id username isAdmin createdAt } }`);
    assert.equal(me.isAdmin, false);
    const file = await alice.uploadFile(randomFile(10), 'byid.txt');
    const { file: found } = await server.admin.data(`query($id: ID!) { file(id: $id) { ${FILE_FIELDS} } }`, { id: file.id });
    assert.equal(found.id, file.id);
    assert.equal(found.author.id, me.id);
  });
});
