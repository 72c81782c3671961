import { Migration } from '@mikro-orm/migrations';

/**
 * Two parts of issue 17 (live progress and quotas).
 *
 * Per-user quotas: `quota_bytes` (null: no limit). What a user uses is summed from the rows that
 * hold it (their files' sizes, their uploads in progress' declared sizes) rather than kept in a
 * counter, so no path that adds or removes a row can leave it wrong; the index makes the files'
 * sum an index scan.
 *
 * Library events: a trigger notifies `library_events` of every insert, update and delete of a
 * file, inside the transaction that makes it (so it goes out on commit only), whichever code
 * makes the change. The row goes along (to_jsonb: columns added later come with it), without a
 * description too long for NOTIFY's 8000 bytes; a `status` column moving to READY or REJECTED is
 * told as such.
 */
export class Migration20261203110000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "users" add column "quota_bytes" bigint null;`);
    this.addSql(`create index "files_author_id_index" on "files" ("author_id");`);
    this.addSql(`create or replace function notify_library_change() returns trigger language plpgsql as $$
      declare
        row_data jsonb;
        kind text := 'UPDATED';
      begin
        if tg_op = 'DELETE' then
          row_data := to_jsonb(old);
          kind := 'DELETED';
        elsif tg_op = 'INSERT' then
          row_data := to_jsonb(new);
          kind := 'ADDED';
        else
          row_data := to_jsonb(new);
          if (row_data->>'status') is distinct from (to_jsonb(old)->>'status') and (row_data->>'status') in ('READY', 'REJECTED') then
            kind := row_data->>'status';
          end if;
        end if;
        if octet_length(coalesce(row_data->>'description', '')) > 4000 then
          row_data := row_data - 'description';
        end if;
        perform pg_notify('library_events', jsonb_build_object('kind', kind, 'file', row_data)::text);
        return null;
      end $$;`);
    this.addSql(`create trigger "files_notify_library" after insert or update or delete on "files"
      for each row execute function notify_library_change();`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop trigger "files_notify_library" on "files";`);
    this.addSql(`drop function notify_library_change();`);
    this.addSql(`drop index "files_author_id_index";`);
    this.addSql(`alter table "users" drop column "quota_bytes";`);
  }
}
