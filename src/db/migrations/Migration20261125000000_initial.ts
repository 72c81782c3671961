import { Migration } from '@mikro-orm/migrations';

export class Migration20261125000000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "users" ("id" uuid not null, "username" text not null, "password_hash" text not null, "is_admin" boolean not null default false, "token_version" int not null default 0, "created_at" timestamptz not null, constraint "users_pkey" primary key ("id"));`);
    this.addSql(`create unique index "users_username_lower_unique" on "users" (lower("username"));`);

    this.addSql(`create table "files" ("id" uuid not null, "name" text not null, "description" text not null default '', "size" bigint not null, "md5" text not null, "mime_type" text null, "uploaded_at" timestamptz not null, "author_id" uuid null, constraint "files_pkey" primary key ("id"));`);
    this.addSql(`create index "files_uploaded_at_id_index" on "files" ("uploaded_at", "id");`);
    this.addSql(`create unique index "files_name_lower_unique" on "files" (lower("name"));`);
    this.addSql(`alter table "files" add constraint "files_author_id_foreign" foreign key ("author_id") references "users" ("id") on update cascade on delete set null;`);

    this.addSql(`create table "chunked_uploads" ("id" uuid not null, "owner_id" uuid not null, "filename" text not null, "description" text not null default '', "mime_type" text null, "total_size" bigint not null, "offset" bigint not null default 0, "md5_state" bytea not null, "status" text check ("status" in ('UPLOADING', 'COMPLETE', 'ABORTED', 'EXPIRED')) not null default 'UPLOADING', "lock_token" uuid null, "lock_expires_at" timestamptz null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "expires_at" timestamptz not null, constraint "chunked_uploads_pkey" primary key ("id"));`);
    this.addSql(`create index "chunked_uploads_status_expires_at_index" on "chunked_uploads" ("status", "expires_at");`);
    this.addSql(`create index "chunked_uploads_owner_id_created_at_index" on "chunked_uploads" ("owner_id", "created_at");`);
    this.addSql(`alter table "chunked_uploads" add constraint "chunked_uploads_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on update cascade on delete cascade;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "chunked_uploads" cascade;`);
    this.addSql(`drop table if exists "files" cascade;`);
    this.addSql(`drop table if exists "users" cascade;`);
  }
}
