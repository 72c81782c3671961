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
