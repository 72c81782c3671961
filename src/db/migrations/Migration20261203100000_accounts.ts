import { Migration } from '@mikro-orm/migrations';

/**
 * Accounts a team can run: users.disabled, login tokens ended one by one (revoked_tokens, kept
 * until the token would have expired) and access tokens for scripts, stored as hashes only.
 */
export class Migration20261203100000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "users" add column "disabled" boolean not null default false;`);

    this.addSql(`create table "revoked_tokens" ("token_id" text not null, "expires_at" timestamptz not null, constraint "revoked_tokens_pkey" primary key ("token_id"));`);
    this.addSql(`create index "revoked_tokens_expires_at_index" on "revoked_tokens" ("expires_at");`);

    this.addSql(`create table "access_tokens" ("id" uuid not null, "user_id" uuid not null, "name" text not null, "scopes" text[] not null, "token_hash" text not null, "created_at" timestamptz not null, "last_used_at" timestamptz null, "expires_at" timestamptz null, constraint "access_tokens_pkey" primary key ("id"));`);
    this.addSql(`create unique index "access_tokens_token_hash_unique" on "access_tokens" ("token_hash");`);
    this.addSql(`create index "access_tokens_user_id_index" on "access_tokens" ("user_id");`);
    this.addSql(`alter table "access_tokens" add constraint "access_tokens_user_id_foreign" foreign key ("user_id") references "users" ("id") on update cascade on delete cascade;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "access_tokens" cascade;`);
    this.addSql(`drop table if exists "revoked_tokens" cascade;`);
    this.addSql(`alter table "users" drop column "disabled";`);
  }
}
