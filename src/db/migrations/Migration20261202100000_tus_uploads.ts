import { Migration } from '@mikro-orm/migrations';

/**
 * What an upload started over tus needs beyond a GraphQL one: a length the client declares
 * later (creation-defer-length), the md5 it declared up front (checked when the last byte
 * lands), and its Upload-Metadata verbatim (HEAD echoes it).
 */
export class Migration20261202100000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "chunked_uploads" add column "length_deferred" boolean not null default false;`);
    this.addSql(`alter table "chunked_uploads" add column "expected_md5" text null;`);
    this.addSql(`alter table "chunked_uploads" add column "client_metadata" text null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "chunked_uploads" drop column "client_metadata";`);
    this.addSql(`alter table "chunked_uploads" drop column "expected_md5";`);
    this.addSql(`alter table "chunked_uploads" drop column "length_deferred";`);
  }
}
