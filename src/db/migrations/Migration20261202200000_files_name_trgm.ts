import { Migration } from '@mikro-orm/migrations';

/**
 * A trigram index for files(search:), a substring match (`lower(name) like '%term%'`) that no
 * b-tree can serve: without it every search reads the whole table. pg_trgm is part of
 * PostgreSQL's contrib and a trusted extension (the database's owner may create it); the
 * embedded PGlite loads it too (src/db/orm.ts). Where the extension is missing or may not be
 * created, the index is left out and searches still work, only without it.
 */
export class Migration20261202200000 extends Migration {
  override async up(): Promise<void> {
    const [row] = await this.execute(
      `select exists (select 1 from pg_extension where extname = 'pg_trgm')
           or (exists (select 1 from pg_available_extensions where name = 'pg_trgm')
               and ((select rolsuper from pg_roles where rolname = current_user)
                    or has_database_privilege(current_user, current_database(), 'CREATE'))) as possible`,
    );
    if (!row?.possible) return;
    this.addSql(`create extension if not exists pg_trgm;`);
    this.addSql(`create index if not exists "files_name_trgm" on "files" using gin (lower("name") gin_trgm_ops);`);
  }

  override async down(): Promise<void> {
    // The extension stays: other tables of the database may use it.
    this.addSql(`drop index if exists "files_name_trgm";`);
  }
}
