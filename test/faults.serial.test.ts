/**
 * Faults (issue 4): the real server as its own process (`node dist/src/main.js`), real HTTP,
 * real PostgreSQL when TEST_DATABASE_URL is set (else the embedded PGlite under DATA_DIR).
 *
 *  1. SIGKILL mid-chunk (early in the body; with the whole body but not its end; right after
 *     the last byte, before the answer) and during completeUpload; a new process on the same
 *     DATA_DIR and database resumes from upload(id).offset and completes.
 *  2. A client that vanishes mid-chunk, and one that stalls past BODY_TIMEOUT: the lease is
 *     released at once (long before UPLOAD_LOCK_TTL), the next chunk goes through.
 *  3. PostgreSQL restarted while chunks stream (PostgreSQL only).
 *  4. The disk full, then read-only, during a chunk (a tmpfs mounted as DATA_DIR; needs root):
 *     offset and bytes intact, and an error a client can act on (not the masked
 *     INTERNAL_SERVER_ERROR; asserted last, after the data checks).
 *  5. 20 clients racing chunks at one offset (one process; and across two with PostgreSQL).
 *  6. Two processes sharing one database and one DATA_DIR (PostgreSQL only): chunks strictly
 *     alternating, completion on the other process; and a writer frozen (SIGSTOP) past its
 *     lease while the other process takes the upload over: it must not overwrite the bytes
 *     acknowledged meanwhile.
 *
 * Every scenario ends by completing the upload and comparing the downloaded md5 with the
 * source, and the fault scenarios check that rows and stored bytes agree: no File row
 * without its bytes, no bytes (library or partial) that no row vouches for.
 *
 * This file is *.serial.test: it restarts PostgreSQL and mounts file systems, so the runner
 * gives it the machine to itself.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync, watch } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import { eventually, GraphQLClient, md5, openChunkRequest, randomFile, sleep, verifyDownload, withTimeout, type GraphQLError, type GraphQLResult } from './helpers/client';
import { createTestDatabase, databaseKind, type TestDatabase } from './helpers/database';
import { spawnServer, type ServerProcess } from './helpers/process';
import { ADMIN } from './helpers/server';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const PG_URL = process.env.TEST_DATABASE_URL;
const NEEDS_POSTGRES = PG_URL ? false : 'needs PostgreSQL (a second process, or restarting the database server): set TEST_DATABASE_URL';
const JWT_SECRET = randomBytes(32).toString('hex');

// ---------------------------------------------------------------------------------------------
// A server process that can be killed and started again on the same DATA_DIR and database.
// ---------------------------------------------------------------------------------------------

class Instance {
  server!: ServerProcess;
  /** Every client derived from this one follows the instance across restarts (shared target). */
  readonly base = GraphQLClient.for('http://127.0.0.1:1');
  admin!: GraphQLClient;

  constructor(
    readonly env: Record<string, string>,
    readonly dataDir: string,
    readonly databaseUrl: string | undefined,
  ) {}

  static async launch(options: { dataDir: string; databaseUrl?: string; env?: Record<string, string> }): Promise<Instance> {
    const env: Record<string, string> = {
      NODE_ENV: 'test',
      DATA_DIR: options.dataDir,
      JWT_SECRET,
      ADMIN_USERNAME: ADMIN.username,
      ADMIN_PASSWORD: ADMIN.password,
      CLEANUP_INTERVAL: '0',
      CHUNK_FSYNC: 'true',
      LOG_LEVEL: 'info',
      ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl } : {}),
      ...options.env,
    };
    const instance = new Instance(env, options.dataDir, options.databaseUrl);
    await instance.start();
    instance.admin = await instance.base.login(ADMIN.username, ADMIN.password);
    return instance;
  }

  get url(): string {
    return this.server.url;
  }

  alive(): boolean {
    return this.server.child.exitCode === null && this.server.child.signalCode === null;
  }

  async start(): Promise<void> {
    this.server = await spawnServer(this.env);
    this.base.url = this.server.url;
  }

  /** SIGKILL: no shutdown hook runs, leases stay in the database until they run out. */
  async kill(): Promise<void> {
    await this.server.kill('SIGKILL');
  }

  async restart(): Promise<number> {
    if (this.alive()) await this.kill();
    const started = Date.now();
    await this.start();
    return Date.now() - started;
  }

  async stop(): Promise<void> {
    if (this.server) await this.server.kill('SIGKILL');
  }

  partPath(uploadId: string): string {
    return path.join(this.dataDir, 'uploads', `${uploadId}.part`);
  }
}

async function healthStatus(url: string): Promise<number> {
  try {
    return (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(3000) })).status;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Upload helpers
// ---------------------------------------------------------------------------------------------

async function sendChunks(client: GraphQLClient, uploadId: string, bytes: Buffer, from: number, to: number, chunkSize: number): Promise<void> {
  for (let offset = from; offset < to; offset += chunkSize) {
    const end = Math.min(offset + chunkSize, to);
    const result = await client.uploadChunk(uploadId, offset, bytes.subarray(offset, end));
    assert.equal(result.errors, undefined, `chunk at ${offset}: ${JSON.stringify(result.errors)}`);
    assert.equal(result.data.uploadChunk.offset, end);
  }
}

/** Completes with the md5 of `bytes` (retrying while a dead writer's lease runs out) and checks the download. */
async function completeAndVerify(client: GraphQLClient, uploadId: string, bytes: Buffer, timeoutMs = 10_000): Promise<any> {
  let file: any;
  await eventually(async () => {
    const done = await client.complete(uploadId, md5(bytes));
    assert.equal(done.errors, undefined, `completeUpload: ${JSON.stringify(done.errors)}`);
    file = done.data.completeUpload;
  }, timeoutMs);
  assert.equal(file.size, bytes.length);
  assert.equal(file.md5, md5(bytes));
  await verifyDownload(client, file.id, bytes);
  return file;
}


/**
 * A chunk writer holds the upload's lease right now: completeUpload takes the same lease, so it
 * answers UPLOAD_LOCKED (unleased, it would answer UPLOAD_INCOMPLETE and change nothing).
 */
