import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, realpath, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import pg from 'pg';
import { describeDatabase } from '../src/startup';
import { expectCode } from './helpers/assert';
import { runCli, SERVER_CLI, show, UPLOAD_CLI, type Run } from './helpers/cli';
import { GraphQLClient, LOGIN } from './helpers/client';
import { databaseKind, NEEDS_POSTGRES } from './helpers/database';
import { ProcessFixture, spawnServer } from './helpers/process';
import { ADMIN, withServer } from './helpers/server';
import { eventually } from './helpers/timing';

const MAIN = path.resolve(__dirname, '../src/main.js');
const embedded = databaseKind === 'embedded';
const REPO_ROOT = path.resolve(__dirname, '../..');
const MIKRO_ORM_CLI = path.join(REPO_ROOT, 'node_modules/@mikro-orm/cli/cli');
const ONLY_EMBEDDED = embedded ? false : 'the lock guards the embedded database (TEST_DATABASE_URL is set)';

/** The one line a refused command prints on stderr after the database line (if any). */
function onlyLine(run: Run): string {
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr\n${show(run)}`);
  assert.doesNotMatch(run.stderr, /^\s+at /m, 'no stack trace');
  return lines[0];
}

/** A port nothing listens on (taken from the kernel, then given back). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe(`command-line and start-up safety (${databaseKind})`, () => {
  const fixture = new ProcessFixture();

  const freshEnv = (extra: Record<string, string> = {}) =>
    fixture.freshEnv('cli-safety', { ADMIN_USERNAME: ADMIN.username, ADMIN_PASSWORD: ADMIN.password, ...extra });
  const databaseLine = (env: Record<string, string>) => `using ${describeDatabase({ databaseUrl: env.DATABASE_URL, dataDir: env.DATA_DIR })}`;

  /**
   * A server process on `env`, its database made first by `migrate`: creating an embedded
   * database can outlast spawnServer's patience on a loaded machine.
   */
  async function startServerProcess(env: Record<string, string>) {
    const migrated = await runCli(['migrate'], env);
    assert.equal(migrated.code, 0, show(migrated));
    const server = await spawnServer(env);
    fixture.defer(() => server.kill());
    return server;
  }


  it('while the server runs, the CLI changes users it sees (PostgreSQL) or is refused in one line naming the embedded database', async () => {
    const env = await freshEnv();
    const server = await startServerProcess(env);
    const api = GraphQLClient.for(server.url);
    const createAlice = () => runCli(['create-user', '--username', 'alice', '--password', 'alicepassword'], env);

    if (!embedded) {
      const created = await createAlice();
      assert.equal(created.code, 0, show(created));
      assert.equal(created.stderr, `${databaseLine(env)}\n`);
      const alice = await api.login('alice', 'alicepassword');
      const reset = await runCli(['reset-password', 'Alice', '--password', 'alicepassword2'], env);
      assert.equal(reset.code, 0, show(reset));
      expectCode(await alice.request(`{ me { username } }`), 'UNAUTHENTICATED', 'the running server no longer takes her old token');
      await api.login('alice', 'alicepassword2');
      return;
    }

    const dbDir = path.join(env.DATA_DIR, 'db');
    const refusals = await Promise.all([
      createAlice(),
      runCli(['reset-password', ADMIN.username, '--password', 'whatever-password'], env),
      runCli(['users'], env),
      runCli(['cleanup'], env),
      runCli(['migrate'], env),
    ]);
    for (const refused of refusals) {
      assert.equal(refused.code, 1, show(refused));
      assert.equal(refused.stdout, '');
      assert.match(
        onlyLine(refused),
        new RegExp(`^The embedded database at ${escape(dbDir)} is in use by pid ${server.child.pid} \\(the server, since [^)]+\\): .*Stop the server first, or while it runs use the API`),
      );
    }
    // MikroORM's own CLI (npm run migration:create) opens it through mikro-orm.config.ts.
    const ormCli = await runCli(['migration:pending'], env, { script: MIKRO_ORM_CLI, cwd: REPO_ROOT });
    assert.equal(ormCli.code, 1, show(ormCli));
    assert.match(ormCli.stderr, new RegExp(`The embedded database at ${escape(dbDir)} is in use by pid ${server.child.pid} `));
    expectCode(await api.request(LOGIN, { u: 'alice', p: 'alicepassword' }), 'UNAUTHENTICATED', 'nothing was created behind the server');
    await api.login(ADMIN.username, ADMIN.password);

    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0);
    assert.equal(existsSync(`${dbDir}.lock`), false, 'a server that stops releases the lock');
    const created = await createAlice();
    assert.equal(created.code, 0, show(created));
    assert.equal(created.stderr, `${databaseLine(env)}\n`, 'the command says which database it used');
    const again = await spawnServer(env);
    fixture.defer(() => again.kill());
    await GraphQLClient.for(again.url).login('alice', 'alicepassword');
  });

  it('a SIGKILLed server leaves a lock the next opener takes over; a lock from another host is refused with the file to delete', { skip: ONLY_EMBEDDED }, async () => {
    const env = await freshEnv();
    const lockFile = path.join(env.DATA_DIR, 'db.lock');
    const server = await startServerProcess(env);
    await server.kill('SIGKILL');
    assert.equal(JSON.parse(await readFile(lockFile, 'utf8')).pid, server.child.pid, 'the kill left the lock behind');

    const listed = await runCli(['users'], env);
    assert.equal(listed.code, 0, show(listed));
    assert.match(listed.stdout, new RegExp(`^USERNAME +ROLE +STATUS +CREATED +ID\n${ADMIN.username} +admin +active +\\S+Z +[0-9a-f-]{36}\n$`));
    assert.equal(existsSync(lockFile), false, 'taken over, then released');

    const gone = spawnSync(process.execPath, ['-e', '']).pid!;
    await writeFile(lockFile, JSON.stringify({ pid: gone, hostname: os.hostname(), command: 'the server', since: '2020-01-01T00:00:00Z', nonce: 'x' }));
    const afterExit = await runCli(['users'], env);
    assert.equal(afterExit.code, 0, `a lock whose pid is gone is stale\n${show(afterExit)}`);

    await writeFile(lockFile, JSON.stringify({ pid: process.pid, hostname: 'another-host', command: 'the server', since: '2020-01-01T00:00:00Z', nonce: 'y' }));
    const foreign = await runCli(['users'], env);
    assert.equal(foreign.code, 1, show(foreign));
    assert.match(onlyLine(foreign), new RegExp(`in use by pid ${process.pid} on host another-host .*If that process no longer runs, delete ${escape(lockFile)}\\.$`));
  });

  it('run where there is no database, commands that need data refuse in one line naming the DATA_DIR, and create nothing', async () => {
    const cwd = await realpath(await fixture.tempDir('cli-elsewhere'));
    const env = { NODE_ENV: 'test' };
    const runs = await Promise.all([
      runCli(['create-user', '--username', 'alice', '--password', 'alicepassword'], env, { cwd }),
      runCli(['reset-password', 'alice', '--password', 'alicepassword'], env, { cwd }),
      runCli(['users'], env, { cwd }),
      runCli(['cleanup'], env, { cwd }),
    ]);
    for (const run of runs) {
      assert.equal(run.code, 1, show(run));
      assert.equal(
        onlyLine(run),
        `There is no embedded database at ${cwd}/data/db (DATA_DIR is ${cwd}/data): set DATA_DIR to the server's data directory ` +
          '(or DATABASE_URL to its PostgreSQL), or create one with `upload-server migrate` or a first server start.',
      );
    }
    assert.deepEqual(await readdir(cwd), [], 'no ./data was created');
  });

  it('a taken port stops the first start in one line before it creates the admin; the next start prints the generated password', async () => {
    const { ADMIN_PASSWORD: _given, ...env } = await freshEnv({ LOG_LEVEL: 'info', HOST: '127.0.0.1' });
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const { port } = squatter.address() as net.AddressInfo;
    let first: Run;
    try {
      first = await runCli([], { ...env, PORT: String(port) }, { script: MAIN });
    } finally {
      squatter.close();
    }
    assert.equal(first.code, 1, show(first));
    assert.equal(onlyLine(first), `Port ${port} on 127.0.0.1 is already in use (another server running?): stop that process, or set PORT to a free port.`);
    assert.doesNotMatch(first.stdout, /password/, 'no password was generated for nobody to see');
    if (embedded) {
      assert.equal(existsSync(path.join(env.DATA_DIR, 'db')), false, 'the database was not even opened');
    } else {
      const client = new pg.Client({ connectionString: env.DATABASE_URL });
      await client.connect();
      const { rows } = await client.query(`select to_regclass('users') as users`);
      await client.end();
      assert.equal(rows[0].users, null, 'the database was not even migrated');
    }

    // startServerProcess migrates first: no users yet, so this start is still the first.
    const server = await startServerProcess(env);
    const entries = server.logs.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
    const generated = entries.find((entry) => /generated password/.test(entry.msg));
    assert.ok(generated?.password, `the next start prints the generated password\n${server.logs.join('\n')}`);
    await GraphQLClient.for(server.url).login(ADMIN.username, generated.password);
    const listening = entries.find((entry) => entry.msg.startsWith('listening'));
    assert.equal(listening.msg, `listening: the upload page at ${server.url}/, GraphQL at ${server.url}/graphql`);
  });

  it('an unreachable DATABASE_URL: the server and the commands exit 1 with one line naming it, without its password', async () => {
    const port = await closedPort();
    const env = { NODE_ENV: 'test', DATA_DIR: await fixture.tempDir('cli-unreachable'), DATABASE_URL: `postgres://someone:s3cret-pw@127.0.0.1:${port}/nowhere`, PORT: '0' };
    const expected = `Cannot connect to PostgreSQL at 127.0.0.1:${port}/nowhere: connect ECONNREFUSED 127.0.0.1:${port}. Is it running, and is DATABASE_URL right?`;
    const runs = await Promise.all([runCli([], env, { script: MAIN }), runCli(['serve'], env), runCli(['migrate'], env), runCli(['users'], env)]);
    for (const run of runs) {
      assert.equal(run.code, 1, show(run));
      assert.equal(onlyLine(run), expected);
      assert.doesNotMatch(run.stdout + run.stderr, /s3cret/);
    }
  });

  it('a DATABASE_URL naming a database that does not exist: one line saying so, and no database is created', { skip: NEEDS_POSTGRES }, async () => {
    const url = new URL(process.env.TEST_DATABASE_URL!);
    const name = `upload_typo_${process.pid}_${Date.now()}`;
    url.pathname = `/${name}`;
    const env = { NODE_ENV: 'test', DATA_DIR: await fixture.tempDir('cli-typo'), DATABASE_URL: url.toString(), PORT: '0' };
    const expected =
      `The database "${name}" does not exist (${describeDatabase({ databaseUrl: env.DATABASE_URL, dataDir: env.DATA_DIR })}): ` +
      `check DATABASE_URL, or create it with \`createdb ${name}\`; the server never creates a database.`;
    for (const run of await Promise.all([runCli(['serve'], env), runCli(['users'], env)])) {
      assert.equal(run.code, 1, show(run));
      assert.equal(onlyLine(run), expected);
    }
    const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await client.connect();
    const { rows } = await client.query('select 1 from pg_database where datname = $1', [name]);
    await client.end();
    assert.equal(rows.length, 0, 'no database was created for the mistyped name');
  });

  it('reset-password takes --password, a pipe or a hidden prompt; it revokes tokens and lifts a login lock; users lists everyone', async () => {
    const env = await freshEnv();
    let bobToken = '';
    await withServer(env, async (api) => {
      const admin = await api.login(ADMIN.username, ADMIN.password);
      await admin.data(`mutation { createUser(username: "Bob", password: "bobpassword") { id } }`);
      bobToken = (await api.login('bob', 'bobpassword')).token!;
      for (let i = 0; i < 5; i++) await api.request(LOGIN, { u: 'bob', p: 'wrong-password' });
      expectCode(await api.request(LOGIN, { u: 'bob', p: 'bobpassword' }), 'RATE_LIMITED', 'bob is locked out');
    });

    const listed = await runCli(['users'], env);
    assert.equal(listed.code, 0, show(listed));
    assert.deepEqual(
      listed.stdout.trimEnd().split('\n').map((line) => line.split(/ +/).slice(0, 2)),
      [['USERNAME', 'ROLE'], [ADMIN.username, 'admin'], ['Bob', 'user']],
    );

    const piped = await runCli(['reset-password', 'BOB'], env, { input: 'piped-password\n' });
    assert.equal(piped.code, 0, show(piped));
    assert.equal(piped.stdout, 'reset the password of Bob; tokens issued before no longer work\n');
    assert.equal(piped.stderr, `${databaseLine(env)}\n`);
    await withServer(env, async (api) => {
      expectCode(await api.withToken(bobToken).request(`{ me { username } }`), 'UNAUTHENTICATED', 'the old token is revoked');
      await api.login('bob', 'piped-password');
    });

    const given = await runCli(['reset-password', 'bob', '--password', 'option-password'], env);
    assert.equal(given.code, 0, show(given));
    await withServer(env, async (api) => void (await api.login('bob', 'option-password')));

    // One after another: on the embedded database, each would refuse the others (the lock).
    const refusals: Run[] = [];
    for (const args of [['nobody', '--password', 'long-enough'], ['bob'], ['bob', '--password', 'short']]) {
      refusals.push(await runCli(['reset-password', ...args], env));
    }
    assert.deepEqual(
      refusals.map((run) => [run.code, run.stderr.trimEnd().split('\n').at(-1)]),
      [
        [1, 'User "nobody" not found.'],
        [1, 'No password: give --password, pipe it on standard input, or run the command in a terminal to be asked.'],
        [1, 'password must be 8 to 1024 characters long.'],
      ],
    );

    if (existsSync('/usr/bin/script')) {
      const typed = await typeAtPrompts(['reset-password', 'bob'], env, ['typed-password', 'typed-password']);
      assert.equal(typed.code, 0, typed.output);
      assert.match(typed.output, /New password for bob: \r?\nAgain: \r?\nreset the password of Bob/);
      assert.doesNotMatch(typed.output, /typed-password/, 'the password is not echoed');
      await withServer(env, async (api) => void (await api.login('bob', 'typed-password')));
    }
  });

  it('maintenance commands ignore server-only settings such as a bad PORT', async () => {
    const env = await freshEnv({ PORT: 'abc', HOST: '', CLEANUP_INTERVAL: 'never', ADMIN_PASSWORD: 'short' });
    const migrated = await runCli(['migrate'], env);
    assert.equal(migrated.code, 0, show(migrated));
    const cleaned = await runCli(['cleanup'], env);
    assert.equal(cleaned.code, 0, show(cleaned));
    assert.match(cleaned.stdout, /\n\{"expiredUploads":0,/);
  });

  it('help texts name the command and how the database is chosen; upload-file says in one line that a file is missing', async () => {
    const [serverHelp, uploadHelp, missing] = await Promise.all([
      runCli(['--help'], {}),
      runCli(['--help'], {}, { script: UPLOAD_CLI }),
      runCli(['--token', 'not-used', 'no-such-file.bin'], {}, { script: UPLOAD_CLI, cwd: os.tmpdir() }),
    ]);
    assert.equal(serverHelp.code, 0, show(serverHelp));
    assert.match(serverHelp.stdout, /^Usage: upload-server /);
    assert.match(serverHelp.stdout, /DATABASE_URL .* when set, else the embedded\s+PostgreSQL under DATA_DIR\/db/);
    for (const command of ['serve', 'migrate', 'create-user', 'reset-password', 'users', 'cleanup']) assert.match(serverHelp.stdout, new RegExp(`\n  ${command} `));
    assert.equal(uploadHelp.code, 0, show(uploadHelp));
    assert.match(uploadHelp.stdout, /^Usage: upload-file \[options\] FILE\.\.\./);
    assert.equal(missing.code, 2, show(missing));
    assert.equal(missing.stderr, 'upload-file: no-such-file.bin: no such file\n');
  });
});

/**
 * Runs the CLI in a pseudo-terminal (util-linux `script`), typing each answer once the output
 * shows a prompt: only then is echo off, as for a person at a keyboard.
 */
async function typeAtPrompts(args: string[], env: Record<string, string>, answers: string[]): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, SERVER_CLI, ...args].map((word) => `'${word}'`).join(' ');
  const child = spawn('/usr/bin/script', ['-qec', command, '/dev/null'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const prompts = [/New password for [^:]+: $/, /Again: $/];
  for (const [i, answer] of answers.entries()) {
    await eventually(() => assert.match(output, prompts[i]), 30_000);
    child.stdin.write(`${answer}\r`);
  }
  const code = await exited;
  child.stdin.end();
  return { code, output };
}
