import { Migration } from '@mikro-orm/migrations';

/**
 * The authentication cache's invalidations (services/auth-cache.ts): every change that can end a
 * credential or change the user a request acts as notifies `auth_events`, inside the transaction
 * that makes it (so on commit only), whichever process makes it: the server, another instance, a
 * CLI command, an operator's SQL. Payloads name ids only, never a secret:
 * - any update or delete of a user (disabled, token version bumped, role, quota, password):
 *   `{"userId"}`, so that user's cached principals go;
 * - an access token deleted or changed, `last_used_at` aside (the server writes it once a minute
 *   per token, and it decides nothing): `{"userId"}` of its owner;
 * - a login token revoked (logout): `{"tokenId"}`, its jti (or, for a token without one, the
 *   sha256 the table already holds).
 * Cascaded deletes (a user's access tokens) fire too; PostgreSQL sends identical payloads of one
 * transaction once.
 */
export class Migration20261204100000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create or replace function notify_auth_user_change() returns trigger language plpgsql as $$
      begin
        perform pg_notify('auth_events', json_build_object('userId', old.id)::text);
        return null;
      end $$;`);
    this.addSql(`create trigger "users_notify_auth" after update or delete on "users"
      for each row execute function notify_auth_user_change();`);
    this.addSql(`create or replace function notify_auth_access_token_change() returns trigger language plpgsql as $$
      begin
        perform pg_notify('auth_events', json_build_object('userId', old.user_id)::text);
        return null;
      end $$;`);
    this.addSql(`create trigger "access_tokens_notify_auth_delete" after delete on "access_tokens"
      for each row execute function notify_auth_access_token_change();`);
    this.addSql(`create trigger "access_tokens_notify_auth_update" after update on "access_tokens"
      for each row when ((to_jsonb(old) - 'last_used_at') is distinct from (to_jsonb(new) - 'last_used_at'))
      execute function notify_auth_access_token_change();`);
    this.addSql(`create or replace function notify_auth_token_revoked() returns trigger language plpgsql as $$
      begin
        perform pg_notify('auth_events', json_build_object('tokenId', new.token_id)::text);
        return null;
      end $$;`);
    this.addSql(`create trigger "revoked_tokens_notify_auth" after insert on "revoked_tokens"
      for each row execute function notify_auth_token_revoked();`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop trigger "revoked_tokens_notify_auth" on "revoked_tokens";`);
    this.addSql(`drop function notify_auth_token_revoked();`);
    this.addSql(`drop trigger "access_tokens_notify_auth_update" on "access_tokens";`);
    this.addSql(`drop trigger "access_tokens_notify_auth_delete" on "access_tokens";`);
    this.addSql(`drop function notify_auth_access_token_change();`);
    this.addSql(`drop trigger "users_notify_auth" on "users";`);
    this.addSql(`drop function notify_auth_user_change();`);
  }
}
