import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parseByteSize } from './byte-size';
import type { LogFormat } from './logger';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** A whole number from an environment string, with a readable message when it is not one. */
const integer = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`);

const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const envSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    PORT: integer(0, 65535).default(4000),
    HOST: z.string().min(1).default('127.0.0.1'),
    DATABASE_URL: z
      .url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// connection string' })
      .optional(),
    DATA_DIR: z.string().min(1).default('./data'),
    JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
    JWT_TTL: integer(60).default(12 * 3600),
    ADMIN_USERNAME: z.string().trim().min(1).max(64).default('admin'),
    ADMIN_PASSWORD: z.string().min(8, 'must be at least 8 characters').optional(),
    MAX_FILE_SIZE: integer(0).default(100 * GiB),
    MAX_CHUNK_SIZE: integer(1, 4 * GiB).default(64 * MiB),
    UPLOAD_TTL: integer(1).default(86400),
    UPLOAD_LOCK_TTL: integer(2, 3600).default(20),
    BODY_TIMEOUT: integer(1, 3600).default(60),
    DATABASE_QUERY_TIMEOUT: integer(0, 86400).default(60),
    HEADERS_TIMEOUT: integer(1, 600).default(20),
    REQUEST_TIMEOUT: integer(1, 3600).default(30),
    MIN_BODY_RATE: integer(0).default(1024),
    MAX_CONNECTIONS_PER_ADDRESS: integer(0).optional(),
    MAX_STREAMS_PER_USER: integer(0).default(16),
    MAX_UPLOADS_IN_PROGRESS: integer(0).default(1000),
    DEFAULT_USER_QUOTA: z.string().transform((value, ctx) => {
      const bytes = parseByteSize(value);
      if (bytes === undefined) {
        ctx.addIssue({ code: 'custom', message: 'must be a size in bytes, such as 10737418240 or 10GiB (KB, MB, GB: powers of 1000; KiB, MiB, GiB: of 1024)' });
        return z.NEVER;
      }
      return bytes;
    }).optional(),
    CHUNK_FSYNC: booleanFlag.default(true),
    GC_PACE: integer(0, 1024).default(8),
    CLEANUP_INTERVAL: integer(0).default(3600),
    DOWNLOAD_LINK_TTL: integer(1).default(900),
    // SigV4 presigned URLs live at most 7 days.
    DIRECT_URL_TTL: integer(1, 7 * 86400).default(3600),
    VERIFY_POLL_MS: integer(50, 3_600_000).default(2000),
    VERIFY_MAX_RATE: integer(0).default(0),
    SUBSCRIPTION_TOKEN_RECHECK: integer(1, 3600).default(60),
    AUTH_CACHE_TTL: integer(0, 300).default(30),
    GRAPHQL_INTROSPECTION: booleanFlag.optional(),
    GRAPHQL_PLAYGROUND: booleanFlag.optional(),
    FEDERATION: booleanFlag.default(false),
    STORAGE: z.enum(['disk', 's3'], { error: 'must be disk or s3' }).default('disk'),
    S3_ENDPOINT: z.url({ error: 'must be a URL such as http://127.0.0.1:9000' }).optional(),
    S3_PUBLIC_ENDPOINT: z.url({ error: 'must be a URL such as https://s3.example.com' }).optional(),
    S3_REGION: z.string().min(1).default('us-east-1'),
    S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid bucket name (3-63 lowercase letters, digits, dots, hyphens)').optional(),
    S3_PREFIX: z.string().default(''),
    S3_ACCESS_KEY_ID: z.string().min(1).optional(),
    S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
    S3_FORCE_PATH_STYLE: booleanFlag.default(false),
    S3_PART_SIZE: integer(5 * MiB, 5 * GiB).default(8 * MiB),
    CORS_ORIGINS: z.string().optional(),
    TRUST_PROXY: z.string().optional(),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    LOG_FORMAT: z.enum(['json', 'pretty'], { error: 'must be json or pretty' }).optional(),
    METRICS_TOKEN: z
      .string()
      .min(16, 'must be at least 16 characters')
      .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces (it is sent as a bearer token)')
      .optional(),
  })
  .superRefine((env, ctx) => {
    if (env.STORAGE === 's3' && !env.S3_BUCKET) {
      ctx.addIssue({ code: 'custom', path: ['S3_BUCKET'], message: 'is required when STORAGE=s3' });
    }
    if (Boolean(env.S3_ACCESS_KEY_ID) !== Boolean(env.S3_SECRET_ACCESS_KEY)) {
      ctx.addIssue({ code: 'custom', path: ['S3_SECRET_ACCESS_KEY'], message: 'S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together' });
    }
    if (env.NODE_ENV === 'production' && !env.JWT_SECRET) {
      ctx.addIssue({ code: 'custom', path: ['JWT_SECRET'], message: 'is required when NODE_ENV=production' });
    }
  });

export interface Config {
  env: 'development' | 'production' | 'test';
  port: number;
  host: string;
  /** Unset: the embedded PostgreSQL (PGlite) under dataDir. */
  databaseUrl?: string;
  dataDir: string;
  /** JWT_SECRET; unset outside production until `ensureJwtSecret` reads or makes one. */
  jwtSecret?: string;
  jwtTtlSeconds: number;
  admin: { username: string; password?: string };
  maxFileSize: number;
  maxChunkSize: number;
  uploadTtlSeconds: number;
  /** How long a chunk writer's claim on an upload lasts without a heartbeat. */
  uploadLockTtlSeconds: number;
  /** A chunk whose body sends nothing for this long is cut off. */
  bodyTimeoutSeconds: number;
  /** PostgreSQL: a statement unanswered for this long fails and its connection is dropped (0: never). */
  databaseQueryTimeoutSeconds: number;
  /** What one client may hold of the server at once, and how slowly it may send (0: no limit). */
  limits: {
    /** Seconds for a request's headers to arrive. */
    headersTimeoutSeconds: number;
    /** Seconds for the whole body of a request that is not an upload stream (JSON, forms). */
    requestTimeoutSeconds: number;
    /** Bytes a second an upload stream must average over each 10 s, unless the server is the one not reading. */
    minBodyRate: number;
    maxConnectionsPerAddress: number;
    /** Chunks and tus PATCHes one user may stream at once, per instance. */
    maxStreamsPerUser: number;
    maxUploadsInProgress: number;
  };
  /** DEFAULT_USER_QUOTA: the quota in bytes of users created from now on; null: no limit. */
  defaultUserQuota: number | null;
  /** fsync each chunk before its offset is acknowledged. */
  chunkFsync: boolean;
  /** A young-generation GC every this many bytes of chunk data (0: V8 alone decides). */
  gcPaceBytes: number;
  storage: DiskStorageConfig | S3StorageConfig;
  cleanupIntervalSeconds: number;
  downloadLinkTtlSeconds: number;
  /** Direct uploads: how long a presigned part URL stays valid. */
  directUrlTtlSeconds: number;
  /** How often each instance looks for files to verify (it is also woken at once by a completion here). */
  verifyPollMs: number;
  /** Bytes a second one verification reads from the store at most (0: as fast as it answers). */
  verifyMaxRate: number;
  /** Seconds between two checks of an open WebSocket's token (a revoked one closes it). */
  subscriptionTokenRecheckSeconds: number;
  /**
   * How long an authenticated token's principal is served from memory (0: every request asks
   * the database). Changes end it sooner, by notification (services/auth-cache.ts).
   */
  authCacheTtlSeconds: number;
  introspection: boolean;
  /** The Apollo Sandbox landing page at GET /graphql. */
  playground: boolean;
  /** Serve the schema as an Apollo Federation 2 subgraph. */
  federation: boolean;
  /** Origins allowed to call the API from a browser; empty: same origin only. */
  corsOrigins: string[];
  /** Express's `trust proxy`: which proxies may tell the client address (X-Forwarded-For). */
  trustProxy: boolean | number | string;
  logLevel: string;
  /** Unset: readable lines at a terminal outside production, JSON otherwise (logger.ts). */
  logFormat?: LogFormat;
  /** The bearer token GET /metrics requires; unset: /metrics is open. */
  metricsToken?: string;
}

export interface DiskStorageConfig {
  kind: 'disk';
}

export interface S3StorageConfig {
  kind: 's3';
  endpoint?: string;
  region: string;
  bucket: string;
  /** Prepended to every key, so one bucket can hold several deployments. */
  prefix: string;
  forcePathStyle: boolean;
  /** Unset: the SDK's default credential chain (environment, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** The smallest part uploaded (raised for files that would need more than 10,000 parts). */
  partSize: number;
  /** The endpoint clients reach for direct uploads, when it is not `endpoint` (a proxy, a public name). */
  publicEndpoint?: string;
}

/** The configuration a running server uses: the token signing key is known. */
export type ServerConfig = Config & { jwtSecret: string };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/**
 * Settings only a serving process reads (the listener, HTTP, the first admin, timers). The CLI's
 * maintenance commands leave them out, so a bad PORT in a shared environment file cannot block
 * a cleanup or a password reset; they get their defaults there.
 */
const SERVER_ONLY = new Set([
  'PORT', 'HOST', 'CORS_ORIGINS', 'TRUST_PROXY', 'GRAPHQL_INTROSPECTION', 'GRAPHQL_PLAYGROUND', 'FEDERATION',
  'CLEANUP_INTERVAL', 'VERIFY_POLL_MS', 'VERIFY_MAX_RATE', 'DIRECT_URL_TTL', 'BODY_TIMEOUT', 'DATABASE_QUERY_TIMEOUT', 'GC_PACE', 'JWT_TTL', 'DOWNLOAD_LINK_TTL', 'ADMIN_USERNAME', 'ADMIN_PASSWORD',
  'SUBSCRIPTION_TOKEN_RECHECK', 'AUTH_CACHE_TTL',
]);

/** `server`: every setting; `maintenance`: the CLI's commands, which ignore SERVER_ONLY. */
export type ConfigScope = 'server' | 'maintenance';

/**
 * Reads and validates the environment once; every bad value is reported, not just the first.
 * Reads nothing else and writes nothing: the JWT secret kept in DATA_DIR is `ensureJwtSecret`'s.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, scope: ConfigScope = 'server'): Config {
  const blankAsUnset = Object.fromEntries(
    Object.entries(env).filter(([name, v]) => v !== undefined && v !== '' && (scope === 'server' || !SERVER_ONLY.has(name))),
  );
  const parsed = envSchema.safeParse(blankAsUnset);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const e = parsed.data;
  const dataDir = path.resolve(e.DATA_DIR);
  return {
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir,
    jwtSecret: e.JWT_SECRET,
    jwtTtlSeconds: e.JWT_TTL,
    admin: { username: e.ADMIN_USERNAME, password: e.ADMIN_PASSWORD },
    maxFileSize: e.MAX_FILE_SIZE,
    maxChunkSize: e.MAX_CHUNK_SIZE,
    uploadTtlSeconds: e.UPLOAD_TTL,
    uploadLockTtlSeconds: e.UPLOAD_LOCK_TTL,
    bodyTimeoutSeconds: e.BODY_TIMEOUT,
    databaseQueryTimeoutSeconds: e.DATABASE_QUERY_TIMEOUT,
    limits: {
      headersTimeoutSeconds: e.HEADERS_TIMEOUT,
      requestTimeoutSeconds: e.REQUEST_TIMEOUT,
      minBodyRate: e.MIN_BODY_RATE,
      // Behind a proxy every connection comes from the proxy's address: no cap unless asked for.
      maxConnectionsPerAddress: e.MAX_CONNECTIONS_PER_ADDRESS ?? (e.TRUST_PROXY && e.TRUST_PROXY !== 'false' ? 0 : 128),
      maxStreamsPerUser: e.MAX_STREAMS_PER_USER,
      maxUploadsInProgress: e.MAX_UPLOADS_IN_PROGRESS,
    },
    defaultUserQuota: e.DEFAULT_USER_QUOTA ?? null,
    chunkFsync: e.CHUNK_FSYNC,
    gcPaceBytes: e.GC_PACE * MiB,
    storage:
      e.STORAGE === 's3'
        ? {
            kind: 's3',
            endpoint: e.S3_ENDPOINT,
            region: e.S3_REGION,
            bucket: e.S3_BUCKET!,
            prefix: e.S3_PREFIX,
            forcePathStyle: e.S3_FORCE_PATH_STYLE,
            credentials:
              e.S3_ACCESS_KEY_ID && e.S3_SECRET_ACCESS_KEY
                ? { accessKeyId: e.S3_ACCESS_KEY_ID, secretAccessKey: e.S3_SECRET_ACCESS_KEY }
                : undefined,
            partSize: e.S3_PART_SIZE,
            publicEndpoint: e.S3_PUBLIC_ENDPOINT,
          }
        : { kind: 'disk' },
    cleanupIntervalSeconds: e.CLEANUP_INTERVAL,
    downloadLinkTtlSeconds: e.DOWNLOAD_LINK_TTL,
    directUrlTtlSeconds: e.DIRECT_URL_TTL,
    verifyPollMs: e.VERIFY_POLL_MS,
    verifyMaxRate: e.VERIFY_MAX_RATE,
    subscriptionTokenRecheckSeconds: e.SUBSCRIPTION_TOKEN_RECHECK,
    authCacheTtlSeconds: e.AUTH_CACHE_TTL,
    introspection: e.GRAPHQL_INTROSPECTION ?? e.NODE_ENV !== 'production',
    playground: e.GRAPHQL_PLAYGROUND ?? e.NODE_ENV !== 'production',
    federation: e.FEDERATION,
    corsOrigins: (e.CORS_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean),
    trustProxy: parseTrustProxy(e.TRUST_PROXY),
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    metricsToken: e.METRICS_TOKEN,
  };
}

function parseTrustProxy(value: string | undefined): boolean | number | string {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  return /^\d+$/.test(value) ? Number(value) : value;
}

/**
 * The token signing key, a start-up step of the server and the CLI: JWT_SECRET when set (always
 * in production); otherwise one generated on the first start and kept in DATA_DIR/jwt-secret, so
 * tokens survive a restart without anyone having to invent a secret.
 */
export function ensureJwtSecret(config: Config): ServerConfig {
  if (config.jwtSecret) return { ...config, jwtSecret: config.jwtSecret };
  if (config.env === 'production') throw new ConfigError(['JWT_SECRET: is required when NODE_ENV=production']);
  return { ...config, jwtSecret: persistedSecret(config.dataDir) };
}

function persistedSecret(dataDir: string): string {
  const file = path.join(dataDir, 'jwt-secret');
  const existing = readSecret(file);
  if (existing) return existing;
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(48).toString('base64url');
  try {
    writeFileSync(file, secret, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // Another process starting on the same DATA_DIR wrote it first: use theirs.
    const theirs = readSecret(file);
    if (!theirs) throw new ConfigError([`JWT_SECRET: ${file} is empty; delete it or set JWT_SECRET`]);
    return theirs;
  }
  return secret;
}

function readSecret(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return undefined;
  }
}
