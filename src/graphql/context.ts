import type { Request } from 'express';
import { GraphQLError } from 'graphql';
import type { User } from '../entities';
import { toDomainError } from '../error-edge';
import { AppError, Errors } from '../errors';
import type { Services } from '../services';

export interface RequestContext {
  services: Services;
  /** The client's IP address (behind a proxy: as TRUST_PROXY allows). */
  clientAddress: string;
  user?: User;
  /** Why the bearer token was refused, reported only where a user is required. */
  authError?: AppError;
}

/** The authenticated user, or UNAUTHENTICATED explaining what was wrong with the token. */
export function requireUser(ctx: RequestContext): User {
  if (ctx.user) return ctx.user;
  throw ctx.authError ?? Errors.unauthenticated();
}

export async function buildContext(services: Services, req: Request): Promise<RequestContext> {
  const base = { services, clientAddress: req.ip ?? req.socket.remoteAddress ?? 'unknown' };
  const authorization = req.headers.authorization;
  if (!authorization) return base;
  const match = /^Bearer\s+(\S+)$/i.exec(authorization);
  if (!match) return { ...base, authError: Errors.unauthenticated('Send the token as "Authorization: Bearer <token>".') };
  try {
    return { ...base, user: await services.auth.authenticate(match[1]) };
  } catch (err) {
    if (err instanceof AppError) return { ...base, authError: err };
    // The token could not be checked (the database is down, say): the whole request fails
    // before it runs, with the error table's HTTP status rather than Apollo's 500. formatError
    // still sees the original failure (and logs it).
    const known = toDomainError(err);
    if (known) throw new GraphQLError(known.message, { originalError: err as Error, extensions: { http: { status: known.httpStatus } } });
    throw err;
  }
}
