import { type EntityManager, type MikroORM } from '@mikro-orm/core';
import { createMD5 } from 'hash-wasm';
import mime from 'mime-types';
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Logger } from 'pino';
import type { Config } from '../config';
import { ChunkedUpload, File, UploadStatus, User } from '../entities';
import { AppError, Errors } from '../errors';
import type { GcPacer } from '../gc-pacer';
import type { Md5Pool, Md5Session } from '../hashing/md5-pool';
import { parseState, type ChunkWritten, type FileStore } from '../storage/file-store';
import type { FileService } from './file.service';
import { cleanDescription, cleanFilename, isUuid, parseMd5, requireByteCount } from './validation';

export interface StartUploadInput {
  filename: string;
  totalSize: number;
  description?: string | null;
  mimeType?: string | null;
}

/** What the GraphQL layer hands over for a chunk: the multipart file, still streaming. */
export interface IncomingChunk {
  /** The multipart file part (type-graphql has usually awaited the parser's promise already). */
  file: { createReadStream(): Readable } | Promise<{ createReadStream(): Readable }>;
}

export interface AppendChunkInput {
  uploadId: string;
  offset: number;
  chunk: IncomingChunk;
  chunkMd5?: string | null;
}

export interface CompleteUploadInput {
  uploadId: string;
  md5: string;
  description?: string | null;
}

/** A row as UPDATE ... RETURNING gives it: snake_case columns, bigints as strings. */
type UploadRow = Record<string, unknown>;

/**
 * The upload lifecycle. No database connection or transaction is held while a body streams:
 * a writer first claims the upload with a conditional UPDATE (a lease with an expiry, renewed
 * while it writes), streams to the store, then commits the new offset with another conditional
 * UPDATE that only succeeds if it still holds the lease and the offset has not moved.
 */
export class UploadService {
  constructor(
    private readonly orm: MikroORM,
    private readonly store: FileStore,
    private readonly md5: Md5Pool,
    private readonly files: FileService,
    private readonly config: Config,
    private readonly log: Logger,
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
      expiresAt: this.expiryFrom(now),
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
      throw err;
    }
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

  /**
   * Appends one chunk at the stored offset (API.md: lock → load → expiry → offset → length →
   * write → commit → unlock). A refused chunk is still read to its end before answering, so
   * the client receives the error instead of a reset connection.
   */
  async appendChunk(owner: User, input: AppendChunkInput): Promise<ChunkedUpload> {
    const body = await openChunk(input.chunk);
    const idle = new IdleTimer(body, this.config.bodyTimeoutSeconds * 1000);
    let leaseToken: string | undefined;
    try {
      const offset = requireByteCount(input.offset, 'offset');
      const expectedChunkMd5 = input.chunkMd5 == null ? undefined : parseMd5(input.chunkMd5, 'chunkMd5');
      // An empty chunk is bad input, which outranks every refusal that needs the database.
      if (await endsBeforeFirstByte(body)) throw Errors.badInput('The chunk is empty: send at least one byte.');
      if (!isUuid(input.uploadId)) throw Errors.notFound('Upload');

      leaseToken = randomUUID();
      const lease = new Lease(this.config.uploadLockTtlSeconds * 1000);
      const claimed = await this.claim(input.uploadId, owner.id, leaseToken, offset);
      if (!claimed) throw await this.explainRefusal(input.uploadId, owner.id, { offset });

      const totalSize = Number(claimed.total_size);
      const limit = Math.min(this.config.maxChunkSize, totalSize - offset);
      const md5 = this.md5.open(claimed.md5_state as Uint8Array);
      const renewal = this.keepLease(input.uploadId, leaseToken, lease, body);
      let written: ChunkWritten;
      let md5State: Uint8Array;
      try {
        const rules = { limit, totalSize, offset, md5, expectedChunkMd5, lease, gcPacer: this.gcPacer };
        const inspector = ChunkInspector.inspect(body, idle, rules);
        const stored = { id: input.uploadId, totalSize, offset, state: parseState(claimed.storage_state) };
        written = await this.store.writeChunk(stored, inspector);
        md5State = await inspector.md5State();
      } catch (err) {
        md5.discard();
        throw asStorageError(err, offset);
      } finally {
        clearInterval(renewal);
      }
      const committed = await this.commitChunk(input.uploadId, leaseToken, offset, written, md5State);
      leaseToken = undefined;
      return committed;
    } catch (err) {
      if (leaseToken) await this.releaseLease(input.uploadId, leaseToken);
      await idle.drain();
      throw err;
    } finally {
      idle.stop();
    }
  }

