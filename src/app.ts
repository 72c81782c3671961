import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import cors from 'cors';
import express from 'express';
import helmet from 'helmet';
import { graphqlUploadExpress } from 'graphql-upload-minimal';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ensureJwtSecret, type Config } from './config';
import { openDatabase, type Database } from './db/orm';
import { buildContext, type RequestContext } from './graphql/context';
import { drainUnreadUploads, refuseMisplacedUploads } from './graphql/drain-uploads.plugin';
import { InFlightOperations } from './graphql/in-flight.plugin';
import { requireAuthentication } from './graphql/require-auth.plugin';
import { createFormatError } from './graphql/format-error';
import { buildAppSchema } from './graphql/schema';
import { Md5Pool } from './hashing/md5-pool';
import { downloadRouter } from './http/download.route';
import { explorerRouter } from './http/explorer';
import { transportErrorHandler } from './http/graphql-errors';
import { refuseAnonymousUploads } from './http/anonymous-uploads';
import { multipartErrorsAsBadInput } from './http/multipart-errors';
import { requireMultipartPreflight } from './http/multipart-preflight';
import { bodyDeadlines, guardConnections, HTTP_SERVER_OPTIONS } from './http/request-guards';
import { pageSecurityPolicy } from './http/page-security';
import { operationsRouter } from './http/ops.route';
import { createLogger } from './logger';
import { Metrics } from './metrics';
import { EventHub } from './events/event-hub';
import { PGliteListener, PgListener } from './events/listener';
import { serveSubscriptions } from './graphql/websocket';
import { createServices, type Services } from './services';
import { tusRouter } from './tus/tus.route';
import { openStore } from './storage';
import type { FileStore } from './storage/file-store';

const SHUTDOWN_GRACE_MS = 10_000;
const PUBLIC_DIR = path.resolve(__dirname, '../../public');

export interface App {
  readonly server: http.Server;
  readonly services: Services;
  readonly store: FileStore;
  readonly database: Database;
  readonly log: Logger;
  /** This process's subscribers and its one LISTEN connection. */
  readonly events: EventHub;
  /** Starts listening (unless already listening); resolves with the base URL (port 0 picks a free port). */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops taking requests, lets running ones finish, then closes the database. */
  close(): Promise<void>;
}

/**
 * Builds the whole server (JWT secret ensured, database migrated, first admin ensured) without
 * listening yet, or on `options.server`: one already listening (serve binds the port before
 * anything irreversible), whose 'request' listeners the app replaces.
 */
