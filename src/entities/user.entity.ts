import { BigIntType, Entity, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';
import { usernameKey } from '../services/usernames';

@Entity({ tableName: 'users' })
export class User {
  [OptionalProps]?: 'id' | 'usernameKey' | 'isAdmin' | 'disabled' | 'tokenVersion' | 'createdAt' | 'quotaBytes';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @Property({ type: 'text' })
  username!: string;

  /**
   * `usernameKey(username)`: unique, so "Alice", "alice" and "ａｌｉｃｅ" are one account, and what
   * login looks a user up by.
   */
  @Property({ type: 'text', unique: 'users_username_key_unique', onCreate: (user: User) => usernameKey(user.username) })
  usernameKey!: string;

  @Property({ type: 'text', hidden: true })
  passwordHash!: string;

  @Property({ type: 'boolean' })
  isAdmin: boolean = false;

  /** Out: every token refused, login answered as for a wrong password, until an admin enables it again. */
  @Property({ type: 'boolean' })
  disabled: boolean = false;

  /** Bumped to revoke every token issued before (password change, logoutEverywhere, disabling). */
  @Property({ type: 'integer' })
  tokenVersion: number = 0;

  @Property({ type: 'datetime' })
  createdAt: Date = new Date();

  /** The most the user may store, files and uploads in progress together; null: no limit. */
  @Property({ type: new BigIntType('number'), nullable: true })
  quotaBytes: number | null = null;
}
