import type { PGlite } from '@electric-sql/pglite';
import { ConnectionException, MikroORM, type Options } from '@mikro-orm/core';
import { Migrator } from '@mikro-orm/migrations';
import { PostgreSqlDriver, type AbstractSqlConnection } from '@mikro-orm/postgresql';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { PGliteConnectionConfig } from 'mikro-orm-pglite';
import { entities } from '../entities';
import { describeDatabase, StartupError } from '../startup';
import { lockEmbeddedDatabase, type EmbeddedLock } from './embedded-lock';
import { migrations } from './migrations';
import { PostgreSqlConnectionAwareDialect } from './pg-dialect';
import { withStatementCounting } from './pglite-statements';

export interface DatabaseTarget {
  /** A PostgreSQL connection string; unset means the embedded database under dataDir. */
  databaseUrl?: string;
  dataDir: string;
  /** Where MikroORM's own messages (migrations applied, queries in debug) go. */
  log?: (message: string) => void;
  /** PostgreSQL: how long a statement may go unanswered once the migrations have run (see PostgreSqlConnectionAwareDialect). */
  queryTimeoutMs?: number;
}

const shared: Partial<Options> = {
  entities,
  extensions: [Migrator],
  // migrationsList runs them; path is where `npm run migration:create` writes a new one.
  migrations: { migrationsList: migrations, path: './src/db/migrations', emit: 'ts', transactional: true, allOrNothing: true, snapshot: false },
  // Entities are declared with explicit column types, so no TypeScript metadata is read at runtime.
  discovery: { requireEntitiesArray: true },
  allowGlobalContext: false,
  forceUtcTimezone: true,
};

/** Options for the server's own database: PostgreSQL when a URL is given, else PGlite on disk. */
export function ormOptions(target: DatabaseTarget): { options: Options; embedded?: PGlite } {
  if (target.databaseUrl) {
    return {
      options: {
        ...shared,
        driver: PostgreSqlDriver,
        clientUrl: target.databaseUrl,
        // A database name mistyped in DATABASE_URL must fail, not get a new, empty database.
        ensureDatabase: false,
        pool: { min: 0, max: 10 },
        // Merged into knex's options: its dialect, which tells a lost connection by class.
        driverOptions: { client: PostgreSqlConnectionAwareDialect },
        ...loggerOptions(target),
      } as Options,
    };
  }
  // Loaded only here: a server on PostgreSQL keeps PGlite out of its heap.
  const { PGlite } = require('@electric-sql/pglite') as typeof import('@electric-sql/pglite');
  const { PGliteDriver, PGliteKnexDialect } = require('mikro-orm-pglite') as typeof import('mikro-orm-pglite');
  // pg_trgm: the trigram index that files(search:) uses (migration files_name_trgm).
  const { pg_trgm } = require('@electric-sql/pglite/contrib/pg_trgm') as typeof import('@electric-sql/pglite/contrib/pg_trgm');
  const dir = path.join(target.dataDir, 'db');
  mkdirSync(dir, { recursive: true });
  const embedded = new PGlite(dir, { extensions: { pg_trgm } });
  return {
    embedded,
    options: {
      ...shared,
      driver: PGliteDriver,
      dbName: 'postgres',
      driverOptions: {
        // knex's dialect: the library's, with raw SQL split into statements correctly.
        client: withStatementCounting(PGliteKnexDialect),
        connection: { pglite: () => embedded } satisfies PGliteConnectionConfig,
      },
      ...loggerOptions(target),
    } as Options,
  };
}

/** Any constant both instances agree on: the advisory lock that serialises their migrations. */
const MIGRATION_LOCK_ID = 7_305_412_019;

/**
 * Applies pending migrations. Several instances starting at once take turns: a transaction on
 * a connection of its own holds an advisory lock while the migrator works on another.
 */
