import type { User } from '../entities';
import { AppError, Errors } from '../errors';
import type { Services } from '../services';

export interface RequestContext {
  services: Services;
  user?: User;
  /** Why the bearer token was refused, reported only where a user is required. */
  authError?: AppError;
}

/** The authenticated user, or UNAUTHENTICATED explaining what was wrong with the token. */
export function requireUser(ctx: RequestContext): User {
  if (ctx.user) return ctx.user;
  throw ctx.authError ?? Errors.unauthenticated();
}

export async function buildContext(services: Services, authorization: string | undefined): Promise<RequestContext> {
  if (!authorization) return { services };
  const match = /^Bearer\s+(\S+)$/i.exec(authorization);
  if (!match) return { services, authError: Errors.unauthenticated('Send the token as "Authorization: Bearer <token>".') };
  try {
    return { services, user: await services.auth.authenticate(match[1]) };
  } catch (err) {
    if (err instanceof AppError) return { services, authError: err };
    throw err;
  }
}
