import { Migration } from '@mikro-orm/migrations';

export class Migration20261125020000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "chunked_uploads" add column "storage_state" jsonb null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "chunked_uploads" drop column "storage_state";`);
  }
}
