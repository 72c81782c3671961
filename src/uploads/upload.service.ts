import type { FilterQuery, MikroORM } from '@mikro-orm/core';
import { createMD5 } from 'hash-wasm';
import mime from 'mime-types';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Config } from '../config';
import { File, type User } from '../entities';
import { toDomainError } from '../error-edge';
import { AppError, Errors } from '../errors';
import { PROGRESS_INTERVAL_MS } from '../events/event-hub';
import { ProgressThrottle } from '../events/progress-throttle';
import type { GcPacer } from '../gc-pacer';
import type { Md5Pool } from '../hashing/md5-pool';
import type { UploadMetrics } from '../metrics';
import type { FileService } from '../services/file.service';
import type { QuotaService } from '../services/quota.service';
import { cleanDescription, cleanFilename, cleanMimeType, isUuid, parseMd5, requireByteCount } from '../services/validation';
import type { ChunkWritten, FileStore, StoredUpload, StoreState } from '../storage/file-store';
import { SpooledPartLost, type PartSpool } from '../storage/part-spool';
import { BodySegments, BodyWatch, ChunkInspector, LeaseClock, asStorageRefusal, renewWhileWriting } from './chunk-pipeline';
import { ChunkedUpload, UploadStatus } from './chunked-upload.entity';
import { checkPartSize, type DirectUploadService } from './direct-upload.service';
import type { Claimed, Lease, LeaseRepository } from './lease.repository';
import { MAX_PARTS_AHEAD, PartReceiver } from './part-receiver';
import type { PartRepository } from './part.repository';
import type { StreamSlots } from './stream-slots';

export interface StartUploadInput {
  filename: string;
  /** Ignored when `deferLength`: the size is declared later. */
  totalSize: number;
  description?: string | null;
  mimeType?: string | null;
  /** The whole file's md5, declared now: the upload completes against it when its last byte lands. */
  expectedMd5?: string | null;
  /** tus creation-defer-length: the size comes with a later request. */
  deferLength?: boolean;
  /** tus Upload-Metadata, kept verbatim. */
  clientMetadata?: string | null;
  /** Every part but the last is exactly this many bytes. */
  partSize?: number | null;
  /** Ask for a direct upload (needs partSize): the client PUTs the parts to the object store. */
  direct?: boolean | null;
}

export interface AppendChunkInput {
  uploadId: string;
  offset: number;
  /** The chunk's bytes, still arriving. Read to its end whatever the outcome. */
  body: Readable;
  chunkMd5?: string | null;
}

export interface AppendPartInput {
  uploadId: string;
  /** From 1; every part but the last has the upload's partSize bytes. */
  partNumber: number;
  /** The part's bytes, still arriving. Read to its end whatever the outcome. */
  body: Readable;
  chunkMd5?: string | null;
}

export interface AppendStreamInput {
  uploadId: string;
  offset: number;
  /** The bytes, any length up to what is left of the upload; read as they arrive. */
  body: Readable;
  /** The size of an upload started without one (tus Upload-Length on a deferred upload). */
  declaredLength?: number;
}

interface WritePlan {
  /** Commit as the bytes arrive (a stream of any length) rather than once (a chunk). */
  segmented?: boolean;
  /** The bytes are stored parts of an upload in parts, appended to its prefix (see mergeParts). */
  mergingParts?: boolean;
  expectedChunkMd5?: string;
  declaredLength?: number;
  /**
   * A refused claim asks the upload's holder on another instance to give the lease back, waits
   * for it, and claims once more (a tus client resuming after a dropped connection). Asked only
   * after a refusal: the uncontended stream pays no extra statement.
   */
  askHolderToRelease?: boolean;
}

/** The most uploads `myUploads` returns at once. */
export const MAX_UPLOADS_PAGE = 500;

/** How often a stream renews its lease, so an ask to release reaches it soon. */
const STREAM_RENEW_MS = 1000;
/** How long a request waits for another instance's stream to give the lease back before going on. */
const RELEASE_WAIT_MS = 3000;
const RELEASE_POLL_MS = 100;

/** About how many bytes a long stream commits at a time (see `segmentSize`). */
const STREAM_SEGMENT_BYTES = 32 * 1024 * 1024;

export interface CompleteUploadInput {
  uploadId: string;
  /** The whole file's md5; absent (tus), the one declared at the start, else the server's own. */
  md5?: string;
  description?: string | null;
}

/**
 * The upload lifecycle. No database connection or transaction is held while a body streams:
 * a writer claims the upload's lease (one conditional UPDATE), streams to the store while it
 * renews the lease, then commits the new offset with another conditional UPDATE that only
 * succeeds if it still holds the lease and the offset has not moved.
 */
export class UploadService {
  /** This process's streams (tus PATCHes) by upload id, so a newer request can interrupt an abandoned one. */
  private readonly liveStreams = new Map<string, { stop(): void; done: Promise<void> }>();
  /** uploadProgress's notifications, throttled where they are sent. */
  private readonly progress: ProgressThrottle;
  private readonly partReceiver: PartReceiver;
  /** Merges of stored parts running in this process, by upload id (see mergeInBackground). */
  private readonly merges = new Map<string, { again: boolean; done: Promise<void> }>();

