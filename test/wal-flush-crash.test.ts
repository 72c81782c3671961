/**
 * Chunk commits skip PostgreSQL's WAL flush (the bytes are fsynced first). This proves what
 * that may cost: a database crash moves an upload back to an earlier commit, consistently
 * (offset, md5 state and bytes agree), and the client resends from `upload(id).offset` to a
 * file with the right md5. On a private cluster, so the shared server is never crashed.
 */
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { randomFile } from './helpers/client';
import { NEEDS_POSTGRES } from './helpers/database';
import { NO_PRIVATE_POSTGRES, PrivatePostgres } from './helpers/private-postgres';
import { startServer, type TestServer } from './helpers/server';
import { eventually, sleep } from './helpers/timing';
import { completeAndVerify, sendChunks } from './helpers/upload';

const KiB = 1024;

describe('chunk commits without a WAL flush, and a database crash', { skip: NEEDS_POSTGRES || NO_PRIVATE_POSTGRES }, () => {
  let cluster: PrivatePostgres | undefined;
  let server: TestServer | undefined;

  before(async () => {
    // Autovacuum off: its own commits flush the WAL, and with it ours.
    cluster = await PrivatePostgres.create(['autovacuum=off']);
    server = await startServer({ DATABASE_URL: cluster.url, CHUNK_FSYNC: 'true' });
  });
  after(async () => {
    await server?.close();
    await cluster?.destroy();
  });

  it('moves an upload back to an earlier consistent point; the client resends from the stored offset', { timeout: 120_000 }, async (t) => {
    const { admin, dataDir } = server!;
    const chunk = 256 * KiB;
    const bytes = randomFile(16 * chunk + 7);
    const { id } = await admin.start('wal.bin', bytes.length);
    await sendChunks(admin, id, bytes, 0, 4 * chunk, chunk);
    // A durable point: everything so far is on disk.
    await cluster!.query('checkpoint');

    // With the WAL writer stopped, commits that do not flush stay in PostgreSQL's memory.
    const [{ pid }] = await cluster!.query<{ pid: number }>(`select pid from pg_stat_activity where backend_type = 'walwriter'`);
    process.kill(pid, 'SIGSTOP');
    const acknowledged = (await sendChunks(admin, id, bytes, 4 * chunk, 10 * chunk, chunk)).offset;
    assert.equal(acknowledged, 10 * chunk);
    assert.equal((await stat(path.join(dataDir, 'uploads', `${id}.part`))).size, 10 * chunk, 'every acknowledged byte is on disk');
    // Past the progress throttle: the trailing progress notification must not flush them either.
    await sleep(1000);

    await cluster!.crash(); // the stopped WAL writer is killed with the rest
    await cluster!.start();
    const afterCrash = await eventually(async () => {
      const upload = await admin.getUpload(id);
      assert.equal(upload.status, 'UPLOADING');
      return upload;
    }, 30_000);
    t.diagnostic(`acknowledged ${acknowledged} bytes, the database kept ${afterCrash.offset}`);
    assert.ok(afterCrash.offset < acknowledged, 'the unflushed chunk commits were lost (else this test proves nothing)');
    assert.ok(afterCrash.offset >= 4 * chunk, 'commits before the checkpoint survive');
    assert.equal(afterCrash.offset % chunk, 0, 'the upload is at a chunk boundary it once committed');

    // The client resends what the database forgot; the md5 (continued from the stored md5
    // state) and the bytes on disk (past the offset, overwritten) must agree with the source.
    await sendChunks(admin, id, bytes, afterCrash.offset, bytes.length, chunk);
    await completeAndVerify(admin, id, bytes);
  });
});
