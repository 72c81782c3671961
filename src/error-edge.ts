import { ConnectionException } from '@mikro-orm/core';
import { knex } from '@mikro-orm/postgresql';
import type { Response } from 'express';
import type { Logger } from 'pino';
import { AppError, Errors, INTERNAL_ERROR } from './errors';
import { StorageUnavailableError } from './storage/file-store';

/**
 * The edge between the server and its clients: every failure a client is told about goes
 * through here, whether it becomes a GraphQL error (graphql/format-error.ts) or an HTTP answer
 * (downloads, transport errors, refusals before GraphQL runs). Domain errors keep their
 * message and extensions and get the code and status of `ERROR_TABLE`; failures this module
 * recognises become domain errors first; anything else is logged and masked.
 */

/** What a client is told about one failure. */
export interface WireError {
  /** `extensions.code`. */
  code: string;
  message: string;
  /** Further `extensions` (expectedOffset, retryAfter...), without `code`. */
  extensions: Record<string, unknown>;
  status: number;
}

/**
 * The domain error behind `err`, if it is one or a failure we know: the database being down
 * (by class, SQLSTATE or socket errno, never by message text), or a request body the HTTP
 * layer could not read. Undefined for anything else, which the caller masks.
 */
export function toDomainError(err: unknown): AppError | undefined {
  const { domain, innermost } = unwrap(err);
  return domain ?? recognise(innermost);
}

/**
 * Apollo and graphql-js wrap what a resolver threw in `originalError`, sometimes twice: the
 * first AppError on the way down, else the innermost error.
 */
function unwrap(err: unknown): { domain?: AppError; innermost: unknown } {
  let current = err;
  for (let depth = 0; depth < 5; depth++) {
    if (current instanceof AppError) return { domain: current, innermost: current };
    const inner = (current as { originalError?: unknown } | null | undefined)?.originalError;
    if (!inner) break;
    current = inner;
  }
  return { innermost: current };
}

/** A failure that is no AppError but that we know how to explain. */
function recognise(err: unknown): AppError | undefined {
  if (err instanceof StorageUnavailableError) return Errors.storageUnavailable(err.reason);
  if (isDatabaseUnavailable(err)) return Errors.serviceUnavailable();
  return unreadableRequest(err);
}

/**
 * SQLSTATE classes and codes of a PostgreSQL that is gone, going or not there yet:
 * 08 connection exception (08000, 08003, 08006, 08001, 08004, 08P01...);
 * 57P01 admin_shutdown ("terminating connection due to administrator command", also what
 * pg_terminate_backend sends), 57P02 crash_shutdown, 57P03 cannot_connect_now ("the database
 * system is starting up / shutting down"); 53300 too_many_connections.
 */
const UNAVAILABLE_SQLSTATE = /^(08[0-9A-Z]{3}|57P0[123]|53300)$/;

/**
 * Socket errors of a connection to the database that could not be made or was cut: refused or
 * reset while PostgreSQL restarts, unreachable or unresolvable host while its container is
 * replaced.
 */
const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * The database cannot be reached right now:
 * - MikroORM's ConnectionException: what `src/db/pg-dialect.ts` makes of a failure that has
 *   no code of its own but happened on a connection that could not be opened or has ended
 *   (pg's plain `Error('Connection terminated unexpectedly')`);
 * - knex's KnexTimeoutError: no pooled connection within acquireConnectionTimeout, because
 *   connecting hangs or every connection is busy;
 * - a pg/PGlite DatabaseError, or a MikroORM DriverException wrapping one (it copies `code`),
 *   with a SQLSTATE above; a socket errno above.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (err instanceof ConnectionException || err instanceof knex.KnexTimeoutError) return true;
  if (typeof err !== 'object' || err === null) return false;
  const { code, sqlState } = err as { code?: unknown; sqlState?: unknown };
  const state = typeof sqlState === 'string' ? sqlState : code;
  if (typeof state === 'string' && UNAVAILABLE_SQLSTATE.test(state)) return true;
  return typeof code === 'string' && UNAVAILABLE_ERRNO.has(code);
}

/**
 * Body parsers refuse a request with an http-errors error (`status`, `expose`): express.json
 * (bad JSON, too large) and graphql-upload-minimal (a malformed multipart request, a file the
 * map names but the request never sent). Only a 4xx the parser meant to show is recognised.
 */
function unreadableRequest(err: unknown): AppError | undefined {
  const { status, expose, message } = (err ?? {}) as { status?: unknown; expose?: unknown; message?: unknown };
  if (typeof status !== 'number' || status < 400 || status >= 500 || expose === false) return undefined;
  const detail = typeof message === 'string' && message ? message : 'the body is malformed';
  return status === 413 ? Errors.payloadTooLarge(`The request is too large: ${detail}`) : Errors.badInput(`The request could not be read: ${detail}`);
}

/**
 * What to tell the client about `err`: a domain error as the table says, anything else masked
 * as INTERNAL_SERVER_ERROR. Logs what the client is not told (at warn for an unavailable
 * database, which fixes itself; at error for the rest).
 */
export function describeError(err: unknown, log: Logger, context: Record<string, unknown> = {}, what = 'unexpected error'): WireError {
  const { domain, innermost } = unwrap(err);
  const known = domain ?? recognise(innermost);
  if (known) {
    if (!domain && known.code === 'SERVICE_UNAVAILABLE') log.warn({ err: innermost, ...context }, 'the database is unavailable');
    return { code: known.graphqlCode, message: known.message, extensions: known.extensions, status: known.httpStatus };
  }
  log.error({ err: innermost, ...context }, what);
  return { code: INTERNAL_ERROR.graphql, message: INTERNAL_ERROR.message, extensions: {}, status: INTERNAL_ERROR.http };
}

/**
 * Answers a plain HTTP request with a GraphQL-shaped error body, `{ errors: [{ message,
 * extensions: { code, ... } }] }`, so a client reads the same codes everywhere. After the
 * headers went out (a download failing mid-stream) there is nothing to say: the connection is cut.
 */
export function sendHttpError(res: Response, err: unknown, log: Logger, context: Record<string, unknown> = {}, what = 'request failed'): void {
  writeHttpError(res, describeError(err, log, context, what));
}

/** `sendHttpError` for a refusal from the catalogue, which needs no logging. */
export function sendAppError(res: Response, err: AppError): void {
  writeHttpError(res, { code: err.graphqlCode, message: err.message, extensions: err.extensions, status: err.httpStatus });
}

function writeHttpError(res: Response, wire: WireError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // RATE_LIMITED's retryAfter (API.md) is in seconds, as Retry-After wants.
  const retryAfter = wire.extensions.retryAfter;
  if (typeof retryAfter === 'number') res.setHeader('Retry-After', String(retryAfter));
  res.status(wire.status).json({ errors: [{ message: wire.message, extensions: { ...wire.extensions, code: wire.code } }] });
}