  constructor(
    private readonly orm: MikroORM,
    private readonly leases: LeaseRepository,
    private readonly store: FileStore,
    private readonly md5: Md5Pool,
    private readonly files: FileService,
    private readonly quotas: QuotaService,
    private readonly config: Config,
    private readonly log: Logger,
    private readonly metrics: UploadMetrics,
    private readonly directUploads: DirectUploadService,
    private readonly parts: PartRepository,
    private readonly spool: PartSpool,
    private readonly streams: StreamSlots,
    private readonly gcPacer?: GcPacer,
  ) {
    this.partReceiver = new PartReceiver(orm, parts, spool, streams, config, log, gcPacer);
    this.progress = new ProgressThrottle(PROGRESS_INTERVAL_MS, (err, uploadId) =>
      this.log.warn({ err, uploadId }, 'could not notify the progress of an upload; the next chunk will'),
    );
  }

  /** Stops the trailing progress notifications still waiting and lets merges of parts finish (the server is stopping). */
  async close(): Promise<void> {
    this.progress.close();
    await Promise.all([...this.merges.values()].map((merge) => merge.done));
  }

  async start(owner: User, input: StartUploadInput): Promise<ChunkedUpload> {
    const filename = cleanFilename(input.filename);
    const mimeType = cleanMimeType(input.mimeType);
    const totalSize = input.deferLength ? this.config.maxFileSize : requireByteCount(input.totalSize, 'totalSize');
    const expectedMd5 = input.expectedMd5 == null ? null : parseMd5(input.expectedMd5, 'md5');
    // Granted only where the store takes bytes itself; an empty file has no part to send.
    const direct = Boolean(input.direct) && this.store.direct !== undefined && totalSize > 0;
    const partSize = checkPartSize(input, totalSize, { maxChunkSize: this.config.maxChunkSize, directGranted: direct });
    if (totalSize > this.config.maxFileSize) {
      throw Errors.payloadTooLarge(`totalSize ${totalSize} passes the largest allowed file (${this.config.maxFileSize} bytes).`);
    }
    const em = this.orm.em.fork();
    const { maxUploadsInProgress } = this.config.limits;
    // A soft cap (two starts at once may both pass it by one): it bounds what one user can
    // pile up, it is not a quota.
    if (maxUploadsInProgress > 0 && (await em.count(ChunkedUpload, { owner: owner.id, status: UploadStatus.UPLOADING })) >= maxUploadsInProgress) {
      throw Errors.tooManyUploads(maxUploadsInProgress);
    }
    const md5State = Buffer.from((await createMD5()).init().save());
    // The reservation and the row in one transaction, under the user's row lock (quota.service.ts).
    const upload = await em.transactional(async (tx) => {
      const quota = await this.quotas.lock(tx, owner.id);
      // A deferred length (tus) reserves what the user has left, up to MAX_FILE_SIZE, until the
      // length is declared; that is also the most it may hold meanwhile.
      const reserved = input.deferLength ? Math.min(totalSize, quota.availableBytes) : totalSize;
      if (reserved > quota.availableBytes || (input.deferLength && reserved === 0 && quota.quotaBytes !== null)) {
        throw Errors.quotaExceeded(quota.availableBytes);
      }
      const now = new Date();
      // Inserted as the transaction commits, before any bytes exist: the orphan sweep deletes
      // partial bytes that have no upload row.
      return tx.create(ChunkedUpload, {
        owner: owner.id,
        filename,
        totalSize: reserved,
        description: cleanDescription(input.description ?? ''),
        mimeType: mimeType || mime.lookup(filename) || null,
        lengthDeferred: input.deferLength ?? false,
        expectedMd5,
        partSize,
        direct,
        clientMetadata: input.clientMetadata ?? null,
        md5State,
        createdAt: now,
        updatedAt: now,
        expiresAt: new Date(now.getTime() + this.config.uploadTtlSeconds * 1000),
      });
    });
    try {
      const state = direct ? await this.store.direct!.createDirectUpload(upload.id, partSize!) : await this.store.createUpload(upload.id, upload.totalSize);
      if (state) await em.nativeUpdate(ChunkedUpload, { id: upload.id }, { storageState: state });
      upload.storageState = state ?? upload.storageState;
    } catch (err) {
      await em.nativeDelete(ChunkedUpload, { id: upload.id });
      throw asStorageRefusal(err, 0);
    }
    // The owner's other devices learn of it (myUploadsChanged); chunks tell the rest.
    await this.leases.notifyProgress(upload.id).catch((err: unknown) => this.log.warn({ err, uploadId: upload.id }, 'could not notify a new upload'));
    this.log.info({ uploadId: upload.id, ownerId: owner.id, filename, totalSize: upload.totalSize, direct }, 'upload started');
    return upload;
  }

  /** The chunk size to suggest to clients: what suits the store, within MAX_CHUNK_SIZE. */
  preferredChunkSize(upload: Pick<ChunkedUpload, 'totalSize'>): number {
    return Math.min(this.config.maxChunkSize, this.store.preferredChunkSize(upload.totalSize));
  }

