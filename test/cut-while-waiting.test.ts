import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { expectOk } from './helpers/assert';
import { md5, randomFile, type GraphQLClient } from './helpers/client';
import { NEEDS_POSTGRES } from './helpers/database';
import { openChunkRequest, openPartRequest } from './helpers/raw-chunk';
import { startServer, type TestServer } from './helpers/server';
import { eventually, sleep } from './helpers/timing';
import { openStalledPatch, patch, startRaw } from './helpers/tus';
import { verifyDownload } from './helpers/upload';

/**
 * A client that vanishes while its request waits on the database (a slow claim, a slow commit
 * between two segments of a stream) must not leave a request behind that holds its lease for
 * ever: the body's end was announced before anyone listened for it. CI once saw a browser's part
 * stay "being written by another request" after a page reload, on a loaded PostgreSQL.
 * PostgreSQL only: the test holds a lock from a connection of its own to make the wait certain.
 */

const KiB = 1024;
const PART = 64 * KiB;
const SEGMENT = 256 * KiB;

describe('a client gone while its request waited on the database', { skip: NEEDS_POSTGRES }, () => {
  let server: TestServer;
  let client: GraphQLClient;
  let blocker: pg.Client;

  before(async () => {
    // Streams commit every MAX_CHUNK_SIZE bytes: a small one gives a tus PATCH several segments.
    server = await startServer({ MAX_CHUNK_SIZE: String(SEGMENT) });
    client = await server.admin.newUser();
    blocker = new pg.Client({ connectionString: server.env.DATABASE_URL });
    await blocker.connect();
  });
  after(async () => {
    await blocker?.end();
    await server?.close();
  });

  /** Holds `lock` in a transaction until the returned function commits it. */
  async function holdLock(lock: string, params: unknown[] = []): Promise<() => Promise<void>> {
    await blocker.query('begin');
    await blocker.query(lock, params);
    return async () => void (await blocker.query('commit'));
  }

  /** Until a statement of the server's waits on the test's lock. */
  async function serverWaitsOnLock(): Promise<void> {
    await eventually(async () => {
      const { rows } = await blocker.query(
        `select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and wait_event_type = 'Lock'`,
      );
      assert.ok(rows[0].n > 0, 'a server statement waits on the lock');
    });
  }

  async function uploadRow(id: string): Promise<{ offset: number; leaseHeld: boolean; generation: number }> {
    const [row] = await server.sql(
      `select "offset", lease_token is not null and lease_expires_at > now() as held, lease_generation from chunked_uploads where id = ?`,
      [id],
    );
    return { offset: Number(row.offset), leaseHeld: row.held, generation: Number(row.lease_generation) };
  }

  it('a part whose claim waited: its lease is given back, and the part can be sent again at once', async () => {
    const bytes = randomFile(2 * PART);
    const { id } = expectOk(await client.request(`mutation($input: StartUploadInput!) { startUpload(input: $input) { id } }`, { input: { filename: 'parts.bin', totalSize: bytes.length, partSize: PART } })).startUpload;
    const commitLock = await holdLock('lock table upload_parts in share mode');
    const cut = openPartRequest(client, id, 1);
    await cut.send(bytes.subarray(0, 1000));
    await serverWaitsOnLock();
    cut.abort();
    await sleep(300);
    await commitLock();
    const partRow = async () => (await server.sql(`select lease_token is not null as held from upload_parts where upload_id = ? and part_number = 1`, [id]))[0];
    // The claim ran once the lock was gone; then its request must stop and give the lease back.
    await eventually(async () => assert.ok(await partRow(), 'the waiting claim took the part'));
    await eventually(async () => assert.equal((await partRow()).held, false, 'the part lease is given back'), 3000);
    for (const n of [1, 2]) {
      const part = bytes.subarray((n - 1) * PART, n * PART);
      expectOk(await client.uploadPart(id, n, part, { chunkMd5: md5(part) }));
    }
    const file = expectOk(await client.complete(id, md5(bytes))).completeUpload;
    await verifyDownload(client, file.id, bytes);
  });

  it('a chunk whose claim waited: its lease is given back, and the chunk can be sent again at once', async () => {
    const bytes = randomFile(100 * KiB);
    const { id } = await client.start('chunk.bin', bytes.length);
    const commitLock = await holdLock('select 1 from chunked_uploads where id = $1 for update', [id]);
    const cut = openChunkRequest(client, id, 0);
    await cut.send(bytes.subarray(0, 1000));
    await serverWaitsOnLock();
    cut.abort();
    await sleep(300);
    await commitLock();
    await eventually(async () => assert.equal((await uploadRow(id)).generation, 1, 'the waiting claim took the upload'));
    await eventually(async () => assert.equal((await uploadRow(id)).leaseHeld, false, 'the upload lease is given back'), 3000);
    expectOk(await client.uploadChunk(id, 0, bytes));
    const file = expectOk(await client.complete(id, md5(bytes))).completeUpload;
    await verifyDownload(client, file.id, bytes);
  });

  it('a tus PATCH cut while a segment was committing: the next segment stops, the lease is given back, the upload resumes', async () => {
    const bytes = randomFile(4 * SEGMENT);
    const id = await startRaw(client, bytes.length, 'stream.bin');
    const url = `${client.url}/tus/${id}`;
    const stream = await openStalledPatch(client, url, 0, bytes.length, bytes.subarray(0, SEGMENT / 2));
    const commitLock = await holdLock('select 1 from chunked_uploads where id = $1 for update', [id]);
    // The rest of the first segment and some of the second: the first segment's commit waits.
    await new Promise<void>((resolve) => stream.write(bytes.subarray(SEGMENT / 2, SEGMENT + 10 * KiB), () => resolve()));
    await serverWaitsOnLock();
    stream.destroy();
    await sleep(300);
    await commitLock();
    await eventually(async () => assert.equal((await uploadRow(id)).offset, SEGMENT, 'the first segment is committed'));
    await eventually(async () => assert.equal((await uploadRow(id)).leaseHeld, false, 'the stream lease is given back'), 3000);
    const rest = await patch(client, url, SEGMENT, bytes.subarray(SEGMENT));
    assert.equal(rest.status, 204, await rest.text());
    await verifyDownload(client, id, bytes);
  });
});
