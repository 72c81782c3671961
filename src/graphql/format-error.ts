import type { GraphQLFormattedError } from 'graphql';
import type { Logger } from 'pino';
import { describeError, toDomainError } from '../error-edge';

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
 * GraphQL's side of the error edge (error-edge.ts): domain errors keep their message and get
 * their code from the table, malformed requests keep graphql-js's explanation, failures we
 * know (the database down, an unreadable upload) become domain errors, anything else is
 * logged and masked so no stack trace or SQL reaches a client.
 */
export function createFormatError(log: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const code = formatted.extensions?.code;
    const domain = toDomainError(error);
    if (!domain && typeof code === 'string' && REQUEST_ERROR_CODES.has(code)) {
      return { message: formatted.message, locations: formatted.locations, path: formatted.path, extensions: { code } };
    }
    const wire = describeError(error, log, { path: formatted.path }, 'unexpected error in a GraphQL request');
    return {
      message: wire.message,
      path: formatted.path,
      ...(domain ? { locations: formatted.locations } : {}),
      extensions: { ...wire.extensions, code: wire.code },
    };
  };
}
