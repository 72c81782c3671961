import { Migration } from '@mikro-orm/migrations';

/** Leases get a generation, which storage uses to fence off writers that lost theirs. */
export class Migration20261202000000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "chunked_uploads" rename column "lock_token" to "lease_token";`);
    this.addSql(`alter table "chunked_uploads" rename column "lock_expires_at" to "lease_expires_at";`);
    this.addSql(`alter table "chunked_uploads" add column "lease_generation" bigint not null default 0;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "chunked_uploads" drop column "lease_generation";`);
    this.addSql(`alter table "chunked_uploads" rename column "lease_expires_at" to "lock_expires_at";`);
    this.addSql(`alter table "chunked_uploads" rename column "lease_token" to "lock_token";`);
  }
}