  /**
   * Checks size and md5, then publishes the bytes and writes the File row in one unit of work.
   * The chunk writer's stream is closed before its offset commits, so offset == totalSize
   * means every byte is written and no write stream is open (the seed app's bug).
   */
  async complete(owner: User, input: CompleteUploadInput): Promise<File> {
    const md5 = parseMd5(input.md5, 'md5');
    const description = input.description == null ? undefined : cleanDescription(input.description);
    if (!isUuid(input.uploadId)) throw Errors.notFound('Upload');
    const leaseToken = randomUUID();
    const claimed = await this.claim(input.uploadId, owner.id, leaseToken);
    if (!claimed) {
      const replay = await this.explainRefusal(input.uploadId, owner.id, { completingWithMd5: md5 });
      if (replay instanceof File) return replay;
      throw replay;
    }
    let published = false;
    try {
      const upload = this.orm.em.fork().map(ChunkedUpload, claimed);
      if (upload.offset < upload.totalSize) throw Errors.uploadIncomplete(upload.offset, upload.totalSize);
      const hasher = await createMD5();
      hasher.load(claimed.md5_state as Uint8Array);
      const actual = hasher.digest('hex');
      if (actual !== md5) {
        throw Errors.checksumMismatch(`The stored bytes have md5 ${actual}, not ${md5}. Nothing was moved; the upload stays open.`);
      }
      const file = await this.files.publish(upload, leaseToken, { description: description ?? upload.description, md5 });
      published = true;
      return file;
    } finally {
      if (!published) await this.releaseLease(input.uploadId, leaseToken);
    }
  }

  async abort(owner: User, uploadId: string): Promise<ChunkedUpload> {
    if (!isUuid(uploadId)) throw Errors.notFound('Upload');
    const leaseToken = randomUUID();
    const claimed = await this.claim(uploadId, owner.id, leaseToken);
    if (!claimed) {
      const current = await this.get(owner, uploadId);
      // Aborting twice is harmless; aborting what is finished is not allowed.
      if (current.status === UploadStatus.ABORTED) return current;
      const refusal = await this.explainRefusal(uploadId, owner.id, {});
      throw refusal instanceof File ? Errors.uploadNotActive(UploadStatus.COMPLETE) : refusal;
    }
    await this.orm.em
      .fork()
      .nativeUpdate(
        ChunkedUpload,
        { id: uploadId, lockToken: leaseToken },
        { status: UploadStatus.ABORTED, lockToken: null, lockExpiresAt: null, updatedAt: new Date() },
      );
    await this.store.deleteUpload(uploadId, parseState(claimed.storage_state));
    return this.get(owner, uploadId);
  }

  /**
   * Takes the upload's lease if it is the owner's, still UPLOADING, not expired, not leased
   * by a live writer and (for a chunk) at `offset`. One UPDATE: the database settles races.
   */
  private async claim(uploadId: string, ownerId: string, token: string, offset?: number): Promise<UploadRow | undefined> {
    const rows = await this.orm.em.getConnection().execute<UploadRow[]>(
      // A lease need not survive a crash (it would only expire), so its commit skips the WAL
      // flush: set_config(..., true) applies to this statement's own transaction.
      `with no_flush as (select set_config('synchronous_commit', 'off', true))
       update chunked_uploads
          set lock_token = ?, lock_expires_at = now() + make_interval(secs => ?)
         from no_flush
        where id = ? and owner_id = ? and status = 'UPLOADING' and expires_at > now()
          and (lock_token is null or lock_expires_at <= now())
          ${offset === undefined ? '' : 'and "offset" = ?'}
        returning chunked_uploads.*`,
      [token, this.config.uploadLockTtlSeconds, uploadId, ownerId, ...(offset === undefined ? [] : [offset])],
    );
    return rows[0];
  }

  /** Why a claim failed, in API.md's order of precedence; or, for a replayed completion, its File. */
  private async explainRefusal(
    uploadId: string,
    ownerId: string,
    attempt: { offset?: number; completingWithMd5?: string },
  ): Promise<AppError | File> {
    const em = this.orm.em.fork();
    const upload = await em.findOne(ChunkedUpload, { id: uploadId, owner: ownerId });
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
    const now = new Date();
    if (upload.status === UploadStatus.EXPIRED || upload.expiresAt <= now) return Errors.uploadExpired();
    if (upload.lockToken && upload.lockExpiresAt && upload.lockExpiresAt > now) return Errors.uploadLocked();
    if (attempt.offset !== undefined && attempt.offset !== upload.offset) return Errors.offsetMismatch(upload.offset);
    // The lease was released between our claim and this read: the client may simply retry.
    return Errors.uploadLocked();
  }

