/**
 * `npm start` and `npm test` build only when an input changed (scripts/build.mjs --if-changed).
 * Checked on a copy of this checkout (its built dist/ included, node_modules linked), so the
 * real dist/ other tests run from is never rebuilt underneath them. Nothing here is timed: a
 * start that compiled nothing is one that changed no compiled file.
 */
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { ADMIN } from './helpers/server';
import { withTimeout } from './helpers/timing';

const REPO = path.resolve(__dirname, '../..');
const COPIED = ['src', 'test', 'client', 'scripts', 'public', 'dist', 'tsconfig.json', 'mikro-orm.config.ts', 'package.json', 'package-lock.json'];
const run = promisify(execFile);

describe('building only what changed', { timeout: 300_000 }, () => {
  let copy: string;
  let database: TestDatabase;

  before(async () => {
    copy = mkdtempSync(path.join(os.tmpdir(), 'build-test-'));
    for (const entry of COPIED) cpSync(path.join(REPO, entry), path.join(copy, entry), { recursive: true, preserveTimestamps: true });
    symlinkSync(path.join(REPO, 'node_modules'), path.join(copy, 'node_modules'));
    // The checkout may have changed since its last build (a test run straight after an edit).
    await build(copy);
    database = await createTestDatabase();
  });
  after(async () => {
    await database?.drop();
    if (copy) rmSync(copy, { recursive: true, force: true });
  });

  it('`npm start` on a built, unchanged tree runs the compiled server without compiling anything', async () => {
    const before = outputTimes(copy);
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'build-test-data-'));
    const child = spawn('npm', ['start'], {
      cwd: copy,
      // Its own process group: npm's `sh -c node ...` is stopped with it.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        NODE_ENV: 'test',
        PORT: '0',
        HOST: '127.0.0.1',
        DATA_DIR: dataDir,
        ADMIN_PASSWORD: ADMIN.password,
        LOG_LEVEL: 'info',
        CLEANUP_INTERVAL: '0',
        ...(database.url ? { DATABASE_URL: database.url } : {}),
      },
    });
    const output: string[] = [];
    try {
      // Bounded, so that a start that never says it listens still reaches the finally below.
      const url = await withTimeout(new Promise<string>((resolve, reject) => {
        for (const stream of [child.stdout, child.stderr]) {
          readline.createInterface({ input: stream }).on('line', (line) => {
            output.push(line);
            if (line.includes('"msg":"listening')) resolve(JSON.parse(line).url);
          });
        }
        child.once('exit', (code) => reject(new Error(`npm start exited with ${code}:\n${output.join('\n')}`)));
      }), 240_000, 'npm start saying it listens');
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGTERM');
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    }
    const log = output.join('\n');
    assert.match(log, /build: up to date/, log);
    assert.doesNotMatch(log, /compiling/, log);
    assert.deepEqual(outputTimes(copy), before, 'no compiled file was written');
  });

  it('a touched file is no change; an edited one is compiled, and compiled files whose source is gone are removed', async () => {
    const logger = path.join(copy, 'src/logger.ts');
    const now = new Date();
    utimesSync(logger, now, now);
    assert.match(await build(copy), /up to date/, 'touching a source changes nothing');

    const marker = `// edited by the build test ${randomBytes(4).toString('hex')}`;
    appendFileSync(logger, `\n${marker}\n`);
    // What a test file deleted or renamed in test/ leaves behind in dist/.
    const stale = path.join(copy, 'dist/test/deleted-long-ago.test.js');
    writeFileSync(stale, 'throw new Error("a stale compiled test ran");\n');
    writeFileSync(`${stale}.map`, '{}');

    const log = await build(copy);
    assert.match(log, /compiling what changed/);
    assert.match(readFileSync(path.join(copy, 'dist/src/logger.js'), 'utf8'), new RegExp(marker));
    assert.equal(existsSync(stale), false, 'the stale compiled test is gone');
    assert.equal(existsSync(`${stale}.map`), false, 'and its source map');
    assert.match(log, /removed 2 compiled file\(s\) whose source is gone/);

    assert.match(await build(copy), /up to date/, 'built once, then nothing to do');
  });
});

/** `node scripts/build.mjs --if-changed` in `dir`; its output. */
async function build(dir: string): Promise<string> {
  const { stdout, stderr } = await run(process.execPath, ['scripts/build.mjs', '--if-changed'], { cwd: dir, env: { PATH: process.env.PATH, HOME: process.env.HOME } });
  return stdout + stderr;
}

/** Every compiled file's modification time, by path. */
function outputTimes(dir: string): Record<string, number> {
  const times: Record<string, number> = {};
  for (const top of ['dist', 'public/js', 'public/vendor']) {
    for (const entry of readdirSync(path.join(dir, top), { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) {
        const file = path.join(entry.parentPath, entry.name);
        times[path.relative(dir, file)] = statSync(file).mtimeMs;
      }
    }
  }
  return times;
}
