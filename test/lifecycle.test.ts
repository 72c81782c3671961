import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectCode, expectOk } from './helpers/assert';
import { FILE_FIELDS, md5, randomFile, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { exists } from './helpers/files';
import { startServer, type TestServer } from './helpers/server';
import { completeAndVerify, sendChunks, uploadFile, verifyDownload } from './helpers/upload';

describe(`upload lifecycle (${databaseKind})`, () => {
  let server: TestServer;
  let alice: GraphQLClient;
  let aliceName: string;

  before(async () => {
    server = await startServer();
    aliceName = `alice_${randomBytes(4).toString('hex')}`;
    alice = await server.admin.newUser(aliceName);
  });
  after(() => server?.close());

  it('uploads in chunks, completes with a matching md5 and serves the same bytes', async () => {
    const bytes = randomFile(1_000_000 + 17);
    const upload = await alice.start('report.pdf', bytes.length, { description: 'Q3 numbers' });
    assert.equal(upload.offset, 0);
    assert.equal(upload.status, 'UPLOADING');
    assert.equal(upload.mimeType, 'application/pdf');

    await sendChunks(alice, upload.id, bytes, 0, bytes.length, 300_000, { withMd5: true });
    assert.equal((await alice.getUpload(upload.id)).offset, bytes.length);

    const file = await completeAndVerify(alice, upload.id, bytes); // its size, md5 and downloaded bytes
    assert.equal(file.name, 'report.pdf');
    assert.equal(file.description, 'Q3 numbers');
    assert.equal(file.mimeType, 'application/pdf');
    assert.equal(file.author.username, aliceName);

    const onDisk = await readFile(path.join(server.dataDir, 'files', file.id));
    assert.equal(md5(onDisk), md5(bytes), 'the stored bytes are the uploaded bytes');
    await assert.rejects(stat(path.join(server.dataDir, 'uploads', `${upload.id}.part`)), { code: 'ENOENT' }, 'the partial file was moved, not copied');

    const download = await alice.download(`/files/${file.id}/content`);
    assert.equal(download.headers.get('content-length'), String(bytes.length));
    assert.equal(download.headers.get('content-disposition'), `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`);

    assert.equal((await alice.getUpload(upload.id)).status, 'COMPLETE');
  });

  it('returns the same File when completion is repeated, and refuses a different md5', async () => {
    const bytes = randomFile(4096);
    const upload = await alice.start('twice.txt', bytes.length);
    await sendChunks(alice, upload.id, bytes, 0, bytes.length, bytes.length);
    const first = await completeAndVerify(alice, upload.id, bytes);
    const again = expectOk(await alice.complete(upload.id, md5(bytes).toUpperCase())).completeUpload;
    // downloadUrl carries a link signed afresh each time (its iat may fall in the next second).
    const withoutLink = ({ downloadUrl, ...file }: any) => ({ ...file, linkPath: String(downloadUrl).split('?')[0] });
    assert.deepEqual(withoutLink(again), withoutLink(first), 'the same File, not a second one');
    expectCode(await alice.complete(upload.id, md5(Buffer.from('other'))), 'CHECKSUM_MISMATCH');
  });

  it('gives clashing names a numbered suffix, case-insensitively', async () => {
    const names = [];
    for (const name of ['clash.tar.gz', 'CLASH.tar.gz', 'clash.tar.gz']) {
      names.push((await uploadFile(alice, randomFile(100), name)).name);
    }
    assert.deepEqual(names, ['clash.tar.gz', 'CLASH.tar_1.gz', 'clash.tar_2.gz']);
  });

  it('keeps names unique when many completions race for one name', async () => {
    const uploads = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const bytes = randomFile(1000);
        const upload = await alice.start('race.bin', bytes.length);
        await sendChunks(alice, upload.id, bytes, 0, bytes.length, bytes.length);
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
    const done = expectOk(await alice.complete(upload.id, md5(Buffer.alloc(0)), 'new')).completeUpload;
    assert.equal(done.size, 0);
    assert.equal(done.description, 'new');
    await verifyDownload(alice, done.id, Buffer.alloc(0));
  });

  it('cleans file names: path components, control and bidi/zero-width characters go, NFD becomes NFC', async () => {
    const cases: [string, string][] = [
      ['../../etc/passwd', 'passwd'],
      ['C:\\Users\\me\\notes.txt', 'notes.txt'],
      ['bad\u0000na\u0007me\u009f.txt', 'badname.txt'],
      ['cafe\u0301.txt', 'caf\u00e9.txt'],
      // A right-to-left override would disguise the extension ("invoice\u202efdp.exe" shows as "invoiceexe.pdf").
      ['invoice\u202efdp.exe', 'invoicefdp.exe'],
      ['zero\u200bwidth\ufeff.txt', 'zerowidth.txt'],
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
    await sendChunks(alice, upload.id, bytes, 0, bytes.length, bytes.length);
    assert.equal((await alice.getUpload(upload.id)).totalSize, fiveGiB);
    const mine = await alice.data(`{ myUploads(status: UPLOADING) { id totalSize } }`);
    assert.equal(mine.myUploads.find((u: any) => u.id === upload.id).totalSize, fiveGiB);
  });

  it('lists my uploads newest first, filtered by status, and aborts', async () => {
    const carol = await server.admin.newUser(); // a user of her own: her list is exactly what this test made
    const first = await carol.start('a.bin', 10);
    await sendChunks(carol, first.id, randomFile(10), 0, 4, 4);
    assert.equal(await exists(path.join(server.dataDir, 'uploads', `${first.id}.part`)), true, 'the first chunk made the partial file');
    const second = await carol.start('b.bin', 10);
    assert.equal(expectOk(await carol.abort(first.id)).abortUpload.status, 'ABORTED');
    const { myUploads } = await carol.data(`{ myUploads { id status } }`);
    assert.deepEqual(myUploads, [
      { id: second.id, status: 'UPLOADING' },
      { id: first.id, status: 'ABORTED' },
    ]);
    const { myUploads: onlyAborted } = await carol.data(`{ myUploads(status: ABORTED) { id } }`);
    assert.deepEqual(onlyAborted, [{ id: first.id }]);
    await assert.rejects(stat(path.join(server.dataDir, 'uploads', `${first.id}.part`)), { code: 'ENOENT' }, 'abort removes the partial bytes');
  });

  it('reports who I am and reads a finished file by id', async () => {
    const { me } = await alice.data(`{ me { id username isAdmin createdAt } }`);
    assert.equal(me.username, aliceName);
    assert.equal(me.isAdmin, false);
    const file = await uploadFile(alice, randomFile(10), 'byid.txt');
    const { file: found } = await server.admin.data(`query($id: ID!) { file(id: $id) { ${FILE_FIELDS} } }`, { id: file.id });
    assert.equal(found.id, file.id);
    assert.equal(found.author.id, me.id);
  });
});
