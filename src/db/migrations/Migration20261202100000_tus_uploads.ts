import { Migration } from '@mikro-orm/migrations';

/**
 * What an upload started over tus needs beyond a GraphQL one: a length the client declares
 * later (creation-defer-length), the md5 it declared up front (checked when the last byte
 * lands), and its Upload-Metadata verbatim (HEAD echoes it). And for every upload: a request
 * that asks the lease's holder, on whichever instance, to give it back (a tus client that
 * reconnected after a dropped connection must not wait out the lease of its abandoned request).
 */
export class Migration20261202100000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "chunked_uploads" add column "length_deferred" boolean not null default false;`);
    this.addSql(`alter table "chunked_uploads" add column "expected_md5" text null;`);
    this.addSql(`alter table "chunked_uploads" add column "client_metadata" text null;`);
    this.addSql(`alter table "chunked_uploads" add column "lease_release_requested" boolean not null default false;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "chunked_uploads" drop column "lease_release_requested";`);
    this.addSql(`alter table "chunked_uploads" drop column "client_metadata";`);
    this.addSql(`alter table "chunked_uploads" drop column "expected_md5";`);
    this.addSql(`alter table "chunked_uploads" drop column "length_deferred";`);
  }
}