async function assertLeaseHeld(client: GraphQLClient, uploadId: string): Promise<void> {
  const result = await client.complete(uploadId, md5(randomBytes(8)));
  assert.deepEqual(
    result.errors?.map((e) => e.extensions?.code),
    ['UPLOAD_LOCKED'],
    `the chunk in flight holds the lease: ${JSON.stringify(result.errors ?? result.data)}`,
  );
}

/**
 * The next chunk from the stored offset, retried while the server says UPLOAD_LOCKED (a dead
 * writer's lease that has to run out). Returns how long it took and what answered meanwhile.
 */
async function resume(client: GraphQLClient, uploadId: string, bytes: Buffer, chunkSize: number, timeoutMs: number) {
  const started = Date.now();
  const seen: string[] = [];
  for (;;) {
    const upload = await client.getUpload(uploadId);
    const end = Math.min(upload.offset + chunkSize, bytes.length);
    const result = await client.uploadChunk(uploadId, upload.offset, bytes.subarray(upload.offset, end));
    if (!result.errors) {
      assert.equal(result.data.uploadChunk.offset, end);
      return { waited: Date.now() - started, seen, from: upload.offset };
    }
    const code = String(result.errors[0].extensions?.code);
    seen.push(code);
    assert.equal(code, 'UPLOAD_LOCKED', `resuming at ${upload.offset}: ${JSON.stringify(result.errors)}`);
    assert.ok(Date.now() - started < timeoutMs, `still UPLOAD_LOCKED after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** The first `length` bytes of the upload's part file: exactly the source's (the bytes before are intact). */
async function assertPartPrefix(instance: Instance, uploadId: string, bytes: Buffer, length: number): Promise<number> {
  const part = await readFile(instance.partPath(uploadId));
  assert.ok(part.length >= length, `the part file holds ${part.length} bytes, fewer than the stored offset ${length}`);
  assert.equal(md5(part.subarray(0, length)), md5(bytes.subarray(0, length)), `the ${length} stored bytes are the source's`);
  return part.length;
}

/** Sends `bytes` through a raw chunk request in pieces (so the server sees them arrive over time). */
/**
 * SIGKILLs the server the instant `shouldKill` holds for a change inotify reports under
 * `watched` (it gets the changed name); resolves with that name once the process is gone.
 * Call it before starting the requests it should interrupt.
 */
async function killOnChange(instance: Instance, watched: string, shouldKill: (name: string) => boolean, what: string): Promise<string> {
  const watcher = watch(watched);
  let killedOn: string | undefined;
  const changed = new Promise<string>((resolve) => {
    watcher.on('change', (_type, name) => {
      if (killedOn !== undefined || !shouldKill(String(name))) return;
      killedOn = String(name);
      instance.server.child.kill('SIGKILL');
      resolve(killedOn);
    });
  });
  try {
    return await withTimeout(changed, 10_000, what);
  } finally {
    watcher.close();
    await instance.kill();
  }
}

async function sendInPieces(request: ReturnType<typeof openChunkRequest>, bytes: Buffer, piece = 64 * 1024, pauseMs = 0): Promise<void> {
  for (let at = 0; at < bytes.length; at += piece) {
    await request.send(bytes.subarray(at, at + piece));
    if (pauseMs) await sleep(pauseMs);
  }
}

/** A GraphQL error a client can be shown: a code, a message, and nothing of the server's insides. */
function assertCleanError(error: GraphQLError | undefined, what: string): void {
  assert.ok(error, `${what}: an error`);
  assert.equal(typeof error.extensions?.code, 'string', `${what}: a code in ${JSON.stringify(error)}`);
  assert.ok(error.message.length > 0, `${what}: a message`);
  assert.equal(error.extensions?.stacktrace, undefined, `${what}: no stack trace in ${JSON.stringify(error)}`);
  const leaks = [
    /\b(select|update|insert into|delete from)\b[\s\S]*\b(from|set|where|values|returning)\b/i,
    /chunked_uploads|lock_token|md5_state|"offset"/i,
    /terminating connection|ECONNREFUSED|ECONNRESET|ENOSPC|EROFS|EACCES|57P01|connection terminated/i,
    /\n\s+at /,
    /\/tmp\/|\/work\/|node_modules|DATA_DIR/,
  ];
  for (const leak of leaks) assert.doesNotMatch(error.message, leak, `${what}: the message shows server internals: ${error.message}`);
}

// ---------------------------------------------------------------------------------------------
// Rows and bytes agree
// ---------------------------------------------------------------------------------------------

interface Rows {
  files: Map<string, { size: number; md5: string }>;
  uploads: Map<string, { status: string; offset: number; totalSize: number }>;
}

/** The File and upload rows: straight from PostgreSQL, or (embedded) through the API as the admin, who owns every upload here. */
async function readRows(instance: Instance): Promise<Rows> {
  if (instance.databaseUrl) {
    const client = new pg.Client({ connectionString: instance.databaseUrl });
    await client.connect();
    try {
      const files = await client.query('select id, size, md5 from files');
      const uploads = await client.query('select id, status, "offset", total_size from chunked_uploads');
      return {
        files: new Map(files.rows.map((r) => [r.id, { size: Number(r.size), md5: r.md5 }])),
        uploads: new Map(uploads.rows.map((r) => [r.id, { status: r.status, offset: Number(r.offset), totalSize: Number(r.total_size) }])),
      };
    } finally {
      await client.end();
    }
  }
  const data = await instance.admin.data(`{
    files(first: 100) { totalCount edges { node { id size md5 } } }
    myUploads { id status offset totalSize }
  }`);
  assert.ok(data.files.totalCount <= 100, 'more files than one page: the check would miss some');
  return {
    files: new Map(data.files.edges.map((e: any) => [e.node.id, { size: e.node.size, md5: e.node.md5 }])),
    uploads: new Map(data.myUploads.map((u: any) => [u.id, { status: u.status, offset: u.offset, totalSize: u.totalSize }])),
  };
}

async function listSizes(dir: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return sizes;
    throw err;
  }
  for (const name of names) sizes.set(name, (await stat(path.join(dir, name))).size);
  return sizes;
}

/**
 * No File row without its bytes (of its size and md5), no library bytes without a File row,
 * no partial bytes without an upload in progress, every upload in progress has at least its
 * offset on disk. `allowPending`: right after a crash during completeUpload, library bytes may
 * wait for an UPLOADING upload whose completion moved them but did not commit (the retry
 * finishes it; cleanup keeps them). Returns those ids.
 */
async function assertRowsMatchBytes(instance: Instance, allowPending: boolean): Promise<string[]> {
  const rows = await readRows(instance);
  const stored = await listSizes(path.join(instance.dataDir, 'files'));
  const parts = await listSizes(path.join(instance.dataDir, 'uploads'));
  const pending: string[] = [];
  for (const [id, file] of rows.files) {
    assert.ok(stored.has(id), `File row ${id} has no bytes in DATA_DIR/files`);
    assert.equal(stored.get(id), file.size, `File ${id}: stored size`);
    assert.equal(md5(await readFile(path.join(instance.dataDir, 'files', id))), file.md5, `File ${id}: stored md5`);
  }
  for (const [id, size] of stored) {
    if (rows.files.has(id)) continue;
    const upload = rows.uploads.get(id);
    const isPending = upload?.status === 'UPLOADING' && upload.offset === upload.totalSize && size === upload.totalSize;
    assert.ok(allowPending && isPending, `DATA_DIR/files/${id} (${size} bytes) has no File row (upload: ${JSON.stringify(upload)})`);
    pending.push(id);
  }
  for (const [name, size] of parts) {
    const id = name.replace(/\.part$/, '');
    const upload = rows.uploads.get(id);
    assert.equal(upload?.status, 'UPLOADING', `DATA_DIR/uploads/${name} belongs to no upload in progress (${JSON.stringify(upload)})`);
    assert.ok(size >= upload!.offset, `DATA_DIR/uploads/${name}: ${size} bytes on disk, offset ${upload!.offset}`);
  }
  for (const [id, upload] of rows.uploads) {
    if (upload.status === 'COMPLETE') assert.ok(rows.files.has(id), `upload ${id} is COMPLETE but has no File row`);
    if (upload.status === 'UPLOADING' && !pending.includes(id)) {
      assert.ok(parts.has(`${id}.part`), `upload ${id} is in progress (offset ${upload.offset}) but its part file is gone`);
    }
  }
  return pending;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and mounts
// ---------------------------------------------------------------------------------------------

function postgresCluster(): string[] {
  const versions = readdirSync('/etc/postgresql');
  assert.ok(versions.length > 0, 'no cluster under /etc/postgresql');
  return [versions.sort().at(-1)!, 'main'];
}

async function pgIsReady(): Promise<boolean> {
  const url = new URL(PG_URL!);
  try {
    await run('pg_isready', ['-h', url.hostname, '-p', url.port || '5432', '-t', '2']);
    return true;
  } catch {
    return false;
  }
}

/** Leaves PostgreSQL running whatever happened: waits for it, starts it if it stays down. */
async function ensurePostgresUp(): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (await pgIsReady()) return;
      await sleep(250);
    }
    await run('pg_ctlcluster', ['--skip-systemctl-redirect', ...postgresCluster(), 'start']).catch(() => {});
  }
  throw new Error('PostgreSQL is not accepting connections after the restart test');
}

