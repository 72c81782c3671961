import type { MikroORM } from '@mikro-orm/core';
import { createMD5 } from 'hash-wasm';
import mime from 'mime-types';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Config } from '../config';
import { File, type User } from '../entities';
import { toDomainError } from '../error-edge';
import { AppError, Errors } from '../errors';
import type { GcPacer } from '../gc-pacer';
import type { Md5Pool } from '../hashing/md5-pool';
import type { UploadMetrics } from '../metrics';
import type { FileService } from '../services/file.service';
import { cleanDescription, cleanFilename, isUuid, parseMd5, requireByteCount } from '../services/validation';
import { StorageUnavailableError, type ChunkWritten, type FileStore, type StoredUpload, type StoreState } from '../storage/file-store';
import { BodyWatch, ChunkInspector, LeaseClock } from './chunk-pipeline';
import { ChunkedUpload, UploadStatus } from './chunked-upload.entity';
import type { Claimed, Lease, LeaseRepository } from './lease.repository';

export interface StartUploadInput {
  filename: string;
  totalSize: number;
  description?: string | null;
  mimeType?: string | null;
}

export interface AppendChunkInput {
  uploadId: string;
  offset: number;
  /** The chunk's bytes, still arriving. Read to its end whatever the outcome. */
  body: Readable;
  chunkMd5?: string | null;
}

export interface CompleteUploadInput {
  uploadId: string;
  md5: string;
  description?: string | null;
}

/**
 * The upload lifecycle. No database connection or transaction is held while a body streams:
 * a writer claims the upload's lease (one conditional UPDATE), streams to the store while it
 * renews the lease, then commits the new offset with another conditional UPDATE that only
 * succeeds if it still holds the lease and the offset has not moved.
 */
export class UploadService {
  constructor(
    private readonly orm: MikroORM,
    private readonly leases: LeaseRepository,
    private readonly store: FileStore,
    private readonly md5: Md5Pool,
    private readonly files: FileService,
    private readonly config: Config,
    private readonly log: Logger,
    private readonly metrics: UploadMetrics,
    private readonly gcPacer?: GcPacer,
  ) {}

  async start(owner: User, input: StartUploadInput): Promise<ChunkedUpload> {
    const filename = cleanFilename(input.filename);
    const totalSize = requireByteCount(input.totalSize, 'totalSize');
    if (totalSize > this.config.maxFileSize) {
      throw Errors.payloadTooLarge(`totalSize ${totalSize} passes the largest allowed file (${this.config.maxFileSize} bytes).`);
    }
    const em = this.orm.em.fork();
    const now = new Date();
    const upload = em.create(ChunkedUpload, {
      owner,
      filename,
      totalSize,
      description: cleanDescription(input.description ?? ''),
      mimeType: input.mimeType?.trim() || mime.lookup(filename) || null,
      md5State: Buffer.from((await createMD5()).init().save()),
      createdAt: now,
      updatedAt: now,
      expiresAt: new Date(now.getTime() + this.config.uploadTtlSeconds * 1000),
    });
    // Row first: the orphan sweep deletes partial bytes that have no upload row.
    await em.flush();
    try {
      const state = await this.store.createUpload(upload.id, totalSize);
      if (state) {
        upload.storageState = state;
        await em.flush();
      }
    } catch (err) {
      await em.remove(upload).flush();
      throw asStorageRefusal(err, 0);
    }
    this.log.info({ uploadId: upload.id, ownerId: owner.id, filename, totalSize }, 'upload started');
    return upload;
  }

  /** The chunk size to suggest to clients: what suits the store, within MAX_CHUNK_SIZE. */
  preferredChunkSize(upload: ChunkedUpload): number {
    return Math.min(this.config.maxChunkSize, this.store.preferredChunkSize(upload.totalSize));
  }

  /** The caller's own upload; anyone else's is NOT_FOUND, admins included. */
  async get(owner: User, uploadId: string): Promise<ChunkedUpload> {
    const upload = isUuid(uploadId) ? await this.orm.em.fork().findOne(ChunkedUpload, { id: uploadId, owner: owner.id }) : null;
    if (!upload) throw Errors.notFound('Upload');
    return upload;
  }

  async listMine(owner: User, status?: UploadStatus | null): Promise<ChunkedUpload[]> {
    return this.orm.em
      .fork()
      .find(ChunkedUpload, { owner: owner.id, ...(status ? { status } : {}) }, { orderBy: { createdAt: 'desc', id: 'desc' } });
  }

  /** Uploads in state UPLOADING and not expired, on every instance (the uploads_in_progress gauge). */
  countInProgress(): Promise<number> {
    return this.orm.em.fork().count(ChunkedUpload, { status: UploadStatus.UPLOADING, expiresAt: { $gt: new Date() } });
  }

