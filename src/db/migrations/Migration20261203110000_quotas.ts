import { Migration } from '@mikro-orm/migrations';

/**
 * Per-user quotas: `quota_bytes` (null: no limit). What a user uses is summed from the rows that
 * hold it (their files' sizes, their uploads in progress' declared sizes) rather than kept in a
 * counter, so no path that adds or removes a row can leave it wrong; the index makes the files'
 * sum an index scan.
 */
export class Migration20261203110000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "users" add column "quota_bytes" bigint null;`);
    this.addSql(`create index "files_author_id_index" on "files" ("author_id");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index "files_author_id_index";`);
    this.addSql(`alter table "users" drop column "quota_bytes";`);
  }
}
