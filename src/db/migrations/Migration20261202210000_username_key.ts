import { Migration } from '@mikro-orm/migrations';
import { usernameKey } from '../../services/usernames';

/**
 * users.username_key: the username as login, createUser and the login throttle all compare it
 * (src/services/usernames.ts), computed in JavaScript, replacing the unique index on the
 * database's lower(username), whose folding depends on the database's locale. Existing names
 * that become one under the new comparison (say "ａｌｉｃｅ" and "alice") stop the migration
 * with their names, for an operator to rename one: picking which account keeps the name is not
 * the server's call.
 */
export class Migration20261202210000 extends Migration {
  override async up(): Promise<void> {
    await this.execute(`alter table "users" add column "username_key" text null;`);
    const users = (await this.execute(`select id, username from users order by created_at, id`)) as { id: string; username: string }[];
    const byKey = new Map<string, string>();
    const clashes: string[] = [];
    for (const { id, username } of users) {
      const key = usernameKey(username);
      const holder = byKey.get(key);
      if (holder !== undefined) clashes.push(`"${holder}" and "${username}"`);
      else byKey.set(key, username);
      await this.execute(`update users set username_key = ? where id = ?`, [key, id]);
    }
    if (clashes.length > 0) {
      throw new Error(`These usernames are the same name once compared as login compares them now (NFKC, lower case): ${clashes.join('; ')}. Rename one of each pair (update users set username = ... where username = ...) and start again.`);
    }
    await this.execute(`alter table "users" alter column "username_key" set not null;`);
    await this.execute(`create unique index "users_username_key_unique" on "users" ("username_key");`);
    await this.execute(`drop index if exists "users_username_lower_unique";`);
  }

  override async down(): Promise<void> {
    this.addSql(`create unique index "users_username_lower_unique" on "users" (lower("username"));`);
    this.addSql(`drop index if exists "users_username_key_unique";`);
    this.addSql(`alter table "users" drop column "username_key";`);
  }
}
