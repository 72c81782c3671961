import { Migration } from '@mikro-orm/migrations';

export class Migration20261125010000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "login_throttle" ("key" text not null, "failures" int not null, "window_started_at" timestamptz not null, "last_failure_at" timestamptz not null, "blocked_until" timestamptz null, constraint "login_throttle_pkey" primary key ("key"));`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "login_throttle" cascade;`);
  }
}
