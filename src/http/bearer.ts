import type { Request } from 'express';
import type { TokenScope, User } from '../entities';
import { Errors } from '../errors';
import type { Services } from '../services';
import { allows } from '../services/credentials';

/**
 * The user of a plain HTTP request's `Authorization: Bearer <token>` (a login or an access
 * token); UNAUTHENTICATED otherwise, FORBIDDEN for an access token without `scope`.
 */
export async function bearerUser(services: Services, req: Request, howToAuthenticate: string, scope: TokenScope): Promise<User> {
  const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!match) throw Errors.unauthenticated(howToAuthenticate);
  const { user, credential } = await services.auth.authenticate(match[1]);
  if (!allows(credential, scope)) throw Errors.forbidden(`This access token's scopes do not include ${scope}.`);
  return user;
}
