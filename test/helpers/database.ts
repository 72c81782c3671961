import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * A database for one test server. With TEST_DATABASE_URL, a fresh PostgreSQL database is
 * created next to it and dropped afterwards; without, the server runs on its embedded
 * PostgreSQL (PGlite) under its own data directory.
 */
export interface TestDatabase {
  url?: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const base = process.env.TEST_DATABASE_URL;
  if (!base) return { url: undefined, drop: async () => {} };
  const name = `upload_test_${Date.now()}_${randomBytes(4).toString('hex')}`;
  await withAdmin(base, (client) => client.query(`create database "${name}"`));
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => withAdmin(base, (client) => client.query(`drop database if exists "${name}" with (force)`)).then(() => undefined),
  };
}

async function withAdmin<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export const databaseKind = process.env.TEST_DATABASE_URL ? 'postgresql' : 'embedded';

/** Why a test that needs a PostgreSQL server (two processes on one database, or restarting it) is skipped; false with TEST_DATABASE_URL. */
export const NEEDS_POSTGRES = process.env.TEST_DATABASE_URL
  ? false
  : 'needs PostgreSQL (two processes cannot share the embedded database, and it cannot be restarted under a running server): set TEST_DATABASE_URL';
