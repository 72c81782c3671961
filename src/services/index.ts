import type { MikroORM } from '@mikro-orm/core';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config';
import { GcPacer } from '../gc-pacer';
import type { Md5Pool } from '../hashing/md5-pool';
import { NO_UPLOAD_METRICS, type UploadMetrics } from '../metrics';
import { AuthCache, NO_AUTH_CACHE_METRICS, type AuthCacheMetrics } from './auth-cache';
import type { FileStore } from '../storage/file-store';
import { PartSpool } from '../storage/part-spool';
import { DirectUploadService } from '../uploads/direct-upload.service';
import { FileVerifier } from '../uploads/file-verifier';
import { LeaseRepository } from '../uploads/lease.repository';
import { PartRepository } from '../uploads/part.repository';
import { StreamSlots } from '../uploads/stream-slots';
import { UploadService } from '../uploads/upload.service';
import { AccessTokenService } from './access-token.service';
import { AuthService } from './auth.service';
import { CleanupService } from './cleanup.service';
import { FileService } from './file.service';
import { LoginThrottleService } from './login-throttle.service';
import { QuotaService } from './quota.service';
import { UserAdmin } from './user-admin.service';
import { UserService } from './user.service';

export interface Services {
  config: ServerConfig;
  auth: AuthService;
  /** Principals of recent requests; serves only once the event listener (app.ts) hears its invalidations. */
  authCache: AuthCache;
  cleanup: CleanupService;
  files: FileService;
  quotas: QuotaService;
  uploads: UploadService;
  directUploads: DirectUploadService;
  /** Checks directly uploaded files; started by the server (app.ts), not by CLI commands. */
  verifier: FileVerifier;
  users: UserService;
  userAdmin: UserAdmin;
  accessTokens: AccessTokenService;
}

export function createServices(
  orm: MikroORM,
  store: FileStore,
  md5: Md5Pool,
  config: ServerConfig,
  log: Logger,
  metrics: UploadMetrics & AuthCacheMetrics = { ...NO_UPLOAD_METRICS, ...NO_AUTH_CACHE_METRICS },
): Services {
  const throttle = new LoginThrottleService(orm);
  const authCache = new AuthCache(config.authCacheTtlSeconds * 1000, metrics, log);
  const auth = new AuthService(orm, throttle, config, log, authCache);
  const files = new FileService(orm, store, log);
  const leases = new LeaseRepository(orm, config.uploadLockTtlSeconds, config.uploadTtlSeconds, Boolean(config.databaseUrl));
  const quotas = new QuotaService(orm, log, authCache);
  const verifier = new FileVerifier(orm, store, { leaseSeconds: config.uploadLockTtlSeconds, pollMs: config.verifyPollMs, maxRate: config.verifyMaxRate }, log);
  const directUploads = new DirectUploadService(orm, leases, store, files, verifier, config, log);
  const parts = new PartRepository(orm, config.uploadLockTtlSeconds, config.uploadTtlSeconds);
  // Next to the disk store's own directories: the same volume.
  const spool = new PartSpool(path.join(config.dataDir, 'part-spool'), { fsync: config.chunkFsync });
  const gcPacer = GcPacer.create(config.gcPaceBytes, log);
  const streams = new StreamSlots(config.limits.maxStreamsPerUser);
  const uploads = new UploadService(orm, leases, store, md5, files, quotas, config, log, metrics, directUploads, parts, spool, streams, gcPacer);
  const cleanup = new CleanupService(orm, leases, store, spool, throttle, log);
  return {
    config,
    auth,
    authCache,
    files,
    quotas,
    uploads,
    directUploads,
    verifier,
    users: new UserService(orm, throttle, config.defaultUserQuota, authCache),
    userAdmin: new UserAdmin(orm, uploads, authCache),
    accessTokens: new AccessTokenService(orm, authCache),
    cleanup,
  };
}
