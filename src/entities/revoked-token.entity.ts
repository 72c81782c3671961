import { Entity, Index, PrimaryKey, Property } from '@mikro-orm/core';

/**
 * A login token ended on its own (`logout`) before its expiry. Kept only until the token would
 * have expired anyway, so the table holds the logouts of the last JWT_TTL at most.
 */
@Entity({ tableName: 'revoked_tokens' })
@Index({ properties: ['expiresAt'] })
export class RevokedToken {
  /** The token's `jti` (or, for a token issued before tokens carried one, its sha256). */
  @PrimaryKey({ type: 'text' })
  tokenId!: string;

  @Property({ type: 'datetime' })
  expiresAt!: Date;
}
