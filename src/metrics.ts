import type { Request, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AuthCacheMetrics, AuthCacheResult } from './services/auth-cache';
import { withTimeout } from './time-limit';

/** What the upload service tells the metrics: one call per chunk, commit or completion, never per buffer. */
export interface UploadMetrics {
  /** `result`: `ok`, or the refusal's API code in lower case (`offset_mismatch`...), or `error`. */
  chunkFinished(result: string, seconds: number): void;
  bytesCommitted(bytes: number): void;
  uploadCompleted(): void;
}

/** For services built without a server (the CLI): nothing is measured. */
export const NO_UPLOAD_METRICS: UploadMetrics = { chunkFinished() {}, bytesCommitted() {}, uploadCompleted() {} };

/** A scrape waits this long for the database's count of uploads in progress. */
const COUNT_TIMEOUT_MS = 2_000;

/**
 * The server's Prometheus metrics, in a registry of its own (never prom-client's global one):
 * several servers in one process (the tests) each count their own.
 */
export class Metrics implements UploadMetrics, AuthCacheMetrics {
  readonly registry = new Registry();
  private readonly bytesReceived: Counter;
  private readonly chunks: Counter<'result'>;
  private readonly completed: Counter;
  private readonly chunkDuration: Histogram;
  private readonly httpRequests: Counter<'route' | 'status'>;
  private readonly authCacheLookups: Counter<'result'>;

  constructor(options: { countUploadsInProgress: () => Promise<number>; countSubscribers?: () => number; log: Logger }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.bytesReceived = new Counter({
      name: 'upload_bytes_received_total',
      help: 'Bytes of uploads stored and committed (refused chunks count nothing; a cut-off tus PATCH counts the segments it committed).',
      registers,
    });
    this.chunks = new Counter({
      name: 'upload_chunks_total',
      help: 'Chunks received, by result: ok, the refusal code in lower case (offset_mismatch, upload_locked, ...), or error.',
      labelNames: ['result'],
      registers,
    });
    this.completed = new Counter({ name: 'uploads_completed_total', help: 'Uploads completed and filed in the library.', registers });
    this.chunkDuration = new Histogram({
      name: 'upload_chunk_duration_seconds',
      help: 'Time from a chunk reaching the upload service to its answer, refused chunks included.',
      // From a small chunk on a quiet server to a 64 MiB one over a slow link.
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.httpRequests = new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests answered, by route pattern (never a raw path) and status; 499: the client left first.',
      labelNames: ['route', 'status'],
      registers,
    });
    this.authCacheLookups = new Counter({
      name: 'auth_cache_lookups_total',
      help: 'Bearer tokens authenticated, by result: hit (from memory), miss (read from the database), bypass (AUTH_CACHE_TTL=0, or the event listener is not connected).',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['hit', 'miss', 'bypass'] as const) this.authCacheLookups.inc({ result }, 0);
    const { countUploadsInProgress, countSubscribers, log } = options;
    new Gauge({
      name: 'graphql_subscriptions',
      help: 'GraphQL subscriptions (uploadProgress, myUploadsChanged, libraryChanged) open on this instance.',
      registers,
      collect() {
        this.set(countSubscribers?.() ?? 0);
      },
    });
    new Gauge({
      name: 'uploads_in_progress',
      help: 'Uploads in state UPLOADING and not expired, counted in the database at each scrape (all instances together).',
      registers,
      async collect() {
        try {
          this.set(await withTimeout(countUploadsInProgress(), COUNT_TIMEOUT_MS, 'counting uploads in progress'));
        } catch (err) {
          // The rest of the scrape is still worth having; NaN says "unknown" rather than a stale number.
          log.warn({ err }, 'metrics: could not count uploads in progress');
          this.set(Number.NaN);
        }
      },
    });
  }

  chunkFinished(result: string, seconds: number): void {
    this.chunks.inc({ result });
    this.chunkDuration.observe(seconds);
  }

  /** Counted at each commit: a long stream cut off later still counts the segments it stored. */
  bytesCommitted(bytes: number): void {
    if (bytes > 0) this.bytesReceived.inc(bytes);
  }

  uploadCompleted(): void {
    this.completed.inc();
  }

  authCacheLookup(result: AuthCacheResult): void {
    this.authCacheLookups.inc({ result });
  }

  /** Counts every request once it is answered (or its client has gone), by route pattern and status. */
  readonly countRequests: RequestHandler = (req, res, next) => {
    res.once('finish', () => this.httpRequests.inc({ route: routeLabel(req), status: String(res.statusCode) }));
    res.once('close', () => {
      if (!res.writableFinished) this.httpRequests.inc({ route: routeLabel(req), status: '499' });
    });
    next();
  };
}

/**
 * A label from a short fixed list: the pattern of the route that answered (`/files/:id/content`),
 * `/graphql`, or `other` (the browser page's files, unknown paths): never a path with an id in it.
 */
function routeLabel(req: Request): string {
  const pattern = (req.route as { path?: unknown } | undefined)?.path;
  // A router's routes are relative to where it is mounted (/tus/:id, not /:id).
  if (typeof pattern === 'string') return `${req.baseUrl}${req.baseUrl && pattern === '/' ? '/' : pattern}`.replace(/\/\/$/, '/');
  if (req.originalUrl === '/graphql' || req.originalUrl.startsWith('/graphql?') || req.originalUrl.startsWith('/graphql/')) return '/graphql';
  return 'other';
}