async function mountTmpfs(dir: string, size: string): Promise<string | undefined> {
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs (needs root): ${(err as Error).message.split('\n')[0]}`;
  }
}

async function unmount(dir: string): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      await run('umount', [dir]);
      return;
    } catch {
      await sleep(200);
    }
  }
  await run('umount', ['-l', dir]);
}

// ---------------------------------------------------------------------------------------------

describe(`faults (${databaseKind}; the server as its own process)`, () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err) => console.error('cleanup failed:', err));
  });

  /** A server process with its own DATA_DIR and database. */
  async function freshInstance(env: Record<string, string>, dataDir?: string): Promise<Instance> {
    const dir = dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'faults-')));
    if (!dataDir) cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const database: TestDatabase = await createTestDatabase();
    cleanups.push(() => database.drop());
    const instance = await Instance.launch({ dataDir: dir, databaseUrl: database.url, env });
    cleanups.push(() => instance.stop());
    return instance;
  }

  describe('SIGKILL mid-chunk and mid-completion, then a new process on the same DATA_DIR and database', () => {
    const LOCK_TTL = 2;
    const CHUNK = 2 * MiB;
    let node: Instance;
    let admin: GraphQLClient;
    let bytes: Buffer;
    let uploadId: string;

    before(async () => {
      node = await freshInstance({ UPLOAD_LOCK_TTL: String(LOCK_TTL), BODY_TIMEOUT: '30' });
      admin = node.admin;
      bytes = randomFile(4 * CHUNK + 12_345);
      uploadId = (await admin.start('killed.bin', bytes.length)).id;
      await sendChunks(admin, uploadId, bytes, 0, CHUNK, CHUNK);
    });

    /**
     * The stored offset once no writer holds the upload (each scenario starts from wherever
     * the one before left it, even if that one failed half-way). Probes with completeUpload,
     * which changes nothing with a wrong md5: UPLOAD_LOCKED while leased, else refused.
     */
    async function settledOffset(): Promise<number> {
      await eventually(async () => {
        const probe = await admin.complete(uploadId, md5(randomBytes(8)));
        const code = probe.errors?.[0].extensions?.code;
        // UPLOAD_INCOMPLETE before the last byte, CHECKSUM_MISMATCH (nothing moved) after it.
        assert.ok(code === 'UPLOAD_INCOMPLETE' || code === 'CHECKSUM_MISMATCH', `the upload is free: ${JSON.stringify(probe.errors ?? probe.data)}`);
      }, LOCK_TTL * 1000 + 8000);
      return (await admin.getUpload(uploadId)).offset;
    }

    it('killed early in a chunk body: resumes from the stored offset once the dead lease runs out', { timeout: 60_000 }, async (t) => {
      const offset = await settledOffset();
      const request = openChunkRequest(admin, uploadId, offset);
      await request.send(randomFile(64 * 1024)); // junk: none of it may survive
      await sleep(300);
      await assertLeaseHeld(admin, uploadId);
      await node.kill();
      request.abort();

      const restartMs = await node.restart();
      assert.equal((await admin.getUpload(uploadId)).offset, offset, 'the cut-off chunk counted nothing');
      await assertPartPrefix(node, uploadId, bytes, offset);
      await assertRowsMatchBytes(node, false);

      const resumed = await resume(admin, uploadId, bytes, CHUNK, LOCK_TTL * 1000 + 8000);
      assert.equal(resumed.from, offset);
      t.diagnostic(`restart took ${restartMs} ms; resumed ${resumed.waited} ms later after ${resumed.seen.length} UPLOAD_LOCKED answer(s)`);
    });

    it('killed with the whole chunk body received but not its end: the bytes on disk do not count', { timeout: 60_000 }, async (t) => {
      const offset = await settledOffset();
      const request = openChunkRequest(admin, uploadId, offset);
      // A whole chunk of junk, but never the closing boundary: the server writes most of it.
      await sendInPieces(request, randomFile(CHUNK));
      await eventually(async () => {
        const size = (await stat(node.partPath(uploadId))).size;
        assert.ok(size >= offset + MiB, `partial bytes reach the disk (${size})`);
      }, 10_000);
      await assertLeaseHeld(admin, uploadId);
      await node.kill();
      request.abort();

      await node.restart();
      assert.equal((await admin.getUpload(uploadId)).offset, offset, 'the unfinished chunk counted nothing');
      const onDisk = await assertPartPrefix(node, uploadId, bytes, offset);
      assert.ok(onDisk > offset, 'the partial junk was on disk when the process died (this scenario really happened)');
      t.diagnostic(`${onDisk - offset} bytes of the unfinished chunk were on disk at the kill`);
      await assertRowsMatchBytes(node, false);

      const resumed = await resume(admin, uploadId, bytes, CHUNK, LOCK_TTL * 1000 + 8000);
      assert.equal(resumed.from, offset);
    });

    it('killed right after the last byte of a chunk, before the answer: the offset is what is on disk', { timeout: 60_000 }, async (t) => {
      const offset = await settledOffset();
      assert.ok(offset + CHUNK <= bytes.length, 'a whole chunk is left for this scenario');
      const request = openChunkRequest(admin, uploadId, offset);
      await sendInPieces(request, bytes.subarray(offset, offset + CHUNK));
      // The process dies the instant the chunk's last byte is in the part file (inotify), while
      // the server flushes it and commits the offset.
      const partPath = node.partPath(uploadId);
      const killed = killOnChange(node, partPath, () => statSync(partPath, { throwIfNoEntry: false })?.size === offset + CHUNK, 'the chunk never reached the part file');
      const answer = request.finish().then(
        (r) => `answered ${JSON.stringify(r.errors?.map((e) => e.extensions?.code) ?? r.data?.uploadChunk?.offset)}`,
        () => 'no answer',
      );
      await killed;
      const seen = await answer;

      await node.restart();
      const after = await admin.getUpload(uploadId);
      t.diagnostic(`client: ${seen}; stored offset after restart: ${after.offset} (${after.offset === offset ? 'not committed' : 'committed'})`);
      assert.ok(after.offset === offset || after.offset === offset + CHUNK, `offset ${after.offset} is a chunk boundary`);
      await assertPartPrefix(node, uploadId, bytes, after.offset);
      await assertRowsMatchBytes(node, false);
      if (after.offset === offset) await resume(admin, uploadId, bytes, CHUNK, LOCK_TTL * 1000 + 8000);
      await eventually(async () => {
        const upload = await admin.getUpload(uploadId);
        await sendChunks(admin, uploadId, bytes, upload.offset, bytes.length, CHUNK);
      }, LOCK_TTL * 1000 + 8000);
      assert.equal((await admin.getUpload(uploadId)).offset, bytes.length);
    });

    it('killed during completeUpload: no row without bytes, no bytes without a row; completing again finishes the job', { timeout: 90_000 }, async (t) => {
      // The main upload fully sent (whatever the scenarios before left it at).
      const from = await settledOffset();
      await sendChunks(admin, uploadId, bytes, from, bytes.length, CHUNK);
      // Six more uploads, all completed at once; the process dies the instant the first bytes
      // land in DATA_DIR/files (inotify), i.e. between a completion's rename and its commit,
      // with the other completions at other steps (waiting, lease taken, File row inserted).
      const others = [100_000, 300_000, 600_000, 1_000_000, 1_500_000, 3 * MiB + 1].map((n) => randomFile(n));
      const all = [{ id: uploadId, bytes }];
      for (const [i, other] of others.entries()) {
        const id = (await admin.start(`killed-complete-${i}.bin`, other.length)).id;
        await sendChunks(admin, id, other, 0, other.length, CHUNK);
        all.push({ id, bytes: other });
      }
      const ids = new Set(all.map((u) => u.id));
      const killed = killOnChange(node, path.join(node.dataDir, 'files'), (name) => ids.has(name), 'no completion moved its bytes');
      const answers = all.map(({ id, bytes: b }) =>
        admin.complete(id, md5(b)).then(
          (r) => (r.errors ? String(r.errors[0].extensions?.code) : 'File'),
          () => 'no answer',
        ),
      );
      const killedOn = await killed;
      const seen = await Promise.all(answers);

      await node.restart();
      const pending = await assertRowsMatchBytes(node, true);
      const rows = await readRows(node);
      const states = all.map(({ id }) => (rows.files.has(id) ? 'committed' : pending.includes(id) ? 'moved, not committed' : 'not moved'));
      t.diagnostic(`killed when ${all.findIndex((u) => u.id === killedOn)} moved its bytes; clients saw: ${seen.join(', ')}; after restart: ${states.join(', ')}`);
      for (const [i, answer] of seen.entries()) {
        if (answer === 'File') assert.equal(states[i], 'committed', 'a completion the client saw succeed survived the crash');
      }

      const files = [];
      for (const { id, bytes: b } of all) files.push(await completeAndVerify(admin, id, b, LOCK_TTL * 1000 + 8000));
      // Idempotent: a retry after the crash returns the same File.
      for (const [i, { id, bytes: b }] of all.entries()) {
        const again = await admin.complete(id, md5(b));
        assert.equal(again.errors, undefined, JSON.stringify(again.errors));
        assert.equal(again.data.completeUpload.id, files[i].id);
        assert.equal((await admin.getUpload(id)).status, 'COMPLETE');
      }
      assert.deepEqual(await assertRowsMatchBytes(node, false), [], 'every completion is whole: no bytes wait for a row');
      assert.equal((await listSizes(path.join(node.dataDir, 'uploads'))).size, 0, 'no partial bytes are left');
    });
  });

  describe('clients that vanish or stall mid-chunk', () => {
    // A long lease: a next chunk that succeeds within a few seconds proves the lease was released, not that it ran out.
    const LOCK_TTL = 10;
    const RELEASE_WITHIN_MS = 3000;
    let node: Instance;

    before(async () => {
      node = await freshInstance({ UPLOAD_LOCK_TTL: String(LOCK_TTL), BODY_TIMEOUT: '1' });
    });

    it('a client that disconnects mid-chunk: the lease is released at once and the upload completes', { timeout: 60_000 }, async (t) => {
      const admin = node.admin;
      const chunk = 512 * 1024;
      const bytes = randomFile(3 * chunk + 77);
      const { id } = await admin.start('disconnect.bin', bytes.length);
      await sendChunks(admin, id, bytes, 0, chunk, chunk);

      const request = openChunkRequest(admin, id, chunk);
      await request.send(randomFile(200_000));
      await sleep(300);
      await assertLeaseHeld(admin, id);
      request.abort();
      const cutAt = Date.now();

      const resumed = await resume(admin, id, bytes, chunk, RELEASE_WITHIN_MS);
      assert.equal(resumed.from, chunk, 'the cut-off chunk counted nothing');
      const took = Date.now() - cutAt;
      assert.ok(took < RELEASE_WITHIN_MS, `the next chunk went through ${took} ms after the disconnect (UPLOAD_LOCK_TTL ${LOCK_TTL} s)`);
      t.diagnostic(`next chunk accepted ${took} ms after the disconnect, after ${resumed.seen.length} UPLOAD_LOCKED answer(s)`);
      assert.ok(node.alive());
      await sendChunks(admin, id, bytes, 2 * chunk, bytes.length, chunk);
      await completeAndVerify(admin, id, bytes);
    });

    it('a client that stalls past BODY_TIMEOUT is cut off, the lease is released and the upload completes', { timeout: 60_000 }, async (t) => {
      const admin = node.admin;
      const chunk = 512 * 1024;
      const bytes = randomFile(3 * chunk);
      const { id } = await admin.start('stall.bin', bytes.length);
      await sendChunks(admin, id, bytes, 0, chunk, chunk);

      const request = openChunkRequest(admin, id, chunk);
      let outcome: { answer?: GraphQLResult; err?: Error };
      let cutOffAfter: number;
      try {
        await request.send(bytes.subarray(chunk, chunk + 1000));
        const lastByteAt = Date.now();
        await sleep(200);
        await assertLeaseHeld(admin, id);
        // Send nothing more: after BODY_TIMEOUT (1 s) the server must give up on the body.
        outcome = await withTimeout(
          request.response.then(
            (answer) => ({ answer }),
            (err: Error) => ({ err }),
          ),
          LOCK_TTL * 1000 - 2000,
          'the server neither answered nor closed a stalled chunk body before the lease would have run out',
        );
        cutOffAfter = Date.now() - lastByteAt;
      } finally {
        request.abort();
      }
      assert.ok(cutOffAfter >= 800, `the server waited for the 1 s idle timeout, not ${cutOffAfter} ms`);
      if (outcome.answer) {
        assert.equal(outcome.answer.data?.uploadChunk ?? null, null, 'a stalled chunk is not accepted');
        assertCleanError(outcome.answer.errors?.[0], 'the stalled chunk');
      }
      t.diagnostic(
        `cut off after ${cutOffAfter} ms: ${outcome.answer ? `HTTP ${outcome.answer.status} ${JSON.stringify(outcome.answer.errors?.map((e) => [e.extensions?.code, e.message]))}` : `connection closed (${outcome.err?.message})`}`,
      );

      const cutAt = Date.now();
      const resumed = await resume(admin, id, bytes, chunk, RELEASE_WITHIN_MS);
      assert.equal(resumed.from, chunk, 'the stalled chunk counted nothing');
      assert.ok(Date.now() - cutAt < RELEASE_WITHIN_MS, 'the lease was released when the body was cut off');
      await sendChunks(admin, id, bytes, 2 * chunk, bytes.length, chunk);
      await completeAndVerify(admin, id, bytes);
    });

    it('20 clients race chunks at one offset: exactly one wins, the others are UPLOAD_LOCKED or OFFSET_MISMATCH', { timeout: 60_000 }, async (t) => {
      const admin = node.admin;
      const prefix = randomFile(100_000);
      const size = 256 * 1024;
      const suffix = randomFile(50_000);
      const { id } = await admin.start('race20.bin', prefix.length + size + suffix.length);
      await sendChunks(admin, id, prefix, 0, prefix.length, prefix.length);
      // Twenty clients, each logged in on its own.
      const clients = await Promise.all(Array.from({ length: 20 }, () => node.base.login(ADMIN.username, ADMIN.password)));
      const candidates = clients.map(() => randomFile(size));

      const winner = await race(clients, id, prefix.length, candidates, t);
      const stored = Buffer.concat([prefix, candidates[winner], suffix]);
      await sendChunks(admin, id, stored, prefix.length + size, stored.length, suffix.length);
      const loser = Buffer.concat([prefix, candidates[(winner + 1) % 20], suffix]);
      const refused = await admin.complete(id, md5(loser));
      assert.deepEqual(refused.errors?.map((e) => e.extensions?.code), ['CHECKSUM_MISMATCH'], 'no loser\'s bytes were stored');
      await completeAndVerify(admin, id, stored);
    });
  });

  describe('PostgreSQL restarted while uploads run', { skip: NEEDS_POSTGRES }, () => {
    const LOCK_TTL = 2;

    it('requests in flight fail with a clean GraphQL error, the same process recovers, the uploads resume and complete', { timeout: 120_000 }, async (t) => {
      const node = await freshInstance({ UPLOAD_LOCK_TTL: String(LOCK_TTL), BODY_TIMEOUT: '30' });
      const admin = node.admin;
      const chunk = 1 * MiB;
      const streamed = randomFile(4 * chunk + 5);
      const polled = randomFile(4 * chunk + 9);
      const streamedId = (await admin.start('pg-restart-streamed.bin', streamed.length)).id;
      const polledId = (await admin.start('pg-restart-polled.bin', polled.length)).id;
      await sendChunks(admin, streamedId, streamed, 0, chunk, chunk);
      await sendChunks(admin, polledId, polled, 0, chunk, chunk);

      const results: { what: string; result?: GraphQLResult; err?: string }[] = [];
      const health: number[] = [];
      let restarting = true;
      let restartDone = 0;
      let slow: ReturnType<typeof openChunkRequest> | undefined;
      try {
        // A chunk whose body streams slowly across the whole restart.
        slow = openChunkRequest(admin, streamedId, chunk);
        await slow.send(streamed.subarray(chunk, chunk + 64 * 1024));
        await sleep(300);
        await assertLeaseHeld(admin, streamedId);
        const slowBody = (async () => {
          let at = chunk + 64 * 1024;
          while (restarting || Date.now() - restartDone < 500) {
            const end = Math.min(at + 16 * 1024, 2 * chunk - 1);
            if (end > at) await slow!.send(streamed.subarray(at, end));
            at = end;
            await sleep(50);
          }
          await slow!.send(streamed.subarray(at, 2 * chunk));
          return slow!.finish();
        })();
        slowBody.catch(() => {}); // awaited below; if the test fails first, not an unhandled rejection

        // Small chunks and queries at the other upload, and /healthz, all through the restart.
        const traffic = (async () => {
          let offset = chunk;
          while (restarting || Date.now() - restartDone < 300) {
            const piece = 32 * 1024;
            const outcomes = await Promise.allSettled([
              admin.uploadChunk(polledId, offset, polled.subarray(offset, offset + piece)),
              admin.request(`query($id: ID!) { upload(id: $id) { offset } }`, { id: polledId }),
              healthStatus(node.url),
            ]);
            const [c, q, h] = outcomes;
            for (const [what, o] of [['uploadChunk', c], ['upload', q]] as const) {
              if (o.status === 'fulfilled') results.push({ what, result: o.value as GraphQLResult });
              else results.push({ what, err: String(o.reason) });
            }
            if (h.status === 'fulfilled') health.push(h.value);
            if (c.status === 'fulfilled' && !(c.value as GraphQLResult).errors) offset += piece;
            else if (c.status === 'fulfilled') {
              const expected = (c.value as GraphQLResult).errors?.[0].extensions?.expectedOffset;
              if (typeof expected === 'number') offset = expected;
            }
            await sleep(30);
          }
        })();
        traffic.catch(() => {});

        await sleep(200);
        const restartStarted = Date.now();
        await run('pg_ctlcluster', ['--skip-systemctl-redirect', ...postgresCluster(), 'restart']);
        restartDone = Date.now();
        restarting = false;
        t.diagnostic(`pg_ctlcluster restart took ${restartDone - restartStarted} ms`);

        // The same process answers /healthz again within a few seconds.
        let healthyAfter = -1;
        await eventually(async () => {
          assert.equal(await healthStatus(node.url), 200);
          healthyAfter = Date.now() - restartDone;
        }, 5000);
        t.diagnostic(`/healthz 200 again ${healthyAfter} ms after PostgreSQL was back`);
        assert.ok(node.alive(), 'the server process survived the database restart');

        const slowOutcome = await withTimeout(slowBody.then((r) => ({ r }), (err: Error) => ({ err })), 15_000, 'no answer to the chunk that streamed across the restart');
        await traffic;

        // What the clients saw.
        assert.ok('r' in slowOutcome, `the chunk streaming across the restart got an answer, not a dropped connection: ${'err' in slowOutcome ? slowOutcome.err : ''}`);
        const slowAnswer = slowOutcome.r;
        if (slowAnswer.errors) assertCleanError(slowAnswer.errors[0], 'the chunk streaming across the restart');
        t.diagnostic(`chunk streaming across the restart: HTTP ${slowAnswer.status} ${slowAnswer.errors ? JSON.stringify(slowAnswer.errors.map((e) => [e.extensions?.code, e.message])) : 'accepted'}`);

        const dropped = results.filter((r) => r.err);
        assert.deepEqual(dropped, [], 'every request got an HTTP answer (no dropped connection, no crash)');
        const failed = results.filter((r) => r.result?.errors);
        const codes = new Map<string, number>();
        for (const f of failed) {
          for (const e of f.result!.errors!) {
            assertCleanError(e, `${f.what} during the restart`);
            const key = `${f.what} ${e.extensions?.code} (HTTP ${f.result!.status}): ${e.message}`;
            codes.set(key, (codes.get(key) ?? 0) + 1);
          }
        }
        t.diagnostic(`${results.length} requests during the restart, ${failed.length} failed: ${JSON.stringify([...codes])}`);
        t.diagnostic(`/healthz during the restart: ${JSON.stringify([...new Set(health)])}`);
        assert.ok(failed.length > 0 || health.some((s) => s !== 200), 'the traffic really ran into the outage (at least one request failed)');
      } finally {
        restarting = false;
        slow?.abort();
        await ensurePostgresUp();
      }

      // Both uploads resume from their stored offsets (after the stuck lease, if any, runs out) and complete.
      assert.ok(node.alive(), 'the server process is still the same one');
      for (const [id, b] of [[streamedId, streamed], [polledId, polled]] as const) {
        const upload = await admin.getUpload(id);
        await assertPartPrefix(node, id, b, upload.offset);
        await resume(admin, id, b, chunk, LOCK_TTL * 1000 + 8000);
        const now = await admin.getUpload(id);
        await sendChunks(admin, id, b, now.offset, b.length, chunk);
        await completeAndVerify(admin, id, b);
      }
      await assertRowsMatchBytes(node, false);
    });
  });

  describe('the disk full or read-only during a chunk (a tmpfs as DATA_DIR)', () => {
    it('refuses the chunk with a clean error, keeps the offset and the bytes before, and completes once there is room', { timeout: 90_000 }, async (t) => {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'faults-tmpfs-'));
      cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
      const cannot = await mountTmpfs(dataDir, '8m');
      if (cannot) {
        t.skip(cannot);
        return;
      }
      let node: Instance | undefined;
      let dbMounted = false;
      const observed: string[] = [];
      try {
        if (!PG_URL) {
          // The embedded database lives under DATA_DIR/db: keep it off the small file system with a
          // bind mount (PGlite does not follow a symlink there). uploads/ and files/ stay on the
          // tmpfs together, so publishing is still a rename.
          const dbDir = await mkdtemp(path.join(os.tmpdir(), 'faults-db-'));
          cleanups.push(() => rm(dbDir, { recursive: true, force: true }));
          await mkdir(path.join(dataDir, 'db'));
          await run('mount', ['--bind', dbDir, path.join(dataDir, 'db')]);
          dbMounted = true;
        }
        node = await freshInstance({ UPLOAD_LOCK_TTL: '10' }, dataDir);
        const admin = node.admin;
        const filler = path.join(dataDir, 'filler.bin');
        await writeFile(filler, randomFile(4 * MiB));

        const bytes = randomFile(6 * MiB);
        const { id } = await admin.start('disk-full.bin', bytes.length);
        await sendChunks(admin, id, bytes, 0, 2 * MiB, 2 * MiB); // 4 + 2 of 8 MiB used

        // 3 MiB do not fit in the 2 MiB left.
        const full = await admin.uploadChunk(id, 2 * MiB, bytes.subarray(2 * MiB, 5 * MiB));
        assert.equal(full.data?.uploadChunk ?? null, null, `a chunk that does not fit is refused: ${JSON.stringify(full.data)}`);
        assertCleanError(full.errors?.[0], 'disk full');
        observed.push(`disk full: HTTP ${full.status} ${full.errors![0].extensions?.code} "${full.errors![0].message}"`);
        assert.equal((await admin.getUpload(id)).offset, 2 * MiB, 'the offset did not move');
        const partSize = await assertPartPrefix(node, id, bytes, 2 * MiB);
        t.diagnostic(`${partSize - 2 * MiB} bytes of the refused chunk were on disk`);
        assert.equal(await healthStatus(node.url), 200);

        // Read-only: even root cannot write.
        await run('mount', ['-o', 'remount,ro', dataDir]);
        let readOnly: GraphQLResult | undefined;
        try {
          readOnly = await admin.uploadChunk(id, 2 * MiB, bytes.subarray(2 * MiB, 3 * MiB));
          assert.equal(readOnly.data?.uploadChunk ?? null, null, 'a chunk on a read-only disk is refused');
          assertCleanError(readOnly.errors?.[0], 'read-only disk');
          observed.push(`read-only: HTTP ${readOnly.status} ${readOnly.errors![0].extensions?.code} "${readOnly.errors![0].message}"`);
          assert.equal((await admin.getUpload(id)).offset, 2 * MiB, 'the offset did not move');
        } finally {
          await run('mount', ['-o', 'remount,rw', dataDir]);
        }
        await assertPartPrefix(node, id, bytes, 2 * MiB);
        assert.ok(node.alive());

        // Room again: the very next chunk goes through (the failed ones released their lease).
        await unlink(filler);
        const retried = await admin.uploadChunk(id, 2 * MiB, bytes.subarray(2 * MiB, 5 * MiB));
        assert.equal(retried.errors, undefined, `the chunk goes through once there is room: ${JSON.stringify(retried.errors)}`);
        assert.equal(retried.data.uploadChunk.offset, 5 * MiB);
        await sendChunks(admin, id, bytes, 5 * MiB, bytes.length, MiB);
        await completeAndVerify(admin, id, bytes);
        await assertRowsMatchBytes(node, false);
        for (const line of observed) t.diagnostic(line);
        // Last, once the bytes are known to be safe: the client must be able to tell a full or
        // read-only disk (retry later, nothing was stored) from a bug in the server.
        for (const [what, result] of [['disk full', full], ['read-only disk', readOnly]] as const) {
          assert.notEqual(
            result?.errors?.[0].extensions?.code,
            'INTERNAL_SERVER_ERROR',
            `${what}: a clear error, not the masked INTERNAL_SERVER_ERROR "${result?.errors?.[0].message}"`,
          );
        }
      } finally {
        await node?.stop();
        if (dbMounted) await unmount(path.join(dataDir, 'db'));
        await unmount(dataDir);
      }
    });
  });

  describe('two server processes sharing one database and one DATA_DIR', { skip: NEEDS_POSTGRES }, () => {
    const LOCK_TTL = 2;
    let nodes: Instance[];

    before(async () => {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'faults-shared-'));
      cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
      const database = await createTestDatabase();
      cleanups.push(() => database.drop());
      nodes = [];
      for (let i = 0; i < 2; i++) {
        const node = await Instance.launch({ dataDir, databaseUrl: database.url, env: { UPLOAD_LOCK_TTL: String(LOCK_TTL) } });
        cleanups.push(() => node.stop());
        nodes.push(node);
      }
    });

    it('take the chunks of one upload strictly in turn; the other one completes it; both serve the same bytes', { timeout: 60_000 }, async () => {
      const [a, b] = nodes.map((n) => n.admin);
      const chunk = 700 * 1024;
      const bytes = randomFile(9 * chunk + 333);
      const { id } = await a.start('alternate.bin', bytes.length);
      let last = 0;
      for (let offset = 0, i = 0; offset < bytes.length; offset += chunk, i++) {
        const client = i % 2 === 0 ? a : b;
        const end = Math.min(offset + chunk, bytes.length);
        const result = await client.uploadChunk(id, offset, bytes.subarray(offset, end));
        assert.equal(result.errors, undefined, `chunk ${i} on instance ${i % 2}: ${JSON.stringify(result.errors)}`);
        assert.equal(result.data.uploadChunk.offset, end);
        // The other instance sees the new offset at once (the row, not a cache, is the truth).
        assert.equal((await (i % 2 === 0 ? b : a).getUpload(id)).offset, end);
        last = i % 2;
      }
      const completer = last === 0 ? b : a;
      const file = await completeAndVerify(completer, id, bytes);
      // The instance that took the last chunk answers the retried completion with the same File.
      const again = await (last === 0 ? a : b).complete(id, md5(bytes));
      assert.equal(again.errors, undefined, JSON.stringify(again.errors));
      assert.equal(again.data.completeUpload.id, file.id);
      await verifyDownload(a, file.id, bytes);
      await verifyDownload(b, file.id, bytes);
      await assertRowsMatchBytes(nodes[0], false);
    });

    it('20 clients racing one offset across both processes: exactly one wins', { timeout: 60_000 }, async (t) => {
      const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => nodes[i % 2].base.login(ADMIN.username, ADMIN.password)));
      const prefix = randomFile(64 * 1024);
      const size = 300_000;
      const { id } = await clients[0].start('race20-two-processes.bin', prefix.length + size);
      await sendChunks(clients[1], id, prefix, 0, prefix.length, prefix.length);
      const candidates = clients.map(() => randomFile(size));
      const winner = await race(clients, id, prefix.length, candidates, t);
      await completeAndVerify(clients[(winner + 1) % 20], id, Buffer.concat([prefix, candidates[winner]]));
    });

    it('a writer frozen past its lease (SIGSTOP) cannot overwrite the chunk the other process accepted meanwhile', { timeout: 60_000 }, async (t) => {
      const [a, b] = nodes;
      const chunk = 2 * MiB;
      const bytes = randomFile(2 * chunk);
      const junk = randomFile(chunk);
      const { id } = await a.admin.start('frozen-writer.bin', bytes.length);

      // Writer 1, on process A: not quite one write batch (1 MiB) of junk, so it sits in A's memory.
      const w1 = openChunkRequest(a.admin, id, 0);
      const held = MiB - 16 * 1024;
      await sendInPieces(w1, junk.subarray(0, held));
      await sleep(300);
      await assertLeaseHeld(b.admin, id);
      const pid = a.server.child.pid!;
      let rest: Promise<unknown> = Promise.resolve();
      process.kill(pid, 'SIGSTOP'); // a GC pause, a VM suspended, a process swapped out: longer than the lease
      try {
        // The rest of writer 1's junk waits in the socket buffers meanwhile.
        rest = sendInPieces(w1, junk.subarray(held)).then(() => w1.finish()).catch(() => {});
        // Writer 2, on process B, takes over once the frozen writer's lease has run out.
        const resumed = await resume(b.admin, id, bytes, chunk, LOCK_TTL * 1000 + 8000);
        assert.equal(resumed.from, 0);
        t.diagnostic(`process B took the upload over after ${resumed.waited} ms (${resumed.seen.length} UPLOAD_LOCKED)`);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      // Writer 1 wakes up with data to write: it lost its lease and must not write any of it.
      const w1Outcome = await withTimeout(
        rest.then(() => w1.response).then(
          (answer) => `HTTP ${answer.status} ${JSON.stringify(answer.errors?.map((e) => e.extensions?.code) ?? answer.data)}`,
          (err: Error) => `connection closed (${err.message})`,
        ),
        15_000,
        'the woken writer never finished',
      );
      t.diagnostic(`the woken writer: ${w1Outcome}`);
      assert.doesNotMatch(w1Outcome, /"uploadChunk"/, 'the writer that lost its lease is not acknowledged');
      assert.equal((await b.admin.getUpload(id)).offset, chunk, 'the offset is writer 2\'s');
      // The bytes writer 2 was acknowledged for are still on disk, untouched.
      const part = await readFile(a.partPath(id));
      const corrupted = countDiffering(part.subarray(0, chunk), bytes.subarray(0, chunk));

      // Finish either way, to show what a client would get.
      await sendChunks(b.admin, id, bytes, chunk, bytes.length, chunk);
      const done = await a.admin.complete(id, md5(bytes));
      assert.equal(done.errors, undefined, `completeUpload: ${JSON.stringify(done.errors)}`);
      const served = md5((await a.admin.download(`/files/${done.data.completeUpload.id}/content`)).body);
      assert.equal(
        corrupted,
        0,
        `${corrupted} of the ${chunk} bytes of an acknowledged chunk were overwritten by the writer that had lost its lease; ` +
          `completeUpload still accepted md5 ${md5(bytes)} (File.md5 ${done.data.completeUpload.md5}) and the file serves bytes with md5 ${served}`,
      );
      assert.equal(served, md5(bytes), 'the stored file is the source');
    });
  });
});

/** All candidates at once at one offset: exactly one is stored, every other is UPLOAD_LOCKED or OFFSET_MISMATCH. */
async function race(clients: GraphQLClient[], uploadId: string, offset: number, candidates: Buffer[], t: TestContext): Promise<number> {
  const results = await Promise.all(candidates.map((chunk, i) => clients[i].uploadChunk(uploadId, offset, chunk)));
  const codes = results.map((r) => (r.errors ? String(r.errors[0].extensions?.code) : 'ok'));
  const winners = results.flatMap((r, i) => (r.errors ? [] : [i]));
  assert.equal(winners.length, 1, `exactly one chunk wins: ${codes.join(' ')}`);
  const winner = winners[0];
  for (const [i, r] of results.entries()) {
    if (i === winner) continue;
    assert.equal(r.errors?.length, 1, JSON.stringify(r.errors));
    const code = r.errors![0].extensions?.code;
    assert.ok(code === 'UPLOAD_LOCKED' || code === 'OFFSET_MISMATCH', `a losing chunk answers UPLOAD_LOCKED or OFFSET_MISMATCH, not ${code}`);
    if (code === 'OFFSET_MISMATCH') assert.equal(r.errors![0].extensions?.expectedOffset, offset + candidates[winner].length);
  }
  assert.equal(results[winner].data.uploadChunk.offset, offset + candidates[winner].length);
  t.diagnostic(`answers: ${codes.join(' ')}`);
  return winner;
}

function countDiffering(x: Buffer, y: Buffer): number {
  let n = 0;
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) n++;
  return n + Math.abs(x.length - y.length);
}
