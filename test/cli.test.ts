import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createApp } from '../src/app';
import { loadConfig } from '../src/config';
import { migrations } from '../src/db/migrations';
import { GraphQLClient, randomFile } from './helpers/client';
import { createTestDatabase, databaseKind, type TestDatabase } from './helpers/database';

const CLI = path.resolve(__dirname, '../src/cli.js');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const exists = (p: string) => stat(p).then(() => true, () => false);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the compiled CLI as a user would, with exactly `env` (plus PATH). */
function runCli(args: string[], env: Record<string, string>, timeoutMs = 90_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`cli ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const show = (r: Run) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

describe(`command-line tool (${databaseKind})`, () => {
  let dataDir: string;
  let database: TestDatabase;
  let env: Record<string, string>;
  /** Runs that fail before touching a database: started in before() so they overlap the slow ones. */
  let early: Promise<{ badPort: Run; several: Run; missing: Run }>;

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'upload-cli-test-'));
    database = await createTestDatabase();
    env = {
      NODE_ENV: 'test',
      DATA_DIR: dataDir,
      CHUNK_FSYNC: 'false',
      CLEANUP_INTERVAL: '0',
      ...(database.url ? { DATABASE_URL: database.url } : {}),
    };
    const badDir = path.join(dataDir, 'never-used');
    early = Promise.all([
      runCli(['migrate'], { ...env, DATA_DIR: badDir, PORT: 'abc' }),
      runCli(['cleanup'], { ...env, DATA_DIR: badDir, UPLOAD_TTL: '0', DATABASE_URL: 'mysql://somewhere/db' }),
      runCli(['create-user', '--username', 'zed'], { ...env, DATA_DIR: badDir }),
    ]).then(([badPort, several, missing]) => ({ badPort, several, missing }));
    early.catch(() => {});
  });
  after(async () => {
    await database?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('migrate applies the migrations, then says the schema is up to date', async () => {
    const first = await runCli(['migrate'], env);
    assert.equal(first.code, 0, show(first));
    assert.match(first.stdout, /applied: /);
    for (const m of migrations) assert.ok(first.stdout.includes(m.name), `${m.name} in ${first.stdout}`);

    const second = await runCli(['migrate'], env);
    assert.equal(second.code, 0, show(second));
    assert.match(second.stdout, /up to date/);
    assert.doesNotMatch(second.stdout, /applied: /);
  });

  it('create-user makes an admin; a taken name in another case exits 1 with a readable message', async () => {
    const created = await runCli(['create-user', '--username', 'Xavier', '--password', 'longpassword', '--admin'], env);
    assert.equal(created.code, 0, show(created));
    assert.match(created.stdout, /created admin Xavier \([0-9a-f-]{36}\)/);

    const taken = await runCli(['create-user', '--username', 'XAVIER', '--password', 'otherpassword'], env);
    const { missing } = await early;
    assert.equal(taken.code, 1, show(taken));
    assert.match(taken.stderr, /taken/i);
    assert.doesNotMatch(taken.stderr, /^\s+at /m, 'a readable message, not a stack trace');
    assert.notEqual(missing.code, 0, show(missing));
    assert.match(missing.stderr, /--password/);
  });

  let staleUploadId: string;

  it('the created user logs in as an admin on a server over the same data directory and database', async () => {
    // The server runs in this process on the CLI's DATA_DIR and database (UPLOAD_TTL=1 so the
    // upload made here is stale by the time the cleanup command runs).
    const config = loadConfig({ ...env, LOG_LEVEL: 'silent', UPLOAD_TTL: '1' });
    const app = await createApp(config, pino({ level: 'silent' }));
    try {
      const client = GraphQLClient.for(await app.listen(0, '127.0.0.1'));
      const xavier = await client.login('xavier', 'longpassword');
      const { me } = await xavier.data(`{ me { username isAdmin } }`);
      assert.deepEqual(me, { username: 'Xavier', isAdmin: true });
      const refused = await client.request(`mutation { login(username: "XAVIER", password: "otherpassword") { token } }`);
      assert.equal(refused.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED', 'the refused creation changed nothing');

      const upload = await xavier.start('stale.bin', 100);
      const chunk = await xavier.uploadChunk(upload.id, 0, randomFile(40));
      assert.equal(chunk.errors, undefined, JSON.stringify(chunk.errors));
      staleUploadId = upload.id;
      await sleep(Math.max(0, Date.parse(chunk.data.uploadChunk.expiresAt) - Date.now()) + 300);
    } finally {
      await app.close();
    }
  });

  it('cleanup prints its progress and a JSON report, expiring uploads and deleting orphans', async () => {
    assert.ok(staleUploadId, 'the previous test made an upload');
    const part = path.join(dataDir, 'uploads', `${staleUploadId}.part`);
    assert.ok(await exists(part));
    const orphan = path.join(dataDir, 'files', randomUUID());
    await writeFile(orphan, 'nobody owns me');
    const foreign = path.join(dataDir, 'files', 'keep-me');
    await writeFile(foreign, 'not ours');

    const run = await runCli(['cleanup'], env);
    assert.equal(run.code, 0, show(run));
    const lines = run.stdout.trim().split('\n');
    assert.match(run.stdout, /expired 1 upload/);
    assert.match(run.stdout, /removed 0 finished upload record/);
    assert.match(run.stdout, /deleted 0 orphaned partial upload/);
    assert.match(run.stdout, /deleted 1 orphaned stored file/);
    const report = JSON.parse(lines.at(-1)!);
    assert.deepEqual(report, { expiredUploads: 1, purgedRecords: 0, orphanedUploadBytes: 0, orphanedFileBytes: 1 });
    assert.equal(await exists(part), false, 'the expired upload lost its partial bytes');
    assert.equal(await exists(orphan), false, 'the orphan is deleted');
    assert.equal(await exists(foreign), true, 'a name that is not an id is left alone');
  });

  it('serve runs the server until SIGTERM', async () => {
    let child: ChildProcess | undefined;
    try {
      child = spawn(process.execPath, [CLI, 'serve'], {
        env: { PATH: process.env.PATH ?? '', ...env, PORT: '0', LOG_LEVEL: 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const proc = child;
      let output = '';
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`serve did not start: ${output}`)), 90_000);
        proc.stdout!.on('data', (d) => {
          output += d;
          for (const line of output.split('\n')) {
            try {
              const entry = JSON.parse(line);
              if (entry.msg === 'listening' && entry.url) {
                clearTimeout(timer);
                resolve(entry.url);
              }
            } catch {
              // not a whole JSON line yet
            }
          }
        });
        proc.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${output}`)));
      });
      const health = await fetch(`${url}/healthz`);
      assert.equal(health.status, 200);
      const client = await GraphQLClient.for(url).login('Xavier', 'longpassword');
      assert.equal((await client.data(`{ me { username } }`)).me.username, 'Xavier');
      assert.equal((await client.getUpload(staleUploadId)).status, 'EXPIRED', 'the cleanup command marked it EXPIRED');

      const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
      proc.kill('SIGTERM');
      assert.equal(await exited, 0);
      child = undefined;
    } finally {
      child?.kill('SIGKILL');
    }
  });

  it('exits 1 with a readable message naming a bad environment variable', async () => {
    const { badPort: bad, several } = await early;
    assert.equal(bad.code, 1, show(bad));
    assert.match(bad.stderr, /PORT/);
    assert.match(bad.stderr, /number/);
    assert.doesNotMatch(bad.stderr, /^\s+at /m, 'no stack trace');

    assert.equal(several.code, 1, show(several));
    assert.match(several.stderr, /UPLOAD_TTL/);
    assert.match(several.stderr, /DATABASE_URL/, 'every bad value is reported, not just the first');
    assert.equal(await exists(path.join(dataDir, 'never-used', 'db')), false, 'nothing was opened with a bad configuration');
  });
});
