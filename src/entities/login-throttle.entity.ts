import { Entity, PrimaryKey, Property } from '@mikro-orm/core';

/**
 * Failed-login bookkeeping, in the database so every server instance sees the same counts.
 * `key` is `user:<lowercased username>` (consecutive failures) or `ip:<address>` (failures
 * in a window).
 */
@Entity({ tableName: 'login_throttle' })
export class LoginThrottle {
  @PrimaryKey({ type: 'text' })
  key!: string;

  @Property({ type: 'integer' })
  failures!: number;

  @Property({ type: 'datetime' })
  windowStartedAt!: Date;

  @Property({ type: 'datetime' })
  lastFailureAt!: Date;

  @Property({ type: 'datetime', nullable: true })
  blockedUntil?: Date | null;
}
