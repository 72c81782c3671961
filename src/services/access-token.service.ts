import type { MikroORM } from '@mikro-orm/core';
import { AccessToken, TokenScope, type User } from '../entities';
import { Errors } from '../errors';
import type { AuthCache } from './auth-cache';
import { newAccessTokenSecret, tokenHash } from './credentials';
import { isUuid } from './validation';

const MAX_NAME_LENGTH = 100;
const MAX_EXPIRY_DAYS = 3650;
/** Enough for every script and CI job of one person; a bound on what one account can pile up. */
const MAX_TOKENS_PER_USER = 100;
const DAY_MS = 24 * 60 * 60 * 1000;

/** Access tokens for scripts: created (the secret shown once), listed and revoked by their owner. */
export class AccessTokenService {
  constructor(
    private readonly orm: MikroORM,
    /** Told at once, so this instance's next request sees the change (others hear the notification). */
    private readonly authCache?: AuthCache,
  ) {}

  async create(user: User, input: { name: string; scopes: TokenScope[]; expiresInDays?: number | null }): Promise<{ token: string; accessToken: AccessToken }> {
    const name = input.name.trim().normalize('NFC');
    if (name.length === 0 || name.length > MAX_NAME_LENGTH || /\p{Cc}/u.test(name)) {
      throw Errors.badInput(`name must be 1 to ${MAX_NAME_LENGTH} printable characters.`);
    }
    const scopes = Object.values(TokenScope).filter((scope) => input.scopes.includes(scope));
    if (scopes.length === 0) throw Errors.badInput('scopes must name at least one of READ, UPLOAD, FULL.');
    const days = input.expiresInDays;
    if (days != null && (!Number.isInteger(days) || days < 1 || days > MAX_EXPIRY_DAYS)) {
      throw Errors.badInput(`expiresInDays must be 1 to ${MAX_EXPIRY_DAYS}, or null for a token that does not expire.`);
    }
    const em = this.orm.em.fork();
    if ((await em.count(AccessToken, { user: user.id })) >= MAX_TOKENS_PER_USER) {
      throw Errors.badInput(`You have ${MAX_TOKENS_PER_USER} access tokens, the most allowed: revoke one first.`);
    }
    const token = newAccessTokenSecret();
    const now = new Date();
    const accessToken = em.create(AccessToken, {
      user: user.id,
      name,
      scopes,
      tokenHash: tokenHash(token),
      createdAt: now,
      expiresAt: days == null ? null : new Date(now.getTime() + days * DAY_MS),
    });
    await em.flush();
    return { token, accessToken };
  }

  /** The user's tokens, newest first, expired ones included (until revoked). */
  async listMine(user: User): Promise<AccessToken[]> {
    return this.orm.em.fork().find(AccessToken, { user: user.id }, { orderBy: { createdAt: 'desc', id: 'desc' } });
  }

  /** One of the user's own tokens; anyone else's is NOT_FOUND, admins included. */
  async revoke(user: User, id: string): Promise<void> {
    const deleted = isUuid(id) ? await this.orm.em.fork().nativeDelete(AccessToken, { id, user: user.id }) : 0;
    if (deleted === 0) throw Errors.notFound('Access token');
    this.authCache?.invalidateUser(user.id);
  }
}
