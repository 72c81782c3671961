import { DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { databaseKind } from './helpers/database';
import { s3Env, S3_SKIP } from './helpers/s3';
import { startServer, startServers, type TestServer } from './helpers/server';

interface Readiness {
  status: number;
  body: { status: string; reason?: string; checks: { database: string; storage: string } };
}

async function readiness(url: string): Promise<Readiness> {
  const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.headers.get('cache-control'), 'no-store');
  return { status: res.status, body: (await res.json()) as Readiness['body'] };
}

const READY = { status: 200, body: { status: 'ready', checks: { database: 'ok', storage: 'ok' } } };

describe(`readiness: GET /readyz (${databaseKind})`, () => {
  let server: TestServer;
  let doomed: TestServer;

  before(async () => {
    [server, doomed] = await startServers({}, {});
  });
  after(() => Promise.all([server?.close(), doomed?.close()]));

  it('answers 200 when the database answers and the data directory takes files', async () => {
    assert.deepEqual(await readiness(server.url), READY);
  });

  it('answers 503 with the reason while the storage directory is gone, and 200 again once it is back; /healthz stays 200', async () => {
    const uploads = path.join(server.dataDir, 'uploads');
    // Moved away, as an unmounted volume would be (a chmod would not do: the tests may run as root).
    await rename(uploads, `${uploads}.away`);
    try {
      const down = await readiness(server.url);
      assert.equal(down.status, 503);
      assert.equal(down.body.status, 'unavailable');
      assert.deepEqual(down.body.checks, { database: 'ok', storage: 'unreachable' });
      assert.equal(down.body.reason, 'storage: unreachable');
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200, 'the process is alive and its database answers');
    } finally {
      await rename(`${uploads}.away`, uploads);
    }
    assert.deepEqual(await readiness(server.url), READY);
  });

  it('answers 503 when its database is gone (its own test database dropped, or the embedded one closed)', async () => {
    if (doomed.env.DATABASE_URL) {
      const name = new URL(doomed.env.DATABASE_URL).pathname.slice(1);
      const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
      await admin.connect();
      try {
        await admin.query(`drop database "${name}" with (force)`);
      } finally {
        await admin.end();
      }
    } else {
      const { connection } = doomed.app.database.orm.config.get('driverOptions') as { connection: { pglite: () => { close(): Promise<void> } } };
      await connection.pglite().close();
    }
    const down = await readiness(doomed.url);
    assert.equal(down.status, 503);
    assert.equal(down.body.checks.database === 'ok', false, JSON.stringify(down.body));
    assert.equal(down.body.checks.storage, 'ok');
    assert.match(down.body.reason ?? '', /^database: (unavailable|no answer within \d+ ms)$/);
    assert.doesNotMatch(JSON.stringify(down.body), /upload_test_|127\.0\.0\.1|\/tmp\/|closed|select/i, 'no internals in the answer');
  });
});

describe('readiness on S3', { skip: S3_SKIP }, () => {
  let server: TestServer;
  const env = s3Env();

  before(async () => {
    server = await startServer(env);
  });
  after(() => server?.close());

  it('answers 200 while the bucket answers HeadBucket, 503 once the bucket is gone', async () => {
    assert.deepEqual(await readiness(server.url), READY);
    const s3 = new S3Client({
      endpoint: env.S3_ENDPOINT,
      region: env.S3_REGION,
      forcePathStyle: true,
      credentials: { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY },
    });
    try {
      await s3.send(new DeleteBucketCommand({ Bucket: env.S3_BUCKET }));
    } finally {
      s3.destroy();
    }
    const down = await readiness(server.url);
    assert.equal(down.status, 503);
    assert.deepEqual(down.body.checks, { database: 'ok', storage: 'unreachable' });
  });
});
