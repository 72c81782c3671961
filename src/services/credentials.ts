import { createHash, randomBytes } from 'node:crypto';
import { TokenScope, type User } from '../entities';

/**
 * Access tokens start with this, so a secret scanner (or a person reading a CI log) can tell
 * one at a glance, and the server can tell one from a login JWT without parsing it.
 */
export const ACCESS_TOKEN_PREFIX = 'ucs_';
/** The prefix and 32 random bytes in base64url. */
const ACCESS_TOKEN = /^ucs_[A-Za-z0-9_-]{43}$/;

/** What a request's bearer token is: which one (for logout) and what it may do. */
export type Credential =
  | { kind: 'login'; tokenId: string; expiresAt: Date }
  | { kind: 'access'; tokenId: string; scopes: readonly TokenScope[] };

/** Who a request speaks for, and with which token. */
export interface Principal {
  user: User;
  credential: Credential;
}

export function newAccessTokenSecret(): string {
  return `${ACCESS_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function looksLikeAccessToken(token: string): boolean {
  return token.startsWith(ACCESS_TOKEN_PREFIX);
}

export function isWellFormedAccessToken(token: string): boolean {
  return ACCESS_TOKEN.test(token);
}

/**
 * How an access token (or a login token issued before tokens carried an id) is stored and
 * looked up. A plain sha256 is right here, unlike for passwords: the secret has 256 random
 * bits, so there is nothing to guess, and the lookup runs on every request.
 */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** READ < UPLOAD < FULL: each scope includes the ones before it. */
const RANK: Record<TokenScope, number> = { READ: 0, UPLOAD: 1, FULL: 2 };

/** Whether the credential may do what needs `scope`. A login token may do all its user may. */
export function allows(credential: Credential, scope: TokenScope): boolean {
  if (credential.kind === 'login') return true;
  return credential.scopes.some((granted) => RANK[granted] >= RANK[scope]);
}
