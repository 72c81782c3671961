import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after } from 'node:test';
import { GraphQLClient } from './client';
import { createTestDatabase, type TestDatabase } from './database';
import { ADMIN } from './server';

const MAIN = path.resolve(__dirname, '../../src/main.js');

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  /** Log lines so far (JSON from pino), for assertions and for failure messages. */
  logs: string[];
  /** The exit code, once the process has exited (null when a signal ended it). */
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * The compiled server as its own process (`node dist/src/main.js`, or `args` such as the CLI's
 * `serve`), listening on a free port; resolves once it logs that it listens.
 */
export async function spawnServer(env: Record<string, string>, args: string[] = [MAIN]): Promise<ServerProcess> {
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Not left running behind the failed test (it would keep the test file from ending).
      child.kill('SIGKILL');
      reject(new Error(`server did not start:\n${logs.join('\n')}`));
    }, 30_000);
    for (const stream of [child.stdout!, child.stderr!]) {
      readline.createInterface({ input: stream }).on('line', (line) => {
        logs.push(line);
        if (line.includes('"msg":"listening')) {
          clearTimeout(timer);
          resolve(JSON.parse(line).url);
        }
      });
    }
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${logs.join('\n')}`));
    });
  });
  return {
    url,
    child,
    logs,
    exited,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** One secret for every process of a test run, so a token from one instance works on another. */
const JWT_SECRET = randomBytes(32).toString('hex');

/** A server process that can be killed and started again on the same DATA_DIR and database. */
export class ServerInstance {
  server!: ServerProcess;
  /** Every client derived from this one follows the instance across restarts (shared target). */
  readonly base = GraphQLClient.for('http://127.0.0.1:1');
  /** Logged in as the first admin. */
  admin!: GraphQLClient;

  constructor(
    readonly env: Record<string, string>,
    readonly dataDir: string,
    readonly databaseUrl: string | undefined,
  ) {}

  /** Starts `node dist/src/main.js` on `dataDir` and the database (fsync on, cleanup off), and logs in as the admin. */
  static async launch(options: { dataDir: string; databaseUrl?: string; env?: Record<string, string> }): Promise<ServerInstance> {
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
    const instance = new ServerInstance(env, options.dataDir, options.databaseUrl);
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

  /** Kills the process if it still runs and starts a new one; returns how long the start took. */
  async restart(): Promise<number> {
    if (this.alive()) await this.kill();
    const started = Date.now();
    await this.start();
    return Date.now() - started;
  }

  async stop(): Promise<void> {
    if (this.server) await this.server.kill('SIGKILL');
  }

  /** Where the disk store keeps the upload's bytes in progress. */
  /** The part file an upload starts with (a takeover moves its bytes to `<id>.<generation>.part`). */
  partPath(uploadId: string): string {
    return path.join(this.dataDir, 'uploads', `${uploadId}.part`);
  }

  /** The part file that holds the upload's bytes now: the one of the latest takeover, if any. */
  async currentPartPath(uploadId: string): Promise<string> {
    const generations = (await readdir(path.join(this.dataDir, 'uploads')))
      .map((name) => partFileOf(name))
      .filter((part) => part?.uploadId === uploadId)
      .map((part) => part!.generation);
    const latest = Math.max(...generations);
    return latest > 0 ? path.join(this.dataDir, 'uploads', `${uploadId}.${latest}.part`) : this.partPath(uploadId);
  }
}

/**
 * What a test file's server processes need, undone after the file (in reverse order, each
 * failure logged, none skipped). Create it at the top of a file or describe.
 */
export class ProcessFixture {
  private readonly cleanups: (() => Promise<unknown>)[] = [];

  constructor() {
    after(async () => {
      for (const cleanup of this.cleanups.reverse()) await cleanup().catch((err) => console.error('cleanup failed:', err));
    });
  }

  /** Runs `cleanup` after the file. */
  defer(cleanup: () => Promise<unknown>): void {
    this.cleanups.push(cleanup);
  }

  /** A fresh directory under the system's temporary directory, removed afterwards. */
  async tempDir(prefix: string): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
    this.defer(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  /** A fresh database (see createTestDatabase), dropped afterwards. */
  async database(): Promise<TestDatabase> {
    const database = await createTestDatabase();
    this.defer(() => database.drop());
    return database;
  }

  /**
   * The environment a user would give a CLI command or a server process: a fresh DATA_DIR and
   * database, fsync and cleanup off, then `extra`.
   */
  async freshEnv(prefix: string, extra: Record<string, string> = {}): Promise<Record<string, string>> {
    const database = await this.database();
    return {
      NODE_ENV: 'test',
      DATA_DIR: await this.tempDir(prefix),
      CHUNK_FSYNC: 'false',
      CLEANUP_INTERVAL: '0',
      ...(database.url ? { DATABASE_URL: database.url } : {}),
      ...extra,
    };
  }

  /** A server process on its own fresh database and on `dataDir` (default: a fresh one), stopped afterwards. */
  async instance(env: Record<string, string>, dataDir?: string, database?: TestDatabase): Promise<ServerInstance> {
    const dir = dataDir ?? (await this.tempDir('server'));
    const db = database ?? (await this.database());
    const instance = await ServerInstance.launch({ dataDir: dir, databaseUrl: db.url, env });
    this.defer(() => instance.stop());
    return instance;
  }
}

/** `<upload id>.part` (generation 0) or `<upload id>.<generation>.part`, as the disk store names part files. */
export function partFileOf(name: string): { uploadId: string; generation: number } | undefined {
  const match = /^([0-9a-f-]{36})(?:\.(\d+))?\.part$/.exec(name);
  return match ? { uploadId: match[1], generation: Number(match[2] ?? 0) } : undefined;
}
