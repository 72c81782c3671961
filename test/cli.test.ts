import 'reflect-metadata';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { migrations } from '../src/db/migrations';
import { describeDatabase } from '../src/startup';
import { runCli, SERVER_CLI as CLI, show, type Run } from './helpers/cli';
import { GraphQLClient, randomFile } from './helpers/client';
import { databaseKind } from './helpers/database';
import { exists } from './helpers/files';
import { ProcessFixture, spawnServer } from './helpers/process';
import { ADMIN, withServer } from './helpers/server';
import { sleep } from './helpers/timing';
import { sendChunks } from './helpers/upload';

describe(`command-line tool (${databaseKind})`, () => {
  const fixture = new ProcessFixture();
  const freshEnv = () => fixture.freshEnv('upload-cli-test');

  /** Runs that fail before touching a database: started in before() so they overlap the slow ones. */
  let early: Promise<{ badPort: Run; several: Run; missing: Run; badDir: string }>;
  /**
   * Shared, read-only: a DATA_DIR and database where `create-user` made the admin Xavier, then
   * refused XAVIER (the name in another case). Tests only read it or log in.
   */
  let xavier: { env: Record<string, string>; created: Run; taken: Run };

  before(async () => {
    const badDir = path.join(await fixture.tempDir('upload-cli-never-used'), 'data');
    const base = await freshEnv();
    early = Promise.all([
      runCli(['serve'], { ...base, DATA_DIR: badDir, PORT: 'abc' }),
      runCli(['cleanup'], { ...base, DATA_DIR: badDir, UPLOAD_TTL: '0', DATABASE_URL: 'mysql://somewhere/db' }),
      runCli(['create-user', '--password', 'longpassword'], { ...base, DATA_DIR: badDir }),
    ]).then(([badPort, several, missing]) => ({ badPort, several, missing, badDir }));
    early.catch(() => {});
    const env = await freshEnv();
    // create-user needs an existing database (it would not create an empty one in a wrong DATA_DIR).
    const migrated = await runCli(['migrate'], env);
    assert.equal(migrated.code, 0, show(migrated));
    const created = await runCli(['create-user', '--username', 'Xavier', '--password', 'longpassword', '--admin'], env);
    const taken = await runCli(['create-user', '--username', 'XAVIER', '--password', 'otherpassword'], env);
    xavier = { env, created, taken };
  });

  it('migrate applies the migrations, then says the schema is up to date', async () => {
    const env = await freshEnv();
    const first = await runCli(['migrate'], env);
    assert.equal(first.code, 0, show(first));
    assert.equal(first.stdout, `applied: ${migrations.map((m) => m.name).join(', ')}\n`);

    const second = await runCli(['migrate'], env);
    assert.equal(second.code, 0, show(second));
    assert.equal(second.stdout, 'the database schema is up to date\n');
  });

  it('create-user makes an admin; a taken name in another case exits 1 with a readable message', async () => {
    const { created, taken } = xavier;
    assert.equal(created.code, 0, show(created));
    assert.match(created.stdout, /^created admin Xavier \([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)\n$/);

    const { missing } = await early;
    assert.equal(taken.code, 1, show(taken));
    assert.equal(taken.stderr, `using ${describeDatabase({ databaseUrl: xavier.env.DATABASE_URL, dataDir: xavier.env.DATA_DIR })}\nThe username "XAVIER" is taken.\n`);
    assert.equal(missing.code, 1, show(missing));
    assert.match(missing.stderr, /^error: required option '--username <name>' not specified\n/);
  });

  it('the created user logs in as an admin on a server over the same data directory and database', async () => {
    await withServer(xavier.env, async (client) => {
      const admin = await client.login('xavier', 'longpassword');
      const { me } = await admin.data(`{ me { username isAdmin } }`);
      assert.deepEqual(me, { username: 'Xavier', isAdmin: true });
      const refused = await client.request(`mutation { login(username: "XAVIER", password: "otherpassword") { token } }`);
      assert.equal(refused.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED', 'the refused creation changed nothing');
    });
  });

  it('set-quota sets a quota in bytes or with a unit, lifts it with none, and refuses a bad size or an unknown user', async () => {
    const { env } = xavier;
    const set = await runCli(['set-quota', 'XAVIER', '10GiB'], env);
    assert.equal(set.code, 0, show(set));
    assert.equal(set.stdout, 'quota of Xavier: 10.0 GiB (10737418240 bytes); using 0 B (0 bytes)\n');
    await withServer(env, async (client) => {
      const { me } = await (await client.login('xavier', 'longpassword')).data(`{ me { quotaBytes usedBytes } }`);
      assert.deepEqual(me, { quotaBytes: 10737418240, usedBytes: 0 });
    });
    const bad = await runCli(['set-quota', 'xavier', 'lots'], env);
    assert.equal(bad.code, 1, show(bad));
    assert.match(bad.stderr, /"lots" is not a size/);
    const nobody = await runCli(['set-quota', 'nobody', '1'], env);
    assert.equal(nobody.code, 1, show(nobody));
    assert.match(nobody.stderr, /User "nobody" not found/);
    // Leaves Xavier as the other tests expect him: no limit.
    const lifted = await runCli(['set-quota', 'xavier', 'none'], env);
    assert.equal(lifted.code, 0, show(lifted));
    assert.match(lifted.stdout, /^quota of Xavier: no limit;/);
  });

  it('cleanup prints its progress and a JSON report, expiring uploads and deleting orphans', async () => {
    // A server over the CLI's DATA_DIR and database (UPLOAD_TTL=1) makes an upload that is
    // stale by the time the cleanup command runs.
    const env: Record<string, string> = { ...(await freshEnv()), ADMIN_USERNAME: ADMIN.username, ADMIN_PASSWORD: ADMIN.password, UPLOAD_TTL: '1' };
    let staleUploadId = '';
    await withServer(env, async (client) => {
      const admin = await client.login(ADMIN.username, ADMIN.password);
      const bytes = randomFile(40);
      const upload = await admin.start('stale.bin', 100);
      const afterChunk = await sendChunks(admin, upload.id, bytes, 0, bytes.length, bytes.length);
      staleUploadId = upload.id;
      await sleep(Math.max(0, Date.parse(afterChunk.expiresAt) - Date.now()) + 300);
    });
    const part = path.join(env.DATA_DIR, 'uploads', `${staleUploadId}.part`);
    assert.equal(await exists(part), true);
    const orphan = path.join(env.DATA_DIR, 'files', randomUUID());
    await writeFile(orphan, 'nobody owns me');
    const foreign = path.join(env.DATA_DIR, 'files', 'keep-me');
    await writeFile(foreign, 'not ours');

    const run = await runCli(['cleanup'], env);
    assert.equal(run.code, 0, show(run));
    assert.deepEqual(run.stdout.trim().split('\n'), [
      'expired 1 upload(s) and deleted their partial bytes',
      'removed 0 finished upload record(s) older than 7 days',
      'deleted 0 orphaned partial upload(s)',
      'deleted 1 orphaned stored file(s)',
      JSON.stringify({ expiredUploads: 1, purgedRecords: 0, orphanedUploadBytes: 0, orphanedFileBytes: 1 }),
    ]);
    assert.equal(await exists(part), false, 'the expired upload lost its partial bytes');
    assert.equal(await exists(orphan), false, 'the orphan is deleted');
    assert.equal(await exists(foreign), true, 'a name that is not an id is left alone');
    await withServer(env, async (client) => {
      const admin = await client.login(ADMIN.username, ADMIN.password);
      assert.equal((await admin.getUpload(staleUploadId)).status, 'EXPIRED', 'the cleanup command marked it EXPIRED');
    });
  });

  it('serve runs the server until SIGTERM', async () => {
    const server = await spawnServer(xavier.env, [CLI, 'serve']);
    try {
      const health = await fetch(`${server.url}/healthz`);
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { status: 'ok' });
      const client = await GraphQLClient.for(server.url).login('Xavier', 'longpassword');
      assert.equal((await client.data(`{ me { username } }`)).me.username, 'Xavier');

      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0, server.logs.join('\n'));
    } finally {
      await server.kill('SIGKILL');
    }
  });

  it('exits 1 with a readable message naming a bad environment variable (serve checks PORT)', async () => {
    const { badPort: bad, several, badDir } = await early;
    assert.equal(bad.code, 1, show(bad));
    assert.equal(bad.stderr, 'Invalid configuration:\n  - PORT: must be a number\n', 'a readable message, no stack trace');

    assert.equal(several.code, 1, show(several));
    assert.equal(
      several.stderr,
      'Invalid configuration:\n  - DATABASE_URL: must be a postgres:// connection string\n  - UPLOAD_TTL: must be at least 1\n',
      'every bad value is reported, not just the first',
    );
    assert.equal(await exists(path.join(badDir, 'db')), false, 'nothing was opened with a bad configuration');
  });
});
