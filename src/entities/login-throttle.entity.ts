import { Entity, PrimaryKey, Property } from '@mikro-orm/core';

/**
 * Failed-login bookkeeping, in the database so every server instance sees the same counts
 * (src/services/login-throttle.service.ts). `key` is `pair:<address> <username key>`
 * (consecutive failures), `ip:<address>` or `user:<username key>` (failures in a window).
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

  /** Password checks in progress for this key... */
  @Property({ type: 'integer' })
  pending!: number;

  /** ...which stop counting after this (a check whose outcome was never recorded). */
  @Property({ type: 'datetime', nullable: true })
  pendingUntil?: Date | null;
}
