import { Migration } from '@mikro-orm/migrations';

/**
 * Parallel parts (uploadPart): one row per part of an upload in parts that a client has started
 * to send, with the part's own lease (several parts of one upload are written at once) and, once
 * stored, which attempt's spool file holds its bytes, their size and md5. The upload's own row
 * keeps the contiguous prefix (offset, md5 state) as for any upload.
 */
export class Migration20261204000000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "upload_parts" (
      "upload_id" uuid not null references "chunked_uploads" ("id") on delete cascade,
      "part_number" int not null,
      "lease_token" uuid null,
      "lease_expires_at" timestamptz null,
      "lease_generation" int not null default 1,
      "stored_generation" int null,
      "size" bigint null,
      "md5" text null,
      primary key ("upload_id", "part_number")
    );`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "upload_parts";`);
  }
}
