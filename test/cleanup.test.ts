import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectCode, md5, randomFile, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { startServer, type TestServer } from './helpers/server';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const exists = (p: string) => stat(p).then(() => true, () => false);

describe(`cleanup (${databaseKind})`, () => {
  let server: TestServer;
  let alice: GraphQLClient;
  let bob: GraphQLClient;

  const sql = (query: string, params: unknown[] = []) => server.app.database.orm.em.getConnection().execute(query, params);
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
      const chunk = await client.uploadChunk(upload.id, 0, randomFile(400));
      assert.equal(chunk.errors, undefined, JSON.stringify(chunk.errors));
      lastExpiry = Math.max(lastExpiry, Date.parse(chunk.data.uploadChunk.expiresAt));
      expiring.push({ client, id: upload.id });
    }
    const empty = await alice.start('never-started.bin', 10);
    lastExpiry = Math.max(lastExpiry, Date.parse(empty.expiresAt));
    expiring.push({ client: alice, id: empty.id });

    // An aborted upload past its expiry: it stays ABORTED and is not counted.
    const aborted = await alice.start('aborted.bin', 10);
    await alice.data(`mutation($id: ID!) { abortUpload(uploadId: $id) { id } }`, { id: aborted.id });

    // A completed file: its upload is kept alive by SQL just long enough to complete it calmly.
    const fileBytes = randomFile(3000);
    const done = await alice.start('kept.bin', fileBytes.length);
    await alice.uploadChunk(done.id, 0, fileBytes);
    await sql(`update chunked_uploads set expires_at = now() + interval '1 hour' where id = ?`, [done.id]);
    const completed = await alice.complete(done.id, md5(fileBytes));
    assert.equal(completed.errors, undefined, JSON.stringify(completed.errors));
    const file = completed.data.completeUpload;

    for (const { id } of expiring) assert.ok(await exists(partPath(id)), 'the partial bytes exist before cleanup');

    // Wait until the first ones have expired, then start an upload that will not expire.
    await sleep(Math.max(0, lastExpiry - Date.now()) + 300);
    const live = await bob.start('live.bin', 1000);
    const liveChunk = randomFile(600);
    await bob.uploadChunk(live.id, 0, liveChunk);
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
    assert.ok(messages.length >= 4, `progress lines: ${JSON.stringify(messages)}`);
    assert.ok(messages.some((m) => m.includes('3')), JSON.stringify(messages));

    for (const { client, id } of expiring) {
      assert.equal((await client.getUpload(id)).status, 'EXPIRED');
      assert.equal(await exists(partPath(id)), false, `the partial bytes of ${id} are deleted`);
      const chunk = await client.uploadChunk(id, (await client.getUpload(id)).offset, randomFile(10));
      expectCode(chunk, 'UPLOAD_EXPIRED');
    }
    assert.equal((await alice.getUpload(aborted.id)).status, 'ABORTED');
    assert.equal((await alice.getUpload(done.id)).status, 'COMPLETE');

    assert.equal(md5(await readFile(filePath(file.id))), md5(fileBytes), "the completed file's bytes are untouched");
    const download = await alice.download(`/files/${file.id}/content`);
    assert.equal(download.status, 200);
    assert.equal(md5(download.body), md5(fileBytes));

    const liveNow = await bob.getUpload(live.id);
    assert.equal(liveNow.status, 'UPLOADING');
    assert.equal(liveNow.offset, 600);
    assert.ok((await readFile(partPath(live.id))).equals(liveChunk), "the live upload's partial bytes are untouched");

    assert.equal(await exists(filePath(orphanFile)), false, 'an orphaned stored file is deleted');
    assert.equal(await exists(partPath(orphanPart)), false, 'an orphaned partial file is deleted');
    assert.equal(await readFile(filePath('notes.txt'), 'utf8'), 'not ours');
    assert.equal(await readFile(path.join(server.dataDir, 'uploads', 'README'), 'utf8'), 'not ours');
    assert.equal(await readFile(filePath('backup-2024'), 'utf8'), 'not ours either', 'a non-uuid name in files/ is left alone');
    assert.equal(await readFile(partPath('scratch'), 'utf8'), 'not ours either', 'a non-uuid .part in uploads/ is left alone');

    // The live upload still finishes after the cleanup.
    const rest = randomFile(400);
    const second = await bob.uploadChunk(live.id, 600, rest);
    assert.equal(second.errors, undefined, JSON.stringify(second.errors));
    const finished = await bob.complete(live.id, md5(Buffer.concat([liveChunk, rest])));
    assert.equal(finished.errors, undefined, JSON.stringify(finished.errors));

    // A second run finds nothing left to do.
    assert.deepEqual(await server.app.services.cleanup.run(), { expiredUploads: 0, purgedRecords: 0, orphanedUploadBytes: 0, orphanedFileBytes: 0 });
    assert.equal(await exists(filePath(finished.data.completeUpload.id)), true);
  });

  it('removes finished upload records after 7 days but keeps their Files, and keeps younger records', async () => {
    const bytes = randomFile(500);
    const upload = await alice.start('old-record.bin', bytes.length);
    await alice.uploadChunk(upload.id, 0, bytes);
    await sql(`update chunked_uploads set expires_at = now() + interval '1 hour' where id = ?`, [upload.id]);
    const file = (await alice.complete(upload.id, md5(bytes))).data.completeUpload;

    const young = await alice.start('young-aborted.bin', 10);
    await alice.data(`mutation($id: ID!) { abortUpload(uploadId: $id) { id } }`, { id: young.id });
    const oldAborted = await alice.start('old-aborted.bin', 10);
    await alice.data(`mutation($id: ID!) { abortUpload(uploadId: $id) { id } }`, { id: oldAborted.id });

    await sql(`update chunked_uploads set updated_at = now() - interval '8 days' where id in (?, ?)`, [upload.id, oldAborted.id]);
    const report = await server.app.services.cleanup.run();
    assert.equal(report.purgedRecords, 2);
    assert.equal(report.orphanedFileBytes, 0);

    expectCode(await alice.request(`query($id: ID!) { upload(id: $id) { id } }`, { id: upload.id }), 'NOT_FOUND');
    expectCode(await alice.request(`query($id: ID!) { upload(id: $id) { id } }`, { id: oldAborted.id }), 'NOT_FOUND');
    assert.equal((await alice.getUpload(young.id)).status, 'ABORTED');

    const { file: still } = await alice.data(`query($id: ID!) { file(id: $id) { id md5 } }`, { id: file.id });
    assert.equal(still?.md5, md5(bytes), 'the File outlives its upload record');
    assert.equal(md5(await readFile(filePath(file.id))), md5(bytes));
  });
});
