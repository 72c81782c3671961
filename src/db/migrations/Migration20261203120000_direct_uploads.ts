import { Migration } from '@mikro-orm/migrations';

/**
 * Direct uploads to object storage and the files the server verifies after them:
 * - chunked_uploads.part_size (null: a plain sequential upload) and .direct (the client PUTs the
 *   parts to the bucket itself);
 * - files.status (every existing file is READY) and .status_reason;
 * - the unique name index leaves REJECTED files out, so a rejected file frees its name;
 * - file_verifications: the durable job queue of files to read and check once, claimed with a
 *   lease (`FOR UPDATE SKIP LOCKED`), so any instance may run a job and a dead one's job is
 *   taken over when its lease runs out.
 */
export class Migration20261203120000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "chunked_uploads" add column "part_size" bigint null, add column "direct" boolean not null default false;`);
    this.addSql(`alter table "files" add column "status" text not null default 'READY', add column "status_reason" text null;`);
    this.addSql(`alter table "files" add constraint "files_status_check" check ("status" in ('VERIFYING', 'READY', 'REJECTED'));`);
    this.addSql(`drop index if exists "files_name_lower_unique";`);
    this.addSql(`create unique index "files_name_lower_unique" on "files" (lower("name")) where "status" <> 'REJECTED';`);
    this.addSql(`create table "file_verifications" (
      "file_id" uuid not null primary key references "files" ("id") on delete cascade,
      "expected_md5" text not null,
      "attempts" int not null default 0,
      "lease_token" uuid null,
      "lease_expires_at" timestamptz null,
      "created_at" timestamptz not null default now(),
      "finished_at" timestamptz null,
      "last_error" text null
    );`);
    // The claim's search: unfinished jobs, oldest first.
    this.addSql(`create index "file_verifications_pending_index" on "file_verifications" ("created_at") where "finished_at" is null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "file_verifications";`);
    this.addSql(`drop index if exists "files_name_lower_unique";`);
    this.addSql(`delete from "files" where "status" = 'REJECTED';`);
    this.addSql(`create unique index "files_name_lower_unique" on "files" (lower("name"));`);
    this.addSql(`alter table "files" drop constraint "files_status_check", drop column "status_reason", drop column "status";`);
    this.addSql(`alter table "chunked_uploads" drop column "direct", drop column "part_size";`);
  }
}