  /** Renews the lease while a chunk streams; a writer that lost it stops before it can do harm. */
  private keepLease(uploadId: string, token: string, lease: Lease, body: Readable): NodeJS.Timeout {
    const renew = async () => {
      const sentAt = Date.now();
      try {
        const renewed = await this.orm.em
          .fork()
          .nativeUpdate(ChunkedUpload, { id: uploadId, lockToken: token }, { lockExpiresAt: this.leaseExpiry() });
        if (renewed === 0) body.destroy(Errors.uploadLocked());
        else lease.renewedAt(sentAt);
      } catch (err) {
        this.log.warn({ err, uploadId }, 'could not renew an upload lease; the chunk stops if the lease runs out');
      }
    };
    return setInterval(renew, (this.config.uploadLockTtlSeconds * 1000) / 3).unref();
  }

  private async commitChunk(uploadId: string, token: string, offset: number, written: ChunkWritten, md5State: Uint8Array): Promise<ChunkedUpload> {
    const rows = await this.orm.em.getConnection().execute<UploadRow[]>(
      `update chunked_uploads
          set "offset" = "offset" + ?, md5_state = ?, storage_state = ?::jsonb, lock_token = null, lock_expires_at = null,
              updated_at = now(), expires_at = now() + make_interval(secs => ?)
        where id = ? and lock_token = ? and "offset" = ?
        returning *`,
      [
        written.bytesWritten,
        Buffer.from(md5State),
        written.state === null ? null : JSON.stringify(written.state),
        this.config.uploadTtlSeconds,
        uploadId,
        token,
        offset,
      ],
    );
    if (!rows[0]) {
      this.log.error({ uploadId, offset }, 'a chunk writer lost its lease while writing; its bytes were not counted');
      throw Errors.uploadLocked();
    }
    return this.orm.em.fork().map(ChunkedUpload, rows[0]);
  }

  private async releaseLease(uploadId: string, token: string): Promise<void> {
    try {
      await this.orm.em.fork().nativeUpdate(ChunkedUpload, { id: uploadId, lockToken: token }, { lockToken: null, lockExpiresAt: null });
    } catch (err) {
      // The lease expires on its own; the client sees UPLOAD_LOCKED until then.
      this.log.warn({ err, uploadId }, 'could not release an upload lease');
    }
  }

  private leaseExpiry(): Date {
    return new Date(Date.now() + this.config.uploadLockTtlSeconds * 1000);
  }

  private expiryFrom(date: Date): Date {
    return new Date(date.getTime() + this.config.uploadTtlSeconds * 1000);
  }
}

/** Opens the multipart file, turning the parser's own failures into API errors. */
async function openChunk(chunk: IncomingChunk): Promise<Readable> {
  try {
    const file = await chunk.file;
    return file.createReadStream();
  } catch (err) {
    throw Errors.badInput(`The chunk could not be read: ${(err as Error).message}`);
  }
}