export async function createApp(
  loaded: Config,
  log: Logger = createLogger(loaded.logLevel, { format: loaded.logFormat, production: loaded.env === 'production' }),
  options: { server?: http.Server } = {},
): Promise<App> {
  const config = ensureJwtSecret(loaded);
  const database = await openDatabase(
    {
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      log: (message) => log.info(message),
      queryTimeoutMs: config.databaseQueryTimeoutSeconds * 1000,
    },
    { command: 'the server' },
  );
  try {
    const store = await openStore(config);
    const md5 = new Md5Pool();
    const metrics = new Metrics({ countUploadsInProgress: () => services.uploads.countInProgress(), countSubscribers: () => events.subscriberCount, log });
    const services = createServices(database.orm, store, md5, config, log, metrics);
    await services.auth.ensureAdmin();
    const events = await EventHub.start(
      database.embedded ? new PGliteListener(database.embedded) : new PgListener(config.databaseUrl!, log),
      services,
      log,
    );

    const expressApp = express();
    const server = options.server ?? http.createServer(HTTP_SERVER_OPTIONS);
    server.removeAllListeners('request');
    server.on('request', expressApp);
    guardConnections(server, config.limits, log);

    // Depth, alias, token and cost limits: a hostile query costs a validation pass, not a database.
    const armor = new ApolloArmor({
      maxDepth: { n: 10 },
      maxAliases: { n: 15 },
      // Counted by graphql-js's parser instead (parseOptions below): armor's token check re-parses
      // in a hook where a syntax error becomes an HTTP 500.
      maxTokens: { enabled: false },
      maxDirectives: { n: 20 },
      costLimit: { maxCost: 5000 },
      blockFieldSuggestion: { enabled: config.env === 'production' },
    }).protect();
    const inFlight = new InFlightOperations();
    const schema = config.federation ? await (await import('./graphql/subgraph-schema.js')).buildSubgraphAppSchema() : await buildAppSchema();
    const maxTokens = 2000;
    // Upgrade requests to /graphql: 'upgrade' events never reach express (nor its body
    // deadlines); the connection guards above count their sockets like any other.
    const subscriptions = serveSubscriptions({
      server,
      schema,
      services,
      events,
      validationRules: armor.validationRules,
      maxTokens,
      tokenRecheckMs: config.subscriptionTokenRecheckSeconds * 1000,
      log,
    });
    const apollo = new ApolloServer<RequestContext>({
      schema,
      formatError: createFormatError(log),
      includeStacktraceInErrorResponses: false,
      introspection: config.introspection,
      csrfPrevention: true,
      allowBatchedHttpRequests: false,
      parseOptions: { maxTokens },
      stopOnTerminationSignals: false,
      validationRules: armor.validationRules,
      plugins: [
        ...armor.plugins,
        requireAuthentication,
        refuseMisplacedUploads,
        drainUnreadUploads,
        inFlight.plugin,
        ApolloServerPluginDrainHttpServer({ httpServer: server }),
        // Stopping closes the WebSocket connections too: their subscriptions end.
        { serverWillStart: async () => ({ drainServer: () => subscriptions.dispose() }) },
        // The explorer, when on, is GraphiQL served from this server (http/explorer.ts).
        ApolloServerPluginLandingPageDisabled(),
      ],
    });
    await apollo.start();

    expressApp.disable('x-powered-by');
    // Answers are never cached (GraphQL POSTs), so hashing each one for an ETag is wasted work.
    expressApp.set('etag', false);
    expressApp.set('trust proxy', config.trustProxy);
    expressApp.use(metrics.countRequests);
    // The API serves JSON and attachments, never pages of its own: no CSP to tune here.
    expressApp.use(bodyDeadlines(config.limits, log));
    expressApp.use(helmet({ contentSecurityPolicy: false, crossOriginResourcePolicy: { policy: 'same-site' } }));
    // Before the API's CORS rules: tus has its own headers to allow and expose.
    expressApp.use('/tus', tusRouter(services, config, log));
    if (config.corsOrigins.length > 0) {
      expressApp.use(
        cors({
          origin: config.corsOrigins,
          allowedHeaders: ['authorization', 'content-type', 'apollo-require-preflight', 'range', 'if-none-match'],
          exposedHeaders: ['content-range', 'content-length', 'content-disposition', 'etag'],
          maxAge: 600,
        }),
      );
    }
    expressApp.get('/healthz', async (_req, res) => {
      try {
        await database.orm.em.getConnection().execute('select 1');
        res.json({ status: 'ok' });
      } catch (err) {
        log.warn({ err }, 'health check: the database does not answer');
        res.status(503).json({ status: 'unavailable' });
      }
    });
    expressApp.use(operationsRouter({ database, store, metrics, metricsToken: config.metricsToken, log }));
    expressApp.use(downloadRouter(services, log));
    // The browser client (public/): log in, upload with resume, list, download; and the explorer.
    expressApp.use(pageSecurityPolicy(store.direct ? [store.direct.clientOrigin] : []), express.static(PUBLIC_DIR, { index: 'index.html', maxAge: '5m' }));
    if (config.playground) expressApp.use(explorerRouter());
    expressApp.use(
      '/graphql',
      requireMultipartPreflight,
      refuseAnonymousUploads(services, config.maxChunkSize, config.bodyTimeoutSeconds * 1000),
      // One file per request. No size limit here: the upload service refuses an oversized chunk
      // in API.md's order of precedence, and reads it to its end before answering.
      multipartErrorsAsBadInput(graphqlUploadExpress({ maxFiles: 1 })),
      express.json({ limit: '1mb' }),
      expressMiddleware(apollo, { context: async ({ req }) => buildContext(services, req) }),
    );
    expressApp.use(transportErrorHandler(log));

    const cleanupTimer = scheduleCleanup(services, config, log);
    // Jobs left by a stopped or crashed instance are picked up now.
    services.verifier.start();

    return {
      server,
      services,
      store,
      database,
      log,
      events,
      listen(port = config.port, host = config.host) {
        const url = () => {
          const address = server.address() as AddressInfo;
          const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
          return `http://${shownHost}:${address.port}`;
        };
        if (server.listening) return Promise.resolve(url());
        return new Promise((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, host, () => resolve(url()));
        });
      },
      async close() {
        clearInterval(cleanupTimer);
        await apollo.stop();
        if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
        // Operations whose clients left are still releasing their leases: let them.
        await inFlight.settled(SHUTDOWN_GRACE_MS);
        await services.verifier.stop();
        await services.uploads.close();
        await events.close();
        await md5.close();
        await database.close();
      },
    };
  } catch (err) {
    await database.close();
    throw err;
  }
}

/** Periodic cleanup in the server itself (CLEANUP_INTERVAL seconds; 0 turns it off). */
function scheduleCleanup(services: Services, config: Config, log: Logger): NodeJS.Timeout | undefined {
  if (config.cleanupIntervalSeconds === 0) return undefined;
  let running = false;
  return setInterval(async () => {
    if (running) return;
    running = true;
    try {
      await services.cleanup.run();
    } catch (err) {
      log.error({ err }, 'scheduled cleanup failed; it runs again at the next interval');
    } finally {
      running = false;
    }
  }, config.cleanupIntervalSeconds * 1000).unref();
}
