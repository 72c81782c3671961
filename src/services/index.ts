import type { MikroORM } from '@mikro-orm/core';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config';
import { GcPacer } from '../gc-pacer';
import type { Md5Pool } from '../hashing/md5-pool';
import { NO_UPLOAD_METRICS, type UploadMetrics } from '../metrics';
import type { FileStore } from '../storage/file-store';
import { LeaseRepository } from '../uploads/lease.repository';
import { UploadService } from '../uploads/upload.service';
import { AuthService } from './auth.service';
import { CleanupService } from './cleanup.service';
import { FileService } from './file.service';
import { LoginThrottleService } from './login-throttle.service';
import { QuotaService } from './quota.service';
import { UserService } from './user.service';

export interface Services {
  config: ServerConfig;
  auth: AuthService;
  cleanup: CleanupService;
  files: FileService;
  quotas: QuotaService;
  uploads: UploadService;
  users: UserService;
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
  const leases = new LeaseRepository(orm, config.uploadLockTtlSeconds, config.uploadTtlSeconds);
  const quotas = new QuotaService(orm, log);
  const uploads = new UploadService(orm, leases, store, md5, files, quotas, config, log, metrics, GcPacer.create(config.gcPaceBytes, log));
  const cleanup = new CleanupService(orm, leases, store, throttle, log);
  return { config, auth, files, quotas, uploads, users: new UserService(orm, throttle, config.defaultUserQuota), cleanup };
}