  /** The caller's own upload; anyone else's is NOT_FOUND, admins included. */
  async get(owner: User, uploadId: string): Promise<ChunkedUpload> {
    const upload = isUuid(uploadId) ? await this.orm.em.fork().findOne(ChunkedUpload, { id: uploadId, owner: owner.id }) : null;
    if (!upload) throw Errors.notFound('Upload');
    return upload;
  }

  /** Uploads of these owners changed at or after `since` (any status), the most recently changed first, at most `limit`. */
  changedSince(ownerIds: string[], since: Date, limit: number): Promise<ChunkedUpload[]> {
    if (ownerIds.length === 0) return Promise.resolve([]);
    return this.orm.em.fork().find(ChunkedUpload, { owner: { $in: ownerIds }, updatedAt: { $gte: since } }, { orderBy: { updatedAt: 'desc' }, limit });
  }

  /** The owner's uploads, newest first, `first` at a time after the upload `after` (its id). */
  async listMine(owner: User, { status, first, after }: { status?: UploadStatus | null; first: number; after?: string | null }): Promise<ChunkedUpload[]> {
    if (!Number.isInteger(first) || first < 1 || first > MAX_UPLOADS_PAGE) throw Errors.badInput(`first must be between 1 and ${MAX_UPLOADS_PAGE}.`);
    const em = this.orm.em.fork();
    const where: FilterQuery<ChunkedUpload> = { owner: owner.id, ...(status ? { status } : {}) };
    if (after != null) {
      const cursor = isUuid(after) ? await em.findOne(ChunkedUpload, { id: after, owner: owner.id }) : null;
      if (!cursor) throw Errors.badInput('after must be the id of one of your uploads (the last one of the previous page).');
      where.$or = [{ createdAt: { $lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { $lt: cursor.id } }];
    }
    return em.find(ChunkedUpload, where, { orderBy: { createdAt: 'desc', id: 'desc' }, limit: first });
  }

  /** Uploads in state UPLOADING and not expired, on every instance (the uploads_in_progress gauge). */
  countInProgress(): Promise<number> {
    return this.orm.em.fork().count(ChunkedUpload, { status: UploadStatus.UPLOADING, expiresAt: { $gt: new Date() } });
  }

  /** `appendChunkAtOffset`, measured once per chunk: its result, the bytes it stored, how long it took. */
  appendChunk(owner: User, input: AppendChunkInput): Promise<ChunkedUpload> {
    return this.measured({ from: input.offset }, () => this.appendChunkAtOffset(owner, input));
  }

  /**
   * Appends a body of any length at the stored offset (tus PATCH), measured as one chunk. A
   * stream cut off counts as a failed chunk; the segments it committed count as bytes received.
   */
  appendStream(owner: User, input: AppendStreamInput): Promise<ChunkedUpload> {
    return this.measured({ from: input.offset }, () => this.appendStreamAtOffset(owner, input));
  }

  /**
   * Stores one part of an upload in parts, in any order and alongside its other parts (each part
   * has its own lease), then appends whatever stored parts now follow the upload's contiguous
   * prefix to it: the prefix is hashed in order as it grows, so completion stays O(1).
   */
  appendPart(owner: User, input: AppendPartInput): Promise<ChunkedUpload> {
    return this.measured({ partNumber: input.partNumber }, () => this.appendPartAnywhere(owner, input));
  }

  private async measured(logFields: object, append: () => Promise<ChunkedUpload>): Promise<ChunkedUpload> {
    const started = performance.now();
    try {
      const upload = await append();
      this.metrics.chunkFinished('ok', (performance.now() - started) / 1000);
      this.log.debug({ uploadId: upload.id, ...logFields, offset: upload.offset }, 'chunk stored');
      return upload;
    } catch (err) {
      this.metrics.chunkFinished(toDomainError(err)?.code.toLowerCase() ?? 'error', (performance.now() - started) / 1000);
      throw err;
    }
  }

  /**
   * Appends one chunk at the stored offset (lock → load → expiry → offset → length → write →
   * commit → unlock). A refused chunk is still read to its end before answering, so the
   * client receives the error instead of a reset connection.
   */
  private async appendChunkAtOffset(owner: User, input: AppendChunkInput): Promise<ChunkedUpload> {
    const watch = new BodyWatch(input.body, this.config.bodyTimeoutSeconds * 1000);
    try {
      const offset = requireByteCount(input.offset, 'offset');
      const expectedChunkMd5 = input.chunkMd5 == null ? undefined : parseMd5(input.chunkMd5, 'chunkMd5');
      // An empty chunk is bad input, which outranks every refusal that needs the database.
      if (await watch.endsBeforeFirstByte()) throw Errors.badInput('The chunk is empty: send at least one byte.');
      if (!isUuid(input.uploadId)) throw Errors.notFound('Upload');
      return await this.writeBody(owner, input.uploadId, offset, watch, { expectedChunkMd5 });
    } catch (err) {
      // Up to the largest chunk: more than that is not read (the answer then closes the connection).
      await watch.drain(this.config.maxChunkSize);
      throw err;
    } finally {
      watch.stop();
    }
  }

  private async appendPartAnywhere(owner: User, input: AppendPartInput): Promise<ChunkedUpload> {
    let upload: ChunkedUpload | undefined;
    const watch = new BodyWatch(input.body, this.config.bodyTimeoutSeconds * 1000);
    try {
      const { partNumber } = input;
      if (!Number.isSafeInteger(partNumber) || partNumber < 1) throw Errors.badInput('partNumber must be a whole number, from 1.');
      const expectedChunkMd5 = input.chunkMd5 == null ? undefined : parseMd5(input.chunkMd5, 'chunkMd5');
      if (await watch.endsBeforeFirstByte()) throw Errors.badInput('The part is empty: send its bytes.');
      if (!isUuid(input.uploadId)) throw Errors.notFound('Upload');
      upload = await this.partReceiver.receive(owner, input.uploadId, partNumber, watch, expectedChunkMd5);
    } catch (err) {
      await watch.drain(this.config.maxChunkSize);
      throw err;
    } finally {
      watch.stop();
    }
    const current = upload ?? (await this.get(owner, input.uploadId));
    this.mergeInBackground(owner, current);
    return current;
  }

  /**
   * Appends the upload's stored parts to its prefix after the part's answer: the request does
   * not wait, so a client keeps all its parts in flight while the bytes are hashed and moved.
   * One merge per upload in this process; a part stored meanwhile makes it look again.
   */
  private mergeInBackground(owner: User, upload: ChunkedUpload): void {
    const running = this.merges.get(upload.id);
    if (running) {
      running.again = true;
      return;
    }
    const merge = { again: false, done: Promise.resolve() };
    merge.done = (async () => {
      let latest = upload;
      do {
        merge.again = false;
        latest = await this.mergeParts(owner, latest);
      } while (merge.again);
    })()
      .catch((err: unknown) => {
        // The parts stay stored: the next part or the completion merges again.
        this.log.warn({ err, uploadId: upload.id }, 'could not append stored parts to the upload yet');
      })
      .finally(() => this.merges.delete(upload.id));
    this.merges.set(upload.id, merge);
  }

  /**
   * Appends the stored parts that follow the upload's prefix to it, in order, through the
   * ordinary write path (lease, fencing, md5, storage, commit), then drops their spool files.
   * Whoever holds the upload's lease is merging already: it looks for more parts once it is
   * done, and will find the ones stored meanwhile, so this request need not wait for it.
   */
  private async mergeParts(owner: User, upload: ChunkedUpload): Promise<ChunkedUpload> {
    const partSize = upload.partSize!;
    for (;;) {
      const firstPart = Math.floor(upload.offset / partSize) + 1;
      const run = upload.offset < upload.totalSize ? await this.parts.storedRun(upload.id, firstPart, MAX_PARTS_AHEAD + 1) : [];
      if (run.length === 0) return upload;
      const body = this.spool.readRun(upload.id, run, upload.offset - (firstPart - 1) * partSize);
      const watch = new BodyWatch(body, this.config.bodyTimeoutSeconds * 1000);
      try {
        upload = await this.writeBody(owner, upload.id, upload.offset, watch, { segmented: true, mergingParts: true });
      } catch (err) {
        if (err instanceof SpooledPartLost) {
          this.log.error({ uploadId: upload.id, partNumber: err.part.partNumber, err }, 'a stored part was lost from the spool: it is missing again, for the client to resend');
          await this.parts.forget(upload.id, err.part);
          upload = await this.get(owner, upload.id);
          continue;
        }
        const code = toDomainError(err)?.code;
        if (code !== 'UPLOAD_LOCKED' && code !== 'OFFSET_MISMATCH') throw err;
        upload = await this.get(owner, upload.id);
        if (code === 'UPLOAD_LOCKED') return upload;
        continue;
      } finally {
        watch.stop();
        body.destroy();
      }
      const merged = Math.floor(upload.offset / partSize);
      this.spool.deleteParts(upload.id, run.map((p) => p.partNumber).filter((n) => n <= merged)).catch((err: unknown) => {
        this.log.warn({ err, uploadId: upload.id }, 'could not delete merged parts from the spool; completing or deleting the upload will');
      });
    }
  }

  /** Part numbers of an upload in parts not stored yet, ascending, at most `first`. */
  missingParts(upload: ChunkedUpload, first: number): Promise<number[]> {
    return this.partReceiver.missingParts(upload, first);
  }

  /**
   * Written and committed in segments under one lease, so a cut connection keeps every segment
   * already committed. A newer request for the same upload interrupts it (see
   * `interruptStream`). What is left of a refused body is the caller's to read or not.
   */
  private async appendStreamAtOffset(owner: User, input: AppendStreamInput): Promise<ChunkedUpload> {
    const watch = new BodyWatch(input.body, this.config.bodyTimeoutSeconds * 1000);
    const interrupted = Promise.withResolvers<void>();
    try {
      const offset = requireByteCount(input.offset, 'offset');
      const declaredLength = input.declaredLength === undefined ? undefined : requireByteCount(input.declaredLength, 'Upload-Length');
      if (!isUuid(input.uploadId)) throw Errors.notFound('Upload');
      await this.stopLiveStream(input.uploadId);
      this.liveStreams.set(input.uploadId, { stop: () => input.body.destroy(Errors.uploadLocked()), done: interrupted.promise });
      return await this.writeBody(owner, input.uploadId, offset, watch, { segmented: true, declaredLength, askHolderToRelease: true });
    } finally {
      watch.stop();
      if (this.liveStreams.get(input.uploadId)?.done === interrupted.promise) this.liveStreams.delete(input.uploadId);
      interrupted.resolve();
    }
  }

  /**
   * Stops the stream into the owner's upload that holds its lease, if any, and waits (briefly)
   * until the lease is given back: a client that reconnects after a dropped connection must
   * not wait out the lease of the request it abandoned (tus clients retry within seconds). A
   * stream in this process stops at once; one on another instance at its next renewal.
   * Committed segments stay.
   */
  async interruptStream(owner: User, uploadId: string): Promise<void> {
    if (await this.stopLiveStream(uploadId)) return;
    if (isUuid(uploadId)) await this.askHolderToRelease(owner, uploadId);
  }

  /** Stops the stream into the upload in this process, if any; true once it has stopped. */
  private async stopLiveStream(uploadId: string): Promise<boolean> {
    const live = this.liveStreams.get(uploadId);
    if (!live) return false;
    live.stop();
    await live.done;
    return true;
  }

  /** Asks the holder of the upload's live lease to release it and waits briefly; false when nobody held it. */
  private async askHolderToRelease(owner: User, uploadId: string): Promise<boolean> {
    if (!(await this.leases.askToRelease(uploadId, owner.id))) return false;
    const deadline = Date.now() + RELEASE_WAIT_MS;
    while (Date.now() < deadline && (await this.leases.isHeld(uploadId))) await sleep(RELEASE_POLL_MS);
    return true;
  }

  /**
   * The write path shared by chunks and streams: claim at `offset` (fencing off an old holder
   * that lost its lease), then write and commit the body, whole or in segments.
   */
  private async writeBody(owner: User, uploadId: string, offset: number, watch: BodyWatch, plan: WritePlan): Promise<ChunkedUpload> {
    let claimSentAt = Date.now();
    let claimed = await this.leases.claim(uploadId, owner.id, offset);
    if (!claimed && plan.askHolderToRelease && (await this.askHolderToRelease(owner, uploadId))) {
      claimSentAt = Date.now();
      claimed = await this.leases.claim(uploadId, owner.id, offset);
    }
    if (!claimed) throw await this.explainRefusal(uploadId, owner.id, { offset });
    if (claimed.upload.direct) {
      // Its parts go to the store over signUploadParts URLs; a chunk here would add parts of its own.
      await this.release(claimed.lease);
      throw Errors.badInput('This is a direct upload: PUT its parts to the URLs signUploadParts gives.');
    }
    if (claimed.upload.partSize && !plan.mergingParts) {
      // Bytes at the prefix would race the parts that cover the same range.
      await this.release(claimed.lease);
      throw Errors.badInput('This upload is in parts: send them with uploadPart.');
    }
    let lease: Lease | undefined = claimed.lease;
    const clock = new LeaseClock(lease.generation, this.config.uploadLockTtlSeconds * 1000, claimSentAt);
    // A stream renews often, so that a newer request's ask to release reaches it within a second.
    const renewEveryMs = Math.min((this.config.uploadLockTtlSeconds * 1000) / 3, plan.segmented ? STREAM_RENEW_MS : Infinity);
    const renewal = this.keepLease(lease, clock, watch.body, renewEveryMs);
    try {
      // Counted once the lease is held: a chunk that lost the race for it is refused as such
      // (UPLOAD_LOCKED, OFFSET_MISMATCH), not as one stream too many.
      // Merging stored parts is the server's own work, not a stream of the user's.
      using _slot = plan.mergingParts ? undefined : this.streams.take(owner);
      watch.pause();
      let stored = await this.fenceIfTakenOver(claimed, clock).catch((err: unknown) => {
        throw asStorageRefusal(err, offset);
      });
      watch.touch();
      let upload = claimed.upload;
      if (plan.declaredLength !== undefined) {
        upload = await this.declareLength(lease, upload, plan.declaredLength);
        stored = { ...stored, totalSize: upload.totalSize };
      }
      if (!plan.segmented) {
        const limit = Math.min(this.config.maxChunkSize, upload.totalSize - offset);
        const written = await this.writeSegment(stored, watch, { limit, expectedChunkMd5: plan.expectedChunkMd5, md5State: upload.md5State, clock });
        const committed = await this.commit(lease, stored, written, { keepLease: false });
        lease = undefined;
        return committed;
      }
      // Each segment watches for idleness from here on; the whole body may take hours.
      watch.stop();
      const segments = new BodySegments(watch.body, this.segmentSize(upload));
      for (;;) {
        // Cut off while the segment before was committing: nobody listened, and it never ends.
        const cut = watch.cutOff();
        if (cut) throw cut;
        const body = segments.next();
        const segment = new BodyWatch(body, this.config.bodyTimeoutSeconds * 1000);
        try {
          if (await segment.endsBeforeFirstByte()) break;
          const limit = upload.totalSize - upload.offset;
          const written = await this.writeSegment(stored, segment, { limit, md5State: upload.md5State, clock });
          // The body's last segment gives the lease back with its commit: one statement less.
          const last = body.endedWithSource;
          const commitSentAt = Date.now();
          upload = await this.commit(lease, stored, written, { keepLease: !last });
          if (last) {
            lease = undefined;
            break;
          }
          clock.renewedAt(commitSentAt);
          stored = { ...stored, offset: upload.offset, state: upload.storageState ?? null };
        } finally {
          segment.stop();
        }
      }
      return upload;
    } finally {
      clearInterval(renewal);
      if (lease) await this.release(lease);
    }
  }

  /** Streams one chunk or segment into storage through the inspector (limits, md5s, lease). */
  private async writeSegment(
    stored: StoredUpload,
    watch: BodyWatch,
    { limit, expectedChunkMd5, md5State, clock }: { limit: number; expectedChunkMd5?: string; md5State: Uint8Array; clock: LeaseClock },
  ): Promise<{ written: ChunkWritten; md5State: Uint8Array }> {
    const md5 = this.md5.open(md5State);
    try {
      const rules = { limit, totalSize: stored.totalSize, offset: stored.offset, md5, expectedChunkMd5, lease: clock, gcPacer: this.gcPacer };
      const inspector = ChunkInspector.inspect(watch, rules);
      const written = await this.store.writeChunk(stored, inspector, clock);
      return { written, md5State: await inspector.md5State() };
    } catch (err) {
      md5.discard();
      throw asStorageRefusal(err, stored.offset);
    }
  }

  /** Counts what was written: offset, md5 and storage state in one conditional statement. */
  private async commit(lease: Lease, stored: StoredUpload, { written, md5State }: { written: ChunkWritten; md5State: Uint8Array }, { keepLease }: { keepLease: boolean }): Promise<ChunkedUpload> {
    // The notification rides in the commit's own statement when it is due (no round trip of its own).
    const notify = this.progress.due(stored.id, stored.offset + written.bytesWritten === stored.totalSize);
    const committed = await this.leases.commitChunk(
      lease,
      { offset: stored.offset, bytesWritten: written.bytesWritten, md5State, storageState: written.state },
      { keepLease, flushWal: written.state !== stored.state, notify },
    );
    if (!committed) {
      this.log.error({ uploadId: stored.id, offset: stored.offset }, 'a chunk writer lost its lease while writing; its bytes were not counted');
      throw Errors.uploadLocked();
    }
    this.metrics.bytesCommitted(written.bytesWritten);
    if (!notify) this.progress.later(stored.id, () => this.leases.notifyProgress(stored.id));
    this.forgetSuperseded(stored, written.state);
    return committed;
  }

  /**
   * The declared length replaces what a deferred upload reserved (all the user had left, up to
   * MAX_FILE_SIZE): usually less, given back at once; more only if the quota has room for it.
   */
  private async declareLength(lease: Lease, upload: ChunkedUpload, totalSize: number): Promise<ChunkedUpload> {
    if (!upload.lengthDeferred) {
      if (totalSize === upload.totalSize) return upload;
      throw Errors.badInput(`The upload's length is already ${upload.totalSize} bytes and cannot change.`);
    }
    if (totalSize < upload.offset) throw Errors.badInput(`Upload-Length ${totalSize} is below the ${upload.offset} bytes already stored.`);
    if (totalSize > this.config.maxFileSize) throw Errors.payloadTooLarge(`Upload-Length ${totalSize} passes the largest allowed file (${this.config.maxFileSize} bytes).`);
    const declared = await this.orm.em.fork().transactional(async (tx) => {
      if (totalSize > upload.totalSize) {
        const quota = await this.quotas.lock(tx, upload.owner.id);
        const available = quota.availableBytes + upload.totalSize;
        if (totalSize > available) throw Errors.quotaExceeded(available);
      }
      return this.leases.declareLength(lease, totalSize, tx);
    });
    if (!declared) throw Errors.uploadLocked();
    return declared;
  }

  /**
   * How much of a long body to commit at a time: whole preferred chunks (on S3, whole parts),
   * about 32 MiB, so a commit costs little against the bytes and a cut loses little.
   */
  private segmentSize(upload: ChunkedUpload): number {
    const preferred = this.preferredChunkSize(upload);
    return preferred * Math.max(1, Math.floor(Math.min(this.config.maxChunkSize, STREAM_SEGMENT_BYTES) / preferred));
  }

  /**
   * Checks size and md5, then publishes the bytes and writes the File row in one unit of work.
   * The chunk writer's stream is closed before its offset commits, so offset == totalSize
   * means every byte is written and no write stream is open.
   */
  async complete(owner: User, input: CompleteUploadInput): Promise<File> {
    const md5 = input.md5 === undefined ? undefined : parseMd5(input.md5, 'md5');
    const description = input.description == null ? undefined : cleanDescription(input.description);
    if (!isUuid(input.uploadId)) throw Errors.notFound('Upload');
    let claimSentAt = Date.now();
    let claimed = await this.leases.claim(input.uploadId, owner.id);
    if (!claimed || hasPartsToMerge(claimed.upload)) {
      if (claimed) await this.release(claimed.lease);
      if (await this.settleParts(owner, input.uploadId)) {
        claimSentAt = Date.now();
        claimed = await this.leases.claim(input.uploadId, owner.id);
      }
    }
    if (!claimed) {
      const replay = await this.explainRefusal(input.uploadId, owner.id, { completing: { md5 } });
      if (replay instanceof File) return replay;
      throw replay;
    }
    const { lease, upload } = claimed;
    let published = false;
    try {
      if (upload.direct) {
        const file = await this.directUploads.complete(claimed, { md5, description: description ?? upload.description });
        published = true;
        this.metrics.uploadCompleted();
        return file;
      }
      if (upload.offset < upload.totalSize) {
        throw Errors.uploadIncomplete(upload.offset, upload.totalSize, upload.partSize ? { missingParts: await this.missingParts(upload, 100) } : {});
      }
      const hasher = await createMD5();
      hasher.load(upload.md5State);
      if (upload.lengthDeferred) throw Errors.uploadIncomplete(upload.offset, upload.totalSize);
      const actual = hasher.digest('hex');
      const expected = md5 ?? upload.expectedMd5 ?? actual;
      if (actual !== expected) {
        throw Errors.checksumMismatch(`The stored bytes have md5 ${actual}, not ${expected}. Nothing was moved; the upload stays open.`);
      }
      const clock = new LeaseClock(lease.generation, this.config.uploadLockTtlSeconds * 1000, claimSentAt);
      const stored = await this.fenceIfTakenOver(claimed, clock);
      const file = await this.publish(upload, lease, stored, { description: description ?? upload.description, md5: actual });
      published = true;
      if (upload.partSize) this.dropSpool(upload.id);
      this.metrics.uploadCompleted();
      this.log.info({ uploadId: upload.id, fileId: file.id, name: file.name, size: file.size, md5 }, 'upload completed');
      return file;
    } catch (err) {
      throw asStorageRefusal(err, upload.offset);
    } finally {
      if (!published) await this.release(lease);
    }
  }

  /**
   * An upload in parts can complete once its stored parts are merged into its prefix: merges
   * them, or waits (up to a lease's lifetime) while another request is merging them. False for
   * any other upload (nothing done).
   */
  private async settleParts(owner: User, uploadId: string): Promise<boolean> {
    const deadline = Date.now() + this.config.uploadLockTtlSeconds * 1000;
    for (;;) {
      await this.merges.get(uploadId)?.done;
      const upload = await this.orm.em.fork().findOne(ChunkedUpload, { id: uploadId, owner: owner.id });
      if (!upload || !hasPartsToMerge(upload)) return upload?.partSize != null && !upload.direct;
      const merged = await this.mergeParts(owner, upload);
      if (merged.offset >= merged.totalSize || Date.now() > deadline || !(await this.leases.isHeld(uploadId))) return true;
      await sleep(RELEASE_POLL_MS);
    }
  }

  /** Best effort: the cleanup job's sweep deletes what is left. */
  private dropSpool(uploadId: string): void {
    this.spool.deleteUpload(uploadId).catch((err: unknown) => this.log.warn({ err, uploadId }, 'could not delete the spooled parts of an upload; the cleanup job will'));
  }

  async abort(owner: User, uploadId: string): Promise<ChunkedUpload> {
    if (!isUuid(uploadId)) throw Errors.notFound('Upload');
    const claimed = await this.leases.claim(uploadId, owner.id);
    if (!claimed) {
      const current = await this.get(owner, uploadId);
      // Aborting twice is harmless; aborting what is finished is not allowed.
      if (current.status === UploadStatus.ABORTED) return current;
      const refusal = await this.explainRefusal(uploadId, owner.id, {});
      throw refusal instanceof File ? Errors.uploadNotActive(UploadStatus.COMPLETE) : refusal;
    }
    if (!(await this.leases.abort(claimed.lease))) throw Errors.uploadLocked();
    await this.store.deleteUpload(uploadId, claimed.upload.storageState ?? null);
    if (claimed.upload.partSize) this.dropSpool(uploadId);
    this.log.info({ uploadId, offset: claimed.upload.offset, totalSize: claimed.upload.totalSize }, 'upload aborted');
    return this.get(owner, uploadId);
  }

  /**
   * Aborts every upload in progress of a user who is being deleted and deletes its bytes.
   * Nobody waits for a writer to let go: a stream in this process is stopped at once, one
   * elsewhere at its next lease renewal; a stray byte such a writer still puts down is an
   * orphan that the cleanup job's sweep deletes. Returns how many were aborted.
   */
  async abortAllOf(ownerId: string): Promise<number> {
    const aborted = await this.leases.abortAllOf(ownerId);
    for (const upload of aborted) {
      const live = this.liveStreams.get(upload.id);
      if (live) {
        live.stop();
        await live.done;
      }
      try {
        await this.store.deleteUpload(upload.id, upload.storageState ?? null);
        if (upload.partSize) await this.spool.deleteUpload(upload.id);
      } catch (err) {
        this.log.warn({ err, uploadId: upload.id }, 'could not delete the bytes of an aborted upload; the cleanup job will');
      }
      this.log.info({ uploadId: upload.id, ownerId, offset: upload.offset }, 'upload aborted: its owner is being deleted');
    }
    return aborted.length;
  }

  /**
   * The File row, the upload's COMPLETE status and the move of the bytes in one transaction:
   * the bytes move just before it commits, and a failure anywhere rolls the rows back. Moving
   * is idempotent, so if the commit is lost after the move, completing again finishes the job;
   * the bytes are never removed here, so there is never a row without bytes.
   */
  private publish(upload: ChunkedUpload, lease: Lease, stored: StoredUpload, details: { description: string; md5: string }): Promise<File> {
    return this.files.createWithFreeName(upload.filename, async (em, name) => {
      if (!(await this.leases.complete(em, lease))) throw Errors.uploadLocked();
      const file = em.create(File, {
        id: upload.id,
        name,
        description: details.description,
        size: upload.totalSize,
        md5: details.md5,
        mimeType: upload.mimeType,
        author: upload.owner,
        uploadedAt: new Date(),
      });
      await em.flush();
      await this.store.publishUpload(stored, file.id);
      return file;
    });
  }

  /**
   * A claim that took over a lease which ran out unreleased: its old holder may still be
   * running, so storage fences it off, and the fenced state is saved before anything is written.
   */
  private async fenceIfTakenOver({ lease, upload }: Claimed, clock: LeaseClock): Promise<StoredUpload> {
    const stored: StoredUpload = { id: upload.id, totalSize: upload.totalSize, offset: upload.offset, state: upload.storageState ?? null };
    if (!lease.tookOver) return stored;
    this.log.info({ uploadId: upload.id, generation: lease.generation }, 'took over a lease that ran out unreleased: fencing off its old holder');
    const state = await this.store.fenceOlderWriters(stored, clock);
    if (!(await this.leases.saveStorageState(lease, state))) throw Errors.uploadLocked();
    this.forgetSuperseded(stored, state);
    return { ...stored, state };
  }

  /** Once `committed` is in the row, what only `previous.state` needed goes; nobody waits for it. */
  private forgetSuperseded(previous: StoredUpload, committed: StoreState): void {
    this.store.stateCommitted(previous.id, previous.state, committed).catch((err: unknown) => {
      this.log.warn({ err, uploadId: previous.id }, 'could not remove storage a newer state superseded; publishing or deleting the upload will');
    });
  }

  /** Why a claim failed, in API.md's order of precedence; or, for a replayed completion, its File. */
  private async explainRefusal(
    uploadId: string,
    ownerId: string,
    attempt: { offset?: number; completing?: { md5?: string } },
  ): Promise<AppError | File> {
    const upload = await this.orm.em.fork().findOne(ChunkedUpload, { id: uploadId, owner: ownerId });
    if (!upload) return Errors.notFound('Upload');
    if (upload.status === UploadStatus.COMPLETE && attempt.completing) {
      const file = await this.files.findById(uploadId);
      if (!file) return Errors.notFound('File (it was deleted after this upload completed)');
      const expected = attempt.completing.md5 ?? upload.expectedMd5 ?? file.md5;
      if (file.md5 !== expected) {
        return Errors.checksumMismatch(`This upload is already complete with md5 ${file.md5}.`);
      }
      return file;
    }
    if (upload.status === UploadStatus.COMPLETE || upload.status === UploadStatus.ABORTED) {
      return Errors.uploadNotActive(upload.status);
    }
    if (upload.status === UploadStatus.EXPIRED || upload.expiresAt <= new Date()) return Errors.uploadExpired();
    if (await this.leases.isHeld(uploadId)) return Errors.uploadLocked();
    if (attempt.offset !== undefined && attempt.offset !== upload.offset) return Errors.offsetMismatch(upload.offset);
    // The lease was released between our claim and this read: the client may simply retry.
    return Errors.uploadLocked();
  }

  /**
   * Renews the lease while a body streams. A writer that lost it stops before it can do harm;
   * one asked to release it (a newer request for the upload) stops and gives it back.
   */
  private keepLease(lease: Lease, clock: LeaseClock, body: Readable, everyMs: number): NodeJS.Timeout {
    return renewWhileWriting(() => this.leases.renew(lease), clock, body, everyMs, (err) =>
      this.log.warn({ err, uploadId: lease.uploadId }, 'could not renew an upload lease; the chunk stops if the lease runs out'),
    );
  }

  private async release(lease: Lease): Promise<void> {
    try {
      await this.leases.release(lease);
    } catch (err) {
      // The lease runs out on its own; the client sees UPLOAD_LOCKED until then.
      this.log.warn({ err, uploadId: lease.uploadId }, 'could not release an upload lease');
    }
  }
}


/** An upload in parts still in progress whose prefix does not cover the file yet. */
function hasPartsToMerge(upload: ChunkedUpload): boolean {
  return upload.partSize != null && !upload.direct && upload.status === UploadStatus.UPLOADING && upload.offset < upload.totalSize;
}
