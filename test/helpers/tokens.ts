import { randomBytes } from 'node:crypto';
import jwt from 'jsonwebtoken';

/**
 * Tokens a test crafts by hand, to show that only the defect it names makes the server refuse
 * them. `claims` are an access token's: `{ sub: userId, ver: tokenVersion }`.
 */

const now = () => Math.floor(Date.now() / 1000);

/** A secret the server does not know. */
export const randomSecret = (): string => randomBytes(32).toString('base64url');

/** HS256-signed with `secret`, valid for `expiresIn` seconds. */
export function signedToken(claims: object, secret: string, expiresIn = 3600): string {
  return jwt.sign(claims, secret, { algorithm: 'HS256', expiresIn });
}

/** HS256-signed with `secret`, expired an hour ago. */
export function expiredToken(claims: object, secret: string): string {
  return jwt.sign({ ...claims, iat: now() - 7200, exp: now() - 3600 }, secret, { algorithm: 'HS256' });
}

/** `alg: none` and no signature, valid for an hour by its claims. */
export function unsignedToken(claims: object): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ iat: now(), exp: now() + 3600, ...claims })}.`;
}
