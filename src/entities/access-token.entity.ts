import { ArrayType, Entity, Index, ManyToOne, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';
import { User } from './user.entity';

/** What an access token may do (API.md): READ < UPLOAD < FULL. */
export enum TokenScope {
  READ = 'READ',
  UPLOAD = 'UPLOAD',
  FULL = 'FULL',
}

/**
 * A long-lived credential for scripts. The secret itself is never stored: `tokenHash` is the
 * sha256 of the whole token, which is enough for 256 random bits (nothing to brute-force, unlike
 * a password), and cheap enough to look up on every request.
 */
@Entity({ tableName: 'access_tokens' })
@Index({ properties: ['user'] })
export class AccessToken {
  [OptionalProps]?: 'id' | 'createdAt' | 'lastUsedAt' | 'expiresAt';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => User, { deleteRule: 'cascade' })
  user!: User;

  @Property({ type: 'text' })
  name!: string;

  @Property({ type: ArrayType })
  scopes!: TokenScope[];

  @Property({ type: 'text', unique: 'access_tokens_token_hash_unique', hidden: true })
  tokenHash!: string;

  @Property({ type: 'datetime' })
  createdAt: Date = new Date();

  /** Written at most once a minute per token and instance, not on every request. */
  @Property({ type: 'datetime', nullable: true })
  lastUsedAt?: Date | null;

  @Property({ type: 'datetime', nullable: true })
  expiresAt?: Date | null;
}
