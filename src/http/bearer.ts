import type { Request } from 'express';
import type { User } from '../entities';
import { Errors } from '../errors';
import type { Services } from '../services';

/** The user of a plain HTTP request's `Authorization: Bearer <token>`; UNAUTHENTICATED otherwise. */
export async function bearerUser(services: Services, req: Request, howToAuthenticate: string): Promise<User> {
  const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!match) throw Errors.unauthenticated(howToAuthenticate);
  return services.auth.authenticate(match[1]);
}
