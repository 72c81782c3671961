import { Migration } from '@mikro-orm/migrations';

/**
 * The login throttle now counts consecutive failures per (username, address) pair and keeps a
 * windowed budget per username; whether a key is blocked follows from its counts, so
 * blocked_until goes. The old per-username rows counted consecutive failures: they would read
 * as a budget, so they go too (at worst, a username locked at deploy time is unlocked early).
 * `pending` counts password checks in progress (until `pending_until`), so simultaneous
 * attempts cannot slip past a limit.
 */
export class Migration20261202220000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`delete from "login_throttle" where "key" like 'user:%';`);
    this.addSql(`alter table "login_throttle" drop column "blocked_until";`);
    this.addSql(`alter table "login_throttle" add column "pending" int not null default 0, add column "pending_until" timestamptz null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "login_throttle" drop column "pending_until", drop column "pending";`);
    this.addSql(`alter table "login_throttle" add column "blocked_until" timestamptz null;`);
  }
}
