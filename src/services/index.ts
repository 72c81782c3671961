import type { MikroORM } from '@mikro-orm/core';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config';
import { GcPacer } from '../gc-pacer';
import type { Md5Pool } from '../hashing/md5-pool';
import { NO_UPLOAD_METRICS, type UploadMetrics } from '../metrics';
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
  metrics: UploadMetrics = NO_UPLOAD_METRICS,
): Services {
  const throttle = new LoginThrottleService(orm);
  const auth = new AuthService(orm, throttle, config, log);
  const files = new FileService(orm, store, log);
  const leases = new LeaseRepository(orm, config.uploadLockTtlSeconds, config.uploadTtlSeconds, Boolean(config.databaseUrl));
  const quotas = new QuotaService(orm, log);
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
    files,
    quotas,
    uploads,
    directUploads,
    verifier,
    users: new UserService(orm, throttle, config.defaultUserQuota),
    userAdmin: new UserAdmin(orm, uploads),
    accessTokens: new AccessTokenService(orm),
    cleanup,
  };
}
