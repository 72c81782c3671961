import path from 'node:path';

/**
 * A reason the server or a command cannot start, said in one line (no stack): the port is taken,
 * the database is unreachable or in use, there is no database where one was expected.
 */
export class StartupError extends Error {}

/** Which database a configuration names, for people: never the password. */
export function describeDatabase(target: { databaseUrl?: string; dataDir: string }): string {
  if (!target.databaseUrl) return `the embedded database at ${path.join(target.dataDir, 'db')}`;
  const url = new URL(target.databaseUrl);
  // A Unix socket directory comes as ?host=/run/postgresql, with no host in the authority.
  const host = url.hostname || url.searchParams.get('host') || 'localhost';
  return `PostgreSQL at ${host}:${url.port || 5432}${url.pathname.length > 1 ? url.pathname : ''}`;
}
