import type { Request } from 'express';
import { GraphQLError } from 'graphql';
import type { User } from '../entities';
import { toDomainError } from '../error-edge';
import { AppError, Errors } from '../errors';
import type { EventHub } from '../events/event-hub';
import type { Services } from '../services';
import type { Credential, Principal } from '../services/credentials';

export interface RequestContext {
  services: Services;
  /** The client's IP address (behind a proxy: as TRUST_PROXY allows). */
  clientAddress: string;
  user?: User;
  /** The token `user` came with: which one (logout) and what it may do (scopes). */
  credential?: Credential;
  /** Why the bearer token was refused, reported only where a user is required. */
  authError?: AppError;
  /**
   * Whether the request's body is read to its end, waiting up to `ms` for its last bytes (a
   * multipart body's closing boundary can trail the file's). Else the answer closes the connection.
   */
  bodyComplete(ms: number): Promise<boolean>;
  /** Subscriptions (WebSocket only): this process's registry of subscribers. */
  events?: EventHub;
  /** Subscriptions: closes the WebSocket (a subscriber too slow for its events). */
  closeConnection?(code: number, reason: string): void;
}

/** The authenticated user, or UNAUTHENTICATED explaining what was wrong with the token. */
export function requireUser(ctx: RequestContext): User {
  if (ctx.user) return ctx.user;
  throw ctx.authError ?? Errors.unauthenticated();
}

/** The token of an authenticated request. */
export function requireCredential(ctx: RequestContext): Credential {
  requireUser(ctx);
  return ctx.credential!;
}

export async function buildContext(services: Services, req: Request): Promise<RequestContext> {
  const base = { services, clientAddress: req.ip ?? req.socket.remoteAddress ?? 'unknown', bodyComplete: (ms: number) => bodyComplete(req, ms) };
  const outcome = await authenticateRequest(services, req);
  if (outcome === undefined) return base;
  if (outcome instanceof AppError) return { ...base, authError: outcome };
  return { ...base, user: outcome.user, credential: outcome.credential };
}

const authenticated = new WeakMap<Request, Promise<Principal | AppError | undefined>>();

/**
 * The request's bearer token checked once (an upload's token is checked before its body is
 * parsed, and the context reuses the answer): who it speaks for, the AppError saying what is
 * wrong with the token, or undefined without one.
 */
export function authenticateRequest(services: Services, req: Request): Promise<Principal | AppError | undefined> {
  let outcome = authenticated.get(req);
  if (!outcome) {
    outcome = checkToken(services, req.headers.authorization);
    authenticated.set(req, outcome);
  }
  return outcome;
}

async function checkToken(services: Services, authorization: string | undefined): Promise<Principal | AppError | undefined> {
  if (!authorization) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(authorization);
  if (!match) return Errors.unauthenticated('Send the token as "Authorization: Bearer <token>".');
  try {
    return await services.auth.authenticate(match[1]);
  } catch (err) {
    if (err instanceof AppError) return err;
    // The token could not be checked (the database is down, say): the whole request fails
    // before it runs, with the error table's HTTP status rather than Apollo's 500. formatError
    // still sees the original failure (and logs it).
    const known = toDomainError(err);
    if (known) throw new GraphQLError(known.message, { originalError: err as Error, extensions: { http: { status: known.httpStatus } } });
    throw err;
  }
}

function bodyComplete(req: Request, ms: number): Promise<boolean> {
  if (req.complete) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (complete: boolean) => {
      clearTimeout(timer);
      req.off('end', onEnd);
      resolve(complete);
    };
    const onEnd = () => done(true);
    const timer = setTimeout(() => done(req.complete), ms);
    req.once('end', onEnd);
  });
}
