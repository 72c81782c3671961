import { unwrapResolverError } from '@apollo/server/errors';
import { ConnectionException } from '@mikro-orm/core';
import type { GraphQLFormattedError } from 'graphql';
import type { Logger } from 'pino';
import { AppError } from '../errors';

/** Codes Apollo and graphql-js assign to requests that are malformed before any resolver runs. */
const REQUEST_ERROR_CODES = new Set([
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_USER_INPUT',
  'BAD_REQUEST',
  'OPERATION_RESOLUTION_FAILURE',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
]);

/**
 * The one place errors become `extensions.code`: domain errors keep their code and message,
 * malformed requests keep graphql-js's explanation, anything else is logged and masked so
 * no stack trace or SQL reaches a client.
 */
export function createFormatError(log: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = domainError(error) ?? unwrapResolverError(error);
    if (original instanceof AppError) {
      return { message: original.message, path: formatted.path, locations: formatted.locations, extensions: { ...original.extensions, code: original.code } };
    }
    const code = formatted.extensions?.code;
    if (typeof code === 'string' && REQUEST_ERROR_CODES.has(code)) {
      return { message: formatted.message, locations: formatted.locations, path: formatted.path, extensions: { code } };
    }
    const uploadStatus = multipartErrorStatus(original);
    if (uploadStatus) {
      return {
        message: `The uploaded file could not be read: ${(original as Error).message}`,
        path: formatted.path,
        extensions: { code: uploadStatus === 413 ? 'PAYLOAD_TOO_LARGE' : 'BAD_USER_INPUT' },
      };
    }
    if (isDatabaseUnavailable(original)) {
      log.warn({ err: original, path: formatted.path }, 'the database is unavailable');
      return {
        message: 'The database is unavailable right now. Nothing was changed: retry in a few seconds.',
        path: formatted.path,
        extensions: { code: 'SERVICE_UNAVAILABLE' },
      };
    }
    log.error({ err: original, path: formatted.path }, 'unexpected error in a GraphQL request');
    return { message: 'Internal server error. It has been logged.', path: formatted.path, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
  };
}

/** The AppError behind a GraphQL error, however deeply Apollo or graphql-js wrapped it. */
function domainError(error: unknown): AppError | undefined {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    if (current instanceof AppError) return current;
    current = (current as { originalError?: unknown }).originalError;
  }
  return undefined;
}

/** PostgreSQL gone or restarting: connection errors (class 08), shutdown (57P0x), refused sockets. */
function isDatabaseUnavailable(error: unknown): boolean {
  if (error instanceof ConnectionException) return true;
  const { code, sqlState, message } = (error ?? {}) as { code?: string; sqlState?: string; message?: string };
  const state = sqlState ?? code ?? '';
  return (
    /^08|^57P0/.test(state) ||
    ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(code ?? '') ||
    /Connection terminated|Unable to acquire a connection|terminating connection/i.test(message ?? '')
  );
}

/**
 * graphql-upload-minimal rejects an Upload argument with an HTTP error (a file the map names
 * but the request never sent, say); type-graphql awaits Upload arguments before the resolver
 * runs, so these arrive here rather than in the upload service.
 */
function multipartErrorStatus(error: unknown): number | undefined {
  const { status, expose } = (error ?? {}) as { status?: unknown; expose?: unknown };
  return expose === true && typeof status === 'number' && status >= 400 && status < 500 ? status : undefined;
}
