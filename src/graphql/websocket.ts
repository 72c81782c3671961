import { GraphQLError, Kind, parse, specifiedRules, validate, type DocumentNode, type GraphQLSchema, type ValidationRule } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import type http from 'node:http';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { Principal } from '../services/credentials';
import { AppError } from '../errors';
import type { EventHub } from '../events/event-hub';
import type { Services } from '../services';
import type { RequestContext } from './context';
import { createFormatError } from './format-error';

/** A client message larger than this is refused (a subscription document and its variables are small). */
const MAX_MESSAGE_BYTES = 64 * 1024;
/** Subscriptions one connection may hold at once. */
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 100;
/** graphql-ws's Forbidden: the token was refused. */
const FORBIDDEN = 4403;

export interface SubscriptionServer {
  /** Closes every connection (their subscriptions end) and stops accepting new ones. */
  dispose(): Promise<void>;
}

/**
 * GraphQL subscriptions over WebSocket at /graphql, on the HTTP server itself: the
 * graphql-transport-ws protocol of the graphql-ws library, on `ws`. The token goes in
 * connectionParams.authorization (`Bearer <jwt>`) and is checked as the HTTP API checks it,
 * at connection_init: a missing, bad or revoked token closes the socket (4403 Forbidden); then
 * again every SUBSCRIPTION_TOKEN_RECHECK seconds while it is open, so a token revoked since ends
 * its subscriptions.
 * Only subscriptions are served here; queries and mutations go over HTTP, through the API's
 * other guards. The same query limits apply (parse tokens, depth, aliases, cost).
 */
export function serveSubscriptions(options: {
  server: http.Server;
  schema: GraphQLSchema;
  services: Services;
  events: EventHub;
  validationRules: ValidationRule[];
  maxTokens: number;
  /** How often an open connection's token is checked again. */
  tokenRecheckMs: number;
  log: Logger;
}): SubscriptionServer {
  const { schema, services, events, log } = options;
  const formatError = createFormatError(log);
  const format = (errors: readonly GraphQLError[]) => errors.map((error) => formatError(error.toJSON(), error));
  const wss = new WebSocketServer({ server: options.server, path: '/graphql', maxPayload: MAX_MESSAGE_BYTES });
  wss.on('error', (err) => log.warn({ err }, 'the WebSocket server failed'));

  const disposable = useServer<Record<string, unknown> | undefined, { principal: Principal; recheck: NodeJS.Timeout }>(
    {
      schema,
      async onConnect(ctx) {
        const authorization = ctx.connectionParams?.authorization;
        const token = typeof authorization === 'string' ? /^Bearer\s+(\S+)$/i.exec(authorization)?.[1] : undefined;
        if (!token) return false;
        try {
          ctx.extra.principal = await services.auth.authenticate(token);
        } catch (err) {
          if (!(err instanceof AppError)) log.warn({ err }, 'could not check the token of a WebSocket connection');
          return false;
        }
        ctx.extra.recheck = setInterval(async () => {
          try {
            await services.auth.authenticate(token);
          } catch (err) {
            // Only a refusal ends the connection; the database being away for a moment does not.
            if (err instanceof AppError) ctx.extra.socket.close(FORBIDDEN, 'Forbidden: the token is no longer valid');
          }
        }, options.tokenRecheckMs).unref();
        return true;
      },
      onClose(ctx) {
        clearInterval(ctx.extra.recheck);
      },
      onSubscribe(ctx, _id, payload) {
        if (Object.keys(ctx.subscriptions).length > MAX_SUBSCRIPTIONS_PER_CONNECTION) {
          return [new GraphQLError(`At most ${MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions a connection.`, { extensions: { code: 'BAD_REQUEST' } })];
        }
        let document: DocumentNode;
        try {
          document = parse(payload.query, { maxTokens: options.maxTokens });
        } catch (err) {
          return [err instanceof GraphQLError ? withCode(err, 'GRAPHQL_PARSE_FAILED') : new GraphQLError('The query could not be parsed.')];
        }
        const invalid = validate(schema, document, [...specifiedRules, ...options.validationRules]);
        if (invalid.length > 0) return invalid.map((err) => withCode(err, 'GRAPHQL_VALIDATION_FAILED'));
        const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
        const operation = payload.operationName ? operations.find((o) => o.name?.value === payload.operationName) : operations[0];
        if (!operation || operation.operation !== 'subscription') {
          return [new GraphQLError('Only subscriptions go over WebSocket: send queries and mutations over HTTP.', { extensions: { code: 'BAD_REQUEST' } })];
        }
        const context: RequestContext = {
          services,
          events,
          user: ctx.extra.principal?.user,
          credential: ctx.extra.principal?.credential,
          clientAddress: ctx.extra.request.socket.remoteAddress ?? 'unknown',
          bodyComplete: async () => true,
          closeConnection: (code, reason) => ctx.extra.socket.close(code, reason),
        };
        return { schema, document, operationName: payload.operationName, variableValues: payload.variables, contextValue: context };
      },
      onError: (_ctx, _id, _payload, errors) => format(errors),
      onNext: (_ctx, _id, _payload, _args, result) => (result.errors ? { ...result, errors: format(result.errors) } : undefined),
    },
    wss,
  );

  return {
    // Closes every socket (1001, going away) and the WebSocket server; the HTTP server is Apollo's drain's.
    dispose: () => Promise.resolve(disposable.dispose()),
  };
}

function withCode(err: GraphQLError, code: string): GraphQLError {
  return new GraphQLError(err.message, { nodes: err.nodes, source: err.source, positions: err.positions, extensions: { ...err.extensions, code } });
}