/** Waits for the body's first byte (false) or its end (true) without consuming anything. */
function endsBeforeFirstByte(body: Readable): Promise<boolean> {
  if (body.readableLength > 0) return Promise.resolve(false);
  if (body.readableEnded) return Promise.resolve(true);
  return new Promise((resolve, reject) => {
    const settle = (result: boolean | Error) => {
      body.off('readable', onReadable).off('error', settle).off('close', onClose);
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    // 'readable' with nothing buffered means the end has been reached.
    const onReadable = () => settle(body.readableLength === 0);
    const onClose = () => settle(Errors.badInput('The chunk was cut off before its first byte.'));
    body.on('readable', onReadable).once('error', settle).once('close', onClose);
  });
}

/**
 * How long this process may trust its claim: counted from when the claim or its last
 * successful renewal was *sent*, so never later than the database's own expiry. A writer
 * frozen past it (GC pause, SIGSTOP, a database outage) stops writing instead of writing
 * over the bytes of whoever claimed the upload next.
 */
class Lease {
  private validUntil: number;

  constructor(private readonly ttlMs: number) {
    this.validUntil = this.deadlineFrom(Date.now());
  }

  renewedAt(sentAt: number): void {
    this.validUntil = this.deadlineFrom(sentAt);
  }

  get expired(): boolean {
    return Date.now() >= this.validUntil;
  }

  /** A margin of a sixth of the TTL for clock steps and slow statements. */
  private deadlineFrom(sentAt: number): number {
    return sentAt + this.ttlMs - this.ttlMs / 6;
  }
}

/** File-system failures of the store become an answer a client can act on (retry later). */
const STORAGE_FAILURES = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EIO']);

function asStorageError(err: unknown, offset: number): unknown {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (!code || !STORAGE_FAILURES.has(code)) return err;
  return new AppError(
    'STORAGE_UNAVAILABLE',
    `The server could not store the chunk (${code === 'ENOSPC' || code === 'EDQUOT' ? 'storage is full' : 'storage is not writable'}). Nothing was stored: retry from offset ${offset} later.`,
    { expectedOffset: offset },
  );
}

interface ChunkRules {
  /** Most bytes this chunk may carry: the smaller of MAX_CHUNK_SIZE and what is left of totalSize. */
  limit: number;
  totalSize: number;
  offset: number;
  /** The whole file's md5, continued on a worker thread. */
  md5: Md5Session;
  expectedChunkMd5?: string;
  lease: Lease;
  gcPacer?: GcPacer;
}

/**
 * Passes the chunk's bytes through to storage, handing them to the whole-file md5 as they go
 * (a copy to a worker thread) and failing (which stops the write) the moment a rule is broken.
 * A stream, not an async iterator: per-buffer work stays synchronous, with no promise per 64 KiB.
 */
class ChunkInspector extends Transform {
  private seen = 0;
  private readonly chunkHasher?: Hash;
  private savedMd5?: Promise<Uint8Array>;

  constructor(
    private readonly rules: ChunkRules,
    private readonly idle: IdleTimer,
  ) {
    super();
    if (rules.expectedChunkMd5) this.chunkHasher = createHash('md5');
  }

  /** Feeds the inspector from the request body without ever destroying the body: a refused chunk is still read to its end. */
  static inspect(body: Readable, idle: IdleTimer, rules: ChunkRules): ChunkInspector {
    const inspector = new ChunkInspector(rules, idle);
    const onBodyError = (err: Error) => inspector.destroy(err);
    body.once('error', onBodyError);
    inspector.once('close', () => body.off('error', onBodyError));
    // The store's pipeline reports the inspector's failure; this listener only keeps pipe's
    // own error handling from rethrowing it once the pipeline has let go of the stream.
    inspector.on('error', () => {});
    // pipe (not pipeline) unpipes on the inspector's error and leaves the body readable.
    body.pipe(inspector);
    return inspector;
  }

  override _transform(buffer: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.idle.touch();
    this.seen += buffer.length;
    const { rules } = this;
    if (rules.lease.expired) {
      callback(Errors.uploadLocked());
      return;
    }
    if (this.seen > rules.limit) {
      callback(
        Errors.payloadTooLarge(
          rules.offset + this.seen > rules.totalSize
            ? `The chunk runs past totalSize (${rules.totalSize} bytes): ${rules.totalSize - rules.offset} bytes are left from offset ${rules.offset}.`
            : 'The chunk is larger than MAX_CHUNK_SIZE: send smaller chunks.',
        ),
      );
      return;
    }
    this.chunkHasher?.update(buffer);
    rules.gcPacer?.received(buffer.length);
    rules.md5.update(buffer, (err) => (err ? callback(err) : callback(null, buffer)));
  }

  override _flush(callback: TransformCallback): void {
    const actual = this.chunkHasher?.digest('hex');
    if (actual !== undefined && actual !== this.rules.expectedChunkMd5) {
      callback(Errors.checksumMismatch(`The chunk arrived with md5 ${actual}, not ${this.rules.expectedChunkMd5}: it was discarded, resend it.`));
      return;
    }
    // The worker finishes hashing while storage flushes the last bytes.
    this.savedMd5 = this.rules.md5.save();
    this.savedMd5.catch(() => {});
    callback();
  }

  /** The whole file's md5 state after this chunk; only once every byte has passed. */
  md5State(): Promise<Uint8Array> {
    if (!this.savedMd5) throw new Error('The chunk has not been read to its end.');
    return this.savedMd5;
  }
}

/** Cuts off a body that sends nothing for too long, and reads refused bodies to their end. */
class IdleTimer {
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly body: Readable,
    timeoutMs: number,
  ) {
    this.timer = setTimeout(
      () => body.destroy(Errors.badInput(`The chunk body sent nothing for ${timeoutMs / 1000} s and was cut off.`)),
      timeoutMs,
    ).unref();
  }

  touch(): void {
    this.timer.refresh();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  async drain(): Promise<void> {
    if (this.body.destroyed || this.body.readableEnded) return;
    try {
      for await (const _ of this.body) this.touch();
    } catch {
      // The body failed on its own (client gone, timeout): nothing left to read.
    }
  }
}
