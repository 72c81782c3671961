import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectCode, expectOk } from './helpers/assert';
import { md5, randomFile, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { exists } from './helpers/files';
import { startServer, type TestServer } from './helpers/server';
import { sleep } from './helpers/timing';
import { completeAndVerify, sendChunks, verifyDownload } from './helpers/upload';

describe(`cleanup (${databaseKind})`, () => {
  let server: TestServer;
  let alice: GraphQLClient;
  let bob: GraphQLClient;

  const sql = (query: string, params: unknown[] = []) => server.sql(query, params);
  const partPath = (id: string) => path.join(server.dataDir, 'uploads', `${id}.part`);
  const filePath = (id: string) => path.join(server.dataDir, 'files', id);

  before(async () => {
    // Uploads live one second after their last chunk; the interval job is off (the helper's default).
    server = await startServer({ UPLOAD_TTL: '1' });
    alice = await server.admin.newUser();
    bob = await server.admin.newUser();
  });
  after(() => server?.close());

  it('expires exactly the expired uploads, deletes only their bytes and orphans, and reports it', async () => {
    // Uploads that will expire: two with a chunk (two owners), one with none.
    const expiring: { client: GraphQLClient; id: string }[] = [];
    let lastExpiry = 0;
    for (const client of [alice, bob]) {
      const upload = await client.start('stale.bin', 1000);
      const afterChunk = await sendChunks(client, upload.id, randomFile(400), 0, 400, 400);
      lastExpiry = Math.max(lastExpiry, Date.parse(afterChunk.expiresAt));
      expiring.push({ client, id: upload.id });
    }
    const empty = await alice.start('never-started.bin', 10);
    lastExpiry = Math.max(lastExpiry, Date.parse(empty.expiresAt));
    expiring.push({ client: alice, id: empty.id });

    // An aborted upload past its expiry: it stays ABORTED and is not counted.
    const aborted = await alice.start('aborted.bin', 10);
    expectOk(await alice.abort(aborted.id));

    // A completed file: its upload is kept alive by SQL just long enough to complete it calmly.
    const fileBytes = randomFile(3000);
    const done = await alice.start('kept.bin', fileBytes.length);
    await sendChunks(alice, done.id, fileBytes, 0, fileBytes.length, fileBytes.length);
    await sql(`update chunked_uploads set expires_at = now() + interval '1 hour' where id = ?`, [done.id]);
    const file = await completeAndVerify(alice, done.id, fileBytes);

    for (const { id } of expiring.filter(({ id }) => id !== empty.id)) assert.equal(await exists(partPath(id)), true, 'the partial bytes exist before cleanup');
    assert.equal(await exists(partPath(empty.id)), false, 'an upload that never got a byte has no partial file');

    // Wait until the first ones have expired, then start an upload that will not expire.
    await sleep(Math.max(0, lastExpiry - Date.now()) + 300);
    const live = await bob.start('live.bin', 1000);
    const liveChunk = randomFile(600);
    await sendChunks(bob, live.id, liveChunk, 0, liveChunk.length, liveChunk.length);
    await sql(`update chunked_uploads set expires_at = now() + interval '1 hour' where id = ?`, [live.id]);

    // Orphans: bytes with a uuid name and no row go; names that are not ours stay.
    const orphanFile = randomUUID();
    const orphanPart = randomUUID();
    await writeFile(filePath(orphanFile), 'orphan');
    await writeFile(filePath('notes.txt'), 'not ours');
    await writeFile(partPath(orphanPart), 'orphan part');
    await writeFile(path.join(server.dataDir, 'uploads', 'README'), 'not ours');
    await writeFile(filePath('backup-2024'), 'not ours either');
    await writeFile(partPath('scratch'), 'not ours either');

    const messages: string[] = [];
    const report = await server.app.services.cleanup.run((m) => messages.push(m));
    assert.deepEqual(report, { expiredUploads: 3, purgedRecords: 0, orphanedUploadBytes: 1, orphanedFileBytes: 1 });
    assert.deepEqual(messages, [
      'expired 3 upload(s) and deleted their partial bytes',
      'removed 0 finished upload record(s) older than 7 days',
      'deleted 1 orphaned partial upload(s)',
      'deleted 1 orphaned stored file(s)',
    ]);

    for (const { client, id } of expiring) {
      assert.equal((await client.getUpload(id)).status, 'EXPIRED');
      assert.equal(await exists(partPath(id)), false, `the partial bytes of ${id} are deleted`);
      const chunk = await client.uploadChunk(id, (await client.getUpload(id)).offset, randomFile(10));
      expectCode(chunk, 'UPLOAD_EXPIRED');
    }
    assert.equal((await alice.getUpload(aborted.id)).status, 'ABORTED');
    assert.equal((await alice.getUpload(done.id)).status, 'COMPLETE');

    assert.equal(md5(await readFile(filePath(file.id))), md5(fileBytes), "the completed file's bytes are untouched");
    await verifyDownload(alice, file.id, fileBytes);

    const liveNow = await bob.getUpload(live.id);
    assert.equal(liveNow.status, 'UPLOADING');
    assert.equal(liveNow.offset, 600);
    assert.deepEqual(await readFile(partPath(live.id)), liveChunk, "the live upload's partial bytes are untouched");

    assert.equal(await exists(filePath(orphanFile)), false, 'an orphaned stored file is deleted');
    assert.equal(await exists(partPath(orphanPart)), false, 'an orphaned partial file is deleted');
    assert.equal(await readFile(filePath('notes.txt'), 'utf8'), 'not ours');
    assert.equal(await readFile(path.join(server.dataDir, 'uploads', 'README'), 'utf8'), 'not ours');
    assert.equal(await readFile(filePath('backup-2024'), 'utf8'), 'not ours either', 'a non-uuid name in files/ is left alone');
    assert.equal(await readFile(partPath('scratch'), 'utf8'), 'not ours either', 'a non-uuid .part in uploads/ is left alone');

    // The live upload still finishes after the cleanup.
    const whole = Buffer.concat([liveChunk, randomFile(400)]);
    await sendChunks(bob, live.id, whole, 600, whole.length, 400);
    const finished = await completeAndVerify(bob, live.id, whole);

    // A second run finds nothing left to do.
    assert.deepEqual(await server.app.services.cleanup.run(), { expiredUploads: 0, purgedRecords: 0, orphanedUploadBytes: 0, orphanedFileBytes: 0 });
    assert.equal(await exists(filePath(finished.id)), true);
  });

  it('removes finished upload records after 7 days but keeps their Files, and keeps younger records', async () => {
    const bytes = randomFile(500);
    const upload = await alice.start('old-record.bin', bytes.length);
    await sendChunks(alice, upload.id, bytes, 0, bytes.length, bytes.length);
    await sql(`update chunked_uploads set expires_at = now() + interval '1 hour' where id = ?`, [upload.id]);
    const file = await completeAndVerify(alice, upload.id, bytes);

    const young = await alice.start('young-aborted.bin', 10);
    expectOk(await alice.abort(young.id));
    const oldAborted = await alice.start('old-aborted.bin', 10);
    expectOk(await alice.abort(oldAborted.id));

    await sql(`update chunked_uploads set updated_at = now() - interval '8 days' where id in (?, ?)`, [upload.id, oldAborted.id]);
    const report = await server.app.services.cleanup.run();
    assert.equal(report.purgedRecords, 2);
    assert.equal(report.orphanedFileBytes, 0);

    expectCode(await alice.request(`query($id: ID!) { upload(id: $id) { id } }`, { id: upload.id }), 'NOT_FOUND');
    expectCode(await alice.request(`query($id: ID!) { upload(id: $id) { id } }`, { id: oldAborted.id }), 'NOT_FOUND');
    assert.equal((await alice.getUpload(young.id)).status, 'ABORTED');

    const { file: still } = await alice.data(`query($id: ID!) { file(id: $id) { id md5 } }`, { id: file.id });
    assert.deepEqual(still, { id: file.id, md5: md5(bytes) }, 'the File outlives its upload record');
    assert.equal(md5(await readFile(filePath(file.id))), md5(bytes));
  });
});
