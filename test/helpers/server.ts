import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createApp, type App } from '../../src/app';
import { loadConfig } from '../../src/config';
import { createTestDatabase, type TestDatabase } from './database';
import { GraphQLClient } from './client';

export const ADMIN = { username: 'admin', password: 'admin-password-for-tests' };

export interface TestServer {
  url: string;
  app: App;
  dataDir: string;
  env: Record<string, string>;
  client: GraphQLClient;
  /** A client logged in as the first admin. */
  admin: GraphQLClient;
  /** Test setup and inspection only: runs SQL on the server's database (`?` placeholders). */
  sql(query: string, params?: unknown[]): Promise<any[]>;
  /** Stops the server and starts a new one on the same data directory and database. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The real server on a real HTTP port, its own data directory and its own database.
 * `env` overrides configuration exactly as environment variables would.
 */
export async function startServer(env: Record<string, string> = {}): Promise<TestServer> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'upload-test-'));
  const database: TestDatabase = await createTestDatabase();
  const fullEnv: Record<string, string> = {
    NODE_ENV: 'test',
    DATA_DIR: dataDir,
    ADMIN_USERNAME: ADMIN.username,
    ADMIN_PASSWORD: ADMIN.password,
    CHUNK_FSYNC: 'false',
    CLEANUP_INTERVAL: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...(database.url ? { DATABASE_URL: database.url } : {}),
    ...env,
  };
  const boot = async () => {
    const config = loadConfig(fullEnv);
    const app = await createApp(config, pino({ level: config.logLevel }));
    return { app, url: await app.listen(0, '127.0.0.1') };
  };

  let running = await boot();
  const target = { url: running.url };
  const client = new GraphQLClient(target);
  const admin = await client.login(ADMIN.username, ADMIN.password);
  const server: TestServer = {
    url: running.url,
    app: running.app,
    dataDir,
    env: fullEnv,
    client,
    admin,
    sql: (query, params = []) => server.app.database.orm.em.getConnection().execute(query, params),
    async restart() {
      await running.app.close();
      running = await boot();
      server.url = running.url;
      server.app = running.app;
      target.url = running.url;
    },
    async close() {
      await running.app.close();
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}

/**
 * Several servers started side by side (booting is most of a file's run time), in the order of
 * `envs`. If one fails to start, the others are closed and the failure is thrown.
 */
export async function startServers(...envs: Record<string, string>[]): Promise<TestServer[]> {
  const started = await Promise.allSettled(envs.map((env) => startServer(env)));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((s) => s.status === 'fulfilled' && s.value.close()));
    throw failed.reason;
  }
  return started.map((s) => (s as PromiseFulfilledResult<TestServer>).value);
}

/**
 * The server in this process over `env` (an environment as a user would give it: its DATA_DIR
 * and database), until `work` is done; for tests that also run CLI commands on the same data.
 */
export async function withServer(env: Record<string, string>, work: (client: GraphQLClient) => Promise<void>): Promise<void> {
  const app = await createApp(loadConfig({ ...env, LOG_LEVEL: 'silent' }), pino({ level: 'silent' }));
  try {
    await work(GraphQLClient.for(await app.listen(0, '127.0.0.1')));
  } finally {
    await app.close();
  }
}
