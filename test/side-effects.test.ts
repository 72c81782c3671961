import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, ensureJwtSecret, loadConfig } from '../src/config';

const ROOT = path.resolve(__dirname, '../..');
const DIST = path.resolve(__dirname, '../src');

/** Globals a dependency creates the first time our code uses it: type-graphql's decorators fill its store. */
const DEPENDENCY_GLOBALS = ['TypeGraphQLMetadataStorage'];

/**
 * In a fresh process (no --expose-gc, as the test runner's): what importing our modules, loading
 * the configuration and building and closing the whole app on the embedded database change
 * about the process. The dependencies are loaded first: what their own module code does (tslib's
 * helpers, zod's registry, the AWS SDK's awslambda) is theirs, not ours.
 */
const OBSERVE = `
  const fs = require('node:fs');
  const vm = require('node:vm');
  const path = require('node:path');
  // The entry points' own choice (main.ts, cli.ts): a polyfill the schema's decorators need.
  require('reflect-metadata');
  const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
  for (const dependency of Object.keys(pkg.dependencies)) require(dependency);
  const pino = require('pino');
  const { PGliteKnexDialect } = require('mikro-orm-pglite');
  const { PostgreSqlKnexDialect } = require('@mikro-orm/postgresql');
  const prototypes = () => ({ pglite: PGliteKnexDialect.prototype._query, postgres: PostgreSqlKnexDialect.prototype._query });
  const snapshot = () => ({
    globals: Object.getOwnPropertyNames(globalThis),
    resources: process.getActiveResourcesInfo(),
    listeners: ['SIGTERM', 'SIGINT', 'uncaughtException', 'unhandledRejection', 'exit'].map((e) => process.listenerCount(e)),
  });
  const diff = (a, b) => ({
    globals: b.globals.filter((g) => !a.globals.includes(g)),
    resources: b.resources.length - a.resources.length,
    listeners: b.listeners.map((n, i) => n - a.listeners[i]),
  });
  (async () => {
    const dataDir = path.join(process.argv[1], 'data');
    const start = snapshot();
    const originals = prototypes();
    const { createApp } = require(${JSON.stringify(path.join(DIST, 'app.js'))});
    const { loadConfig } = require(${JSON.stringify(path.join(DIST, 'config.js'))});
    require(${JSON.stringify(path.join(DIST, 'error-edge.js'))});
    require(${JSON.stringify(path.join(DIST, 'gc-pacer.js'))});
    require(${JSON.stringify(path.join(DIST, 'db/pglite-statements.js'))});
    await new Promise((resolve) => setImmediate(resolve));
    const imported = diff(start, snapshot());
    const config = loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'silent', CHUNK_FSYNC: 'false', CLEANUP_INTERVAL: '0', ADMIN_PASSWORD: 'side-effects-test' });
    const afterLoad = fs.existsSync(dataDir);
    const beforeApp = snapshot();
    // A logger of the caller's: pino's default destination registers its own flush-on-exit hook.
    const app = await createApp(config, pino({ level: 'silent' }, { write() {} }));
    await app.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = prototypes();
    console.log(JSON.stringify({
      imported,
      afterLoad,
      app: diff(beforeApp, snapshot()),
      gc: typeof globalThis.gc,
      gcInNewContext: vm.runInNewContext('typeof gc'),
      prototypesUnchanged: now.pglite === originals.pglite && now.postgres === originals.postgres,
      secretKept: fs.existsSync(path.join(dataDir, 'jwt-secret')),
    }));
  })().catch((err) => { console.error(err); process.exit(1); });
`;

describe('no process-wide side effects from library code', () => {
  let tmp: string;
  let seen: {
    imported: { globals: string[]; resources: number; listeners: number[] };
    afterLoad: boolean;
    app: { globals: string[]; resources: number; listeners: number[] };
    gc: string;
    gcInNewContext: string;
    prototypesUnchanged: boolean;
    secretKept: boolean;
  };

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'side-effects-'));
    const child = spawnSync(process.execPath, ['-e', OBSERVE, tmp], { encoding: 'utf8', cwd: ROOT, timeout: 60_000, env: { PATH: process.env.PATH } });
    assert.equal(child.status, 0, child.stderr);
    seen = JSON.parse(child.stdout.trim().split('\n').at(-1)!);
  });
  after(() => rm(tmp, { recursive: true, force: true }));

  it('importing the server modules adds no global, starts no timer or handle, installs no process listener', () => {
    assert.deepEqual({ ...seen.imported, globals: seen.imported.globals.filter((g) => !DEPENDENCY_GLOBALS.includes(g)) }, { globals: [], resources: 0, listeners: [0, 0, 0, 0, 0] });
  });

  it('building and closing the app leaves no global, handle or process listener behind', () => {
    assert.deepEqual(seen.app, { globals: [], resources: 0, listeners: [0, 0, 0, 0, 0] });
  });

  it('GC pacing exposes no gc(), not even to a new context (no V8 flag set at run time)', () => {
    assert.equal(seen.gc, 'undefined');
    assert.equal(seen.gcInNewContext, 'undefined');
  });

  it("the embedded database's fix is a subclass: the libraries' dialect classes are left as they were", () => {
    assert.equal(seen.prototypesUnchanged, true);
  });

  it('loadConfig writes nothing; the app, starting, keeps the generated JWT secret', () => {
    assert.equal(seen.afterLoad, false, 'loadConfig did not create DATA_DIR');
    assert.equal(seen.secretKept, true);
  });

  describe('the JWT secret', () => {
    it('is generated once by ensureJwtSecret, kept readable by its owner only, and reused', async () => {
      const dataDir = path.join(tmp, 'secret');
      const config = loadConfig({ DATA_DIR: dataDir });
      assert.equal(config.jwtSecret, undefined);
      assert.equal(existsSync(dataDir), false);
      const first = ensureJwtSecret(config);
      assert.ok(first.jwtSecret.length >= 32);
      const file = path.join(dataDir, 'jwt-secret');
      assert.equal(readFileSync(file, 'utf8'), first.jwtSecret);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(ensureJwtSecret(loadConfig({ DATA_DIR: dataDir })).jwtSecret, first.jwtSecret, 'the next start uses the same secret');
    });

    it('JWT_SECRET wins and nothing is written; production requires it', () => {
      const dataDir = path.join(tmp, 'given');
      const given = 's'.repeat(40);
      assert.equal(ensureJwtSecret(loadConfig({ DATA_DIR: dataDir, JWT_SECRET: given })).jwtSecret, given);
      assert.equal(existsSync(dataDir), false);
      assert.throws(() => loadConfig({ DATA_DIR: dataDir, NODE_ENV: 'production' }), ConfigError);
      const handMade = { ...loadConfig({ DATA_DIR: dataDir }), env: 'production' as const };
      assert.throws(() => ensureJwtSecret(handMade), ConfigError);
      assert.equal(existsSync(dataDir), false);
    });
  });

  it('the entry points decide on --expose-gc: npm start, the Docker image, upload-server serve', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    assert.match(pkg.scripts.start, /^node --expose-gc dist\/src\/main\.js$/);
    assert.match(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'), /^CMD \["node", "--expose-gc", "dist\/src\/main\.js"\]$/m);
    assert.match(readFileSync(path.join(DIST, 'cli.js'), 'utf8').split('\n')[0], /^#!\/usr\/bin\/env -S node --expose-gc$/);
  });
});
