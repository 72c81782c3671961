import type { PGlite } from '@electric-sql/pglite';
import { MikroORM, type Options } from '@mikro-orm/core';
import { Migrator } from '@mikro-orm/migrations';
import { PostgreSqlDriver, type AbstractSqlConnection } from '@mikro-orm/postgresql';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { PGliteConnectionConfig } from 'mikro-orm-pglite';
import { entities } from '../entities';
import { migrations } from './migrations';
import { PostgreSqlConnectionAwareDialect } from './pg-dialect';
import { withStatementCounting } from './pglite-statements';

export interface DatabaseTarget {
  /** A PostgreSQL connection string; unset means the embedded database under dataDir. */
  databaseUrl?: string;
  dataDir: string;
  /** Where MikroORM's own messages (migrations applied, queries in debug) go. */
  log?: (message: string) => void;
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
  close(): Promise<void>;
}

/** Connects and applies every pending migration before anything else touches the schema. */
export async function openDatabase(target: DatabaseTarget): Promise<Database> {
  const { options, embedded } = ormOptions(target);
  const orm = await MikroORM.init(options);
  let applied: string[];
  try {
    applied = await migrate(orm, Boolean(embedded));
  } catch (err) {
    await orm.close(true);
    await embedded?.close();
    throw err;
  }
  return {
    orm,
    applied,
    async close() {
      await orm.close(true);
      // The ORM borrows an injected PGlite and leaves it open.
      await embedded?.close();
    },
  };
}
