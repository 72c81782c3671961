import type { MikroORM } from '@mikro-orm/core';
import type { Logger } from 'pino';
import { ChunkedUpload, File, FileStatus, UploadStatus } from '../entities';
import type { FileStore } from '../storage/file-store';
import type { PartSpool } from '../storage/part-spool';
import type { LeaseRepository } from '../uploads/lease.repository';
import type { LoginThrottleService } from './login-throttle.service';
import { isUuid } from './validation';

/** Records of finished uploads are kept this long (API.md), so `upload(id)` still answers. */
const FINISHED_RECORD_DAYS = 7;
const SWEEP_BATCH = 500;

export interface CleanupReport {
  /** Uploads past expiresAt, now EXPIRED, whose partial bytes were deleted. */
  expiredUploads: number;
  /** EXPIRED, ABORTED and COMPLETE upload records older than the retention, removed. */
  purgedRecords: number;
  /** Uploads not in progress whose partial bytes (or spooled parts) were deleted. */
  orphanedUploadBytes: number;
  /** Library bytes with no File row and no upload about to publish them, deleted. */
  orphanedFileBytes: number;
}

export type Progress = (message: string) => void;

export class CleanupService {
  constructor(
    private readonly orm: MikroORM,
    private readonly leases: LeaseRepository,
    private readonly store: FileStore,
    private readonly spool: PartSpool,
    private readonly loginThrottle: LoginThrottleService,
    private readonly log: Logger,
  ) {}

  async run(progress: Progress = () => {}): Promise<CleanupReport> {
    const expiredUploads = await this.expireUploads();
    progress(`expired ${expiredUploads} upload(s) and deleted their partial bytes`);
    const purgedRecords = await this.purgeFinishedRecords();
    progress(`removed ${purgedRecords} finished upload record(s) older than ${FINISHED_RECORD_DAYS} days`);
    const orphanedUploadBytes = await this.sweep(this.partialUploadIds(), (ids) => this.uploadsInProgress(ids), async (id) => {
      await this.store.deleteUpload(id);
      await this.spool.deleteUpload(id);
    });
    progress(`deleted ${orphanedUploadBytes} orphaned partial upload(s)`);
    const orphanedFileBytes = await this.sweep(this.store.listFileIds(), (ids) => this.idsWithRowOrPendingUpload(ids), (id) =>
      this.store.deleteFile(id),
    );
    progress(`deleted ${orphanedFileBytes} orphaned stored file(s)`);
    await this.loginThrottle.purgeIdle();
    await this.purgeExpiredRevocations();
    const report = { expiredUploads, purgedRecords, orphanedUploadBytes, orphanedFileBytes };
    this.log.info(report, 'cleanup finished');
    return report;
  }

  /** Logouts of tokens that have expired since need no remembering (logout also drops them). */
  private async purgeExpiredRevocations(): Promise<void> {
    await this.orm.em.getConnection().execute('delete from revoked_tokens where expires_at <= now()');
  }

  /** Marks expired uploads EXPIRED (never one a live writer holds), then drops their bytes. */
  private async expireUploads(): Promise<number> {
    const expired = await this.leases.expireAbandoned();
    for (const upload of expired) {
      await this.store.deleteUpload(upload.id, upload.storageState ?? null);
      await this.spool.deleteUpload(upload.id);
    }
    return expired.length;
  }

  private async purgeFinishedRecords(): Promise<number> {
    const cutoff = new Date(Date.now() - FINISHED_RECORD_DAYS * 86400_000);
    return this.orm.em.fork().nativeDelete(ChunkedUpload, {
      status: { $in: [UploadStatus.EXPIRED, UploadStatus.ABORTED, UploadStatus.COMPLETE] },
      updatedAt: { $lt: cutoff },
    });
  }

  /**
   * Deletes stored bytes whose id the database does not vouch for. The store is listed
   * first and the database asked second, so bytes created after the listing are never seen,
   * and an upload's row always exists before its bytes do.
   */
  private async sweep(
    ids: AsyncIterable<string>,
    known: (ids: string[]) => Promise<Set<string>>,
    remove: (id: string) => Promise<void>,
  ): Promise<number> {
    let removed = 0;
    let batch: string[] = [];
    const flush = async () => {
      const keep = await known(batch);
      for (const id of batch) {
        // Names that are not our ids were not made by us: leave them alone.
        if (!isUuid(id) || keep.has(id)) continue;
        try {
          await remove(id);
          removed++;
        } catch (err) {
          this.log.warn({ err, id }, 'could not delete orphaned bytes; the next cleanup retries');
        }
      }
      batch = [];
    };
    for await (const id of ids) {
      batch.push(id);
      if (batch.length >= SWEEP_BATCH) await flush();
    }
    if (batch.length) await flush();
    return removed;
  }

  /** Every upload with bytes in the store or parts in the spool, once. */
  private async *partialUploadIds(): AsyncIterable<string> {
    const inStore = new Set<string>();
    for await (const id of this.store.listUploadIds()) {
      inStore.add(id);
      yield id;
    }
    for await (const id of this.spool.listUploadIds()) if (!inStore.has(id)) yield id;
  }

  private async uploadsInProgress(ids: string[]): Promise<Set<string>> {
    const rows = await this.orm.em.fork().find(ChunkedUpload, { id: { $in: validIds(ids) }, status: UploadStatus.UPLOADING }, { fields: ['id'] });
    return new Set(rows.map((r) => r.id));
  }

  /**
   * A File row that is not REJECTED (a rejected file's bytes go; if deleting them failed, they
   * go here), or an upload still UPLOADING (a completion that moved the bytes but has not committed).
   */
  private async idsWithRowOrPendingUpload(ids: string[]): Promise<Set<string>> {
    const em = this.orm.em.fork();
    const candidates = validIds(ids);
    const [files, pending] = await Promise.all([
      em.find(File, { id: { $in: candidates }, status: { $ne: FileStatus.REJECTED } }, { fields: ['id'] }),
      em.fork().find(ChunkedUpload, { id: { $in: candidates }, status: UploadStatus.UPLOADING }, { fields: ['id'] }),
    ]);
    return new Set([...files, ...pending].map((r) => r.id));
  }
}

function validIds(ids: string[]): string[] {
  return ids.filter(isUuid);
}