  /** `appendChunkAtOffset`, measured once per chunk: its result, the bytes it stored, how long it took. */
  async appendChunk(owner: User, input: AppendChunkInput): Promise<ChunkedUpload> {
    const started = performance.now();
    try {
      const upload = await this.appendChunkAtOffset(owner, input);
      const stored = upload.offset - input.offset;
      this.metrics.chunkFinished('ok', stored, (performance.now() - started) / 1000);
      this.log.debug({ uploadId: upload.id, offset: input.offset, bytes: stored }, 'chunk stored');
      return upload;
    } catch (err) {
      this.metrics.chunkFinished(toDomainError(err)?.code.toLowerCase() ?? 'error', 0, (performance.now() - started) / 1000);
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
    let lease: Lease | undefined;
    try {
      const offset = requireByteCount(input.offset, 'offset');
      const expectedChunkMd5 = input.chunkMd5 == null ? undefined : parseMd5(input.chunkMd5, 'chunkMd5');
      // An empty chunk is bad input, which outranks every refusal that needs the database.
      if (await watch.endsBeforeFirstByte()) throw Errors.badInput('The chunk is empty: send at least one byte.');
      if (!isUuid(input.uploadId)) throw Errors.notFound('Upload');

      const claimSentAt = Date.now();
      const claimed = await this.leases.claim(input.uploadId, owner.id, offset);
      if (!claimed) throw await this.explainRefusal(input.uploadId, owner.id, { offset });
      lease = claimed.lease;
      const clock = new LeaseClock(lease.generation, this.config.uploadLockTtlSeconds * 1000, claimSentAt);
      const renewal = this.keepLease(lease, clock, input.body);
      const { totalSize } = claimed.upload;
      const md5 = this.md5.open(claimed.upload.md5State);
      let stored: StoredUpload;
      let written: ChunkWritten;
      let md5State: Uint8Array;
      try {
        watch.pause();
        stored = await this.fenceIfTakenOver(claimed, clock);
        watch.touch();
        const limit = Math.min(this.config.maxChunkSize, totalSize - offset);
        const rules = { limit, totalSize, offset, md5, expectedChunkMd5, lease: clock, gcPacer: this.gcPacer };
        const inspector = ChunkInspector.inspect(watch, rules);
        written = await this.store.writeChunk(stored, inspector, clock);
        md5State = await inspector.md5State();
      } catch (err) {
        md5.discard();
        throw asStorageRefusal(err, offset);
      } finally {
        clearInterval(renewal);
      }
      const committed = await this.leases.commitChunk(lease, { offset, bytesWritten: written.bytesWritten, md5State, storageState: written.state });
      if (!committed) {
        this.log.error({ uploadId: input.uploadId, offset }, 'a chunk writer lost its lease while writing; its bytes were not counted');
        throw Errors.uploadLocked();
      }
      lease = undefined;
      this.forgetSuperseded(stored, written.state);
      return committed;
    } catch (err) {
      if (lease) await this.release(lease);
      await watch.drain();
      throw err;
    } finally {
      watch.stop();
    }
  }

  /**
   * Checks size and md5, then publishes the bytes and writes the File row in one unit of work.
   * The chunk writer's stream is closed before its offset commits, so offset == totalSize
   * means every byte is written and no write stream is open.
   */
  async complete(owner: User, input: CompleteUploadInput): Promise<File> {
    const md5 = parseMd5(input.md5, 'md5');
    const description = input.description == null ? undefined : cleanDescription(input.description);
    if (!isUuid(input.uploadId)) throw Errors.notFound('Upload');
    const claimSentAt = Date.now();
    const claimed = await this.leases.claim(input.uploadId, owner.id);
    if (!claimed) {
      const replay = await this.explainRefusal(input.uploadId, owner.id, { completingWithMd5: md5 });
      if (replay instanceof File) return replay;
      throw replay;
    }
    const { lease, upload } = claimed;
    let published = false;
    try {
      if (upload.offset < upload.totalSize) throw Errors.uploadIncomplete(upload.offset, upload.totalSize);
      const hasher = await createMD5();
      hasher.load(upload.md5State);
      const actual = hasher.digest('hex');
      if (actual !== md5) {
        throw Errors.checksumMismatch(`The stored bytes have md5 ${actual}, not ${md5}. Nothing was moved; the upload stays open.`);
      }
      const clock = new LeaseClock(lease.generation, this.config.uploadLockTtlSeconds * 1000, claimSentAt);
      const stored = await this.fenceIfTakenOver(claimed, clock);
      const file = await this.publish(upload, lease, stored, { description: description ?? upload.description, md5 });
      published = true;
      this.metrics.uploadCompleted();
      this.log.info({ uploadId: upload.id, fileId: file.id, name: file.name, size: file.size, md5 }, 'upload completed');
      return file;
    } catch (err) {
      throw asStorageRefusal(err, upload.offset);
    } finally {
      if (!published) await this.release(lease);
    }
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
    this.log.info({ uploadId, offset: claimed.upload.offset, totalSize: claimed.upload.totalSize }, 'upload aborted');
    return this.get(owner, uploadId);
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
    attempt: { offset?: number; completingWithMd5?: string },
  ): Promise<AppError | File> {
    const upload = await this.orm.em.fork().findOne(ChunkedUpload, { id: uploadId, owner: ownerId });
    if (!upload) return Errors.notFound('Upload');
    if (upload.status === UploadStatus.COMPLETE && attempt.completingWithMd5) {
      const file = await this.files.findById(uploadId);
      if (!file) return Errors.notFound('File (it was deleted after this upload completed)');
      if (file.md5 !== attempt.completingWithMd5) {
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

  /** Renews the lease while a chunk streams; a writer that lost it stops before it can do harm. */
  private keepLease(lease: Lease, clock: LeaseClock, body: Readable): NodeJS.Timeout {
    const renew = async () => {
      const sentAt = Date.now();
      try {
        if (await this.leases.renew(lease)) {
          clock.renewedAt(sentAt);
        } else {
          clock.lose();
          body.destroy(Errors.uploadLocked());
        }
      } catch (err) {
        this.log.warn({ err, uploadId: lease.uploadId }, 'could not renew an upload lease; the chunk stops if the lease runs out');
      }
    };
    return setInterval(renew, (this.config.uploadLockTtlSeconds * 1000) / 3).unref();
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

/** Storage that failed on its own becomes an answer a client can act on: retry from `offset` later. */
function asStorageRefusal(err: unknown, offset: number): unknown {
  return err instanceof StorageUnavailableError ? Errors.storageUnavailable(err.reason, offset) : err;
}