async function migrate(orm: MikroORM, embedded: boolean): Promise<string[]> {
  const run = async () => (await orm.getMigrator().up()).map((m) => m.name);
  // The embedded database has one connection and one process: nothing to serialise.
  if (embedded) return run();
  const knex = (orm.em.getConnection() as AbstractSqlConnection).getKnex();
  return knex.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?)', [MIGRATION_LOCK_ID]);
    return run();
  });
}

function loggerOptions(target: DatabaseTarget): Partial<Options> {
  return target.log ? { logger: target.log, colors: false } : {};
}

export interface Database {
  orm: MikroORM;
  /** Migrations this start applied (empty when the schema was current). */
  applied: string[];
  /** The embedded database itself (unset on PostgreSQL): its LISTEN/NOTIFY is in-process. */
  embedded?: PGlite;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Who opens it, named to a second opener of the embedded database ("upload-server serve"). */
  command?: string;
  /**
   * Refuse to create the embedded database when there is none: for commands that need existing
   * data, a wrong DATA_DIR (or working directory) would otherwise get a new, empty one.
   */
  mustExist?: boolean;
}

/**
 * Connects and applies every pending migration before anything else touches the schema. The
 * embedded database is locked first (see embedded-lock.ts). Failures to reach it are a
 * StartupError that names the database.
 */
export async function openDatabase(target: DatabaseTarget, open: OpenOptions = {}): Promise<Database> {
  let lock: EmbeddedLock | undefined;
  if (!target.databaseUrl) {
    const dir = path.join(target.dataDir, 'db');
    if (open.mustExist && !existsSync(path.join(dir, 'PG_VERSION'))) {
      throw new StartupError(
        `There is no embedded database at ${dir} (DATA_DIR is ${target.dataDir}): set DATA_DIR to the server's data directory ` +
          '(or DATABASE_URL to its PostgreSQL), or create one with `upload-server migrate` or a first server start.',
      );
    }
    lock = lockEmbeddedDatabase(dir, open.command ?? `node ${path.basename(process.argv[1] ?? '')}`);
  }
  let orm: MikroORM | undefined;
  let embedded: PGlite | undefined;
  try {
    const built = ormOptions(target);
    embedded = built.embedded;
    orm = await MikroORM.init(built.options);
    const applied = await migrate(orm, Boolean(embedded));
    if (!embedded && target.queryTimeoutMs) {
      ((orm.em.getConnection() as AbstractSqlConnection).getKnex().client as PostgreSqlConnectionAwareDialect).armQueryTimeout(target.queryTimeoutMs);
    }
    const opened = orm;
    return {
      orm: opened,
      applied,
      embedded,
      async close() {
        try {
          await opened.close(true);
          // The ORM borrows an injected PGlite and leaves it open (unless something closed it already).
          if (embedded && !embedded.closed) await embedded.close();
        } finally {
          lock?.release();
        }
      },
    };
  } catch (err) {
    await orm?.close(true).catch(() => {});
    await embedded?.close().catch(() => {});
    lock?.release();
    throw unreachable(err, target) ?? err;
  }
}

/** A failure to connect at all, said in one line; undefined for anything else. */
function unreachable(err: unknown, target: DatabaseTarget): StartupError | undefined {
  if (!target.databaseUrl) return undefined;
  const connecting = err instanceof ConnectionException || (err as Error | null)?.name === 'KnexTimeoutError';
  // SQLSTATE class 28 (authentication), 3D000 (no such database): pg reports them as it connects.
  const code = String((err as { code?: unknown } | null)?.code ?? '');
  if (!connecting && !/^28|^3D000$/.test(code)) return undefined;
  if (code === '3D000') {
    const name = decodeURIComponent(new URL(target.databaseUrl).pathname.slice(1));
    return new StartupError(
      `The database ${JSON.stringify(name)} does not exist (${describeDatabase(target)}): check DATABASE_URL, or create it with \`createdb ${name}\`; the server never creates a database.`,
    );
  }
  return new StartupError(`Cannot connect to ${describeDatabase(target)}: ${(err as Error).message}. Is it running, and is DATABASE_URL right?`);
}
