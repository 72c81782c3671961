import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { Errors } from '../errors';
import type { GcPacer } from '../gc-pacer';
import type { Md5Session } from '../hashing/md5-pool';
import { StorageUnavailableError, type WriterLease } from '../storage/file-store';

/**
 * How long this process may trust its lease: counted from when the claim or its last
 * successful renewal was *sent*, so never later than the database's own expiry. A writer
 * frozen past it (GC pause, SIGSTOP, a database outage) stops writing; what it had already
 * handed to storage is fenced off by the next holder (see FileStore.fenceOlderWriters).
 */
export class LeaseClock implements WriterLease {
  private validUntil: number;

  constructor(
    readonly generation: number,
    private readonly ttlMs: number,
    claimSentAt: number,
  ) {
    this.validUntil = this.deadlineFrom(claimSentAt);
  }

  renewedAt(sentAt: number): void {
    this.validUntil = this.deadlineFrom(sentAt);
  }

  /** Lost for good (another holder took the upload): no renewal can bring it back. */
  lose(): void {
    this.validUntil = -Infinity;
  }

  get expired(): boolean {
    return Date.now() >= this.validUntil;
  }

  assertHeld(): void {
    if (this.expired) throw Errors.uploadLocked();
  }

  /** A margin of a sixth of the TTL for clock steps and slow statements. */
  private deadlineFrom(sentAt: number): number {
    return sentAt + this.ttlMs - this.ttlMs / 6;
  }
}

/** What a renewal found: still ours, someone else's, or wanted back by a newer request. */
export type RenewalOutcome = 'held' | 'lost' | 'asked to release';

/**
 * Renews a writer's lease every `everyMs` while its body streams. A writer that lost it stops
 * before it can do harm; one asked to release it stops too (and gives it back in its finally).
 * A renewal that fails is reported and retried: the clock stops the writer if the lease runs out.
 */
export function renewWhileWriting(
  renew: () => Promise<RenewalOutcome>,
  clock: LeaseClock,
  body: Readable,
  everyMs: number,
  onFailure: (err: unknown) => void,
): NodeJS.Timeout {
  const renewOnce = async () => {
    const sentAt = Date.now();
    try {
      const outcome = await renew();
      if (outcome === 'lost') {
        clock.lose();
        body.destroy(Errors.uploadLocked());
        return;
      }
      clock.renewedAt(sentAt);
      if (outcome === 'asked to release') body.destroy(Errors.uploadLocked());
    } catch (err) {
      onFailure(err);
    }
  };
  return setInterval(renewOnce, everyMs).unref();
}

export interface ChunkRules {
  /** Most bytes this chunk may carry: the smaller of MAX_CHUNK_SIZE and what is left of totalSize. */
  limit: number;
  totalSize: number;
  offset: number;
  /** The whole file's md5, continued on a worker thread (not for a part out of order: see PartSpool). */
  md5?: Md5Session;
  expectedChunkMd5?: string;
  /** Hash the chunk itself even when no md5 is expected (a part records its md5). */
  hashChunk?: boolean;
  /** The refusal when the chunk passes `limit` (default: past totalSize or MAX_CHUNK_SIZE). */
  tooLarge?: () => Error;
  lease: LeaseClock;
  gcPacer?: GcPacer;
}

/**
 * Passes the chunk's bytes through to storage, handing them to the whole-file md5 as they go
 * (a copy to a worker thread) and failing (which stops the write) the moment a rule is broken.
 * A stream, not an async iterator: per-buffer work stays synchronous, with no promise per 64 KiB.
 */
export class ChunkInspector extends Transform {
  private seen = 0;
  private readonly chunkHasher?: Hash;
  private savedMd5?: Promise<Uint8Array>;
  private chunkDigest?: string;

  private constructor(
    private readonly rules: ChunkRules,
    private readonly watch: BodyWatch,
  ) {
    super();
    if (rules.expectedChunkMd5 || rules.hashChunk) this.chunkHasher = createHash('md5');
  }

  /** Feeds an inspector from the request body without ever destroying the body: a refused chunk is still read to its end. */
  static inspect(watch: BodyWatch, rules: ChunkRules): ChunkInspector {
    const { body } = watch;
    const inspector = new ChunkInspector(rules, watch);
    // The store's pipeline reports the inspector's failure; this listener only keeps pipe's
    // own error handling from rethrowing it once the pipeline has let go of the stream.
    inspector.on('error', () => {});
    const cut = watch.cutOff();
    if (cut) {
      // Gone while the claim was waiting on the database: its 'error' was emitted before anyone
      // listened, and a destroyed body never ends, so without this the write would wait forever
      // (renewing the lease it holds).
      inspector.destroy(cut);
      return inspector;
    }
    const onBodyError = (err: Error) => inspector.destroy(err);
    body.once('error', onBodyError);
    inspector.once('close', () => body.off('error', onBodyError));
    // pipe (not pipeline) unpipes on the inspector's error and leaves the body readable.
    body.pipe(inspector);
    return inspector;
  }

  override _transform(buffer: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.watch.touch();
    this.seen += buffer.length;
    const { rules } = this;
    if (rules.lease.expired) {
      callback(Errors.uploadLocked());
      return;
    }
    if (this.seen > rules.limit) {
      callback(
        rules.tooLarge?.() ??
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
    if (rules.md5) rules.md5.update(buffer, (err) => (err ? callback(err) : callback(null, buffer)));
    else callback(null, buffer);
  }

  override _flush(callback: TransformCallback): void {
    const actual = (this.chunkDigest = this.chunkHasher?.digest('hex'));
    if (actual !== undefined && this.rules.expectedChunkMd5 !== undefined && actual !== this.rules.expectedChunkMd5) {
      callback(Errors.checksumMismatch(`The chunk arrived with md5 ${actual}, not ${this.rules.expectedChunkMd5}: it was discarded, resend it.`));
      return;
    }
    // The worker finishes hashing while storage flushes the last bytes.
    if (this.rules.md5) {
      this.savedMd5 = this.rules.md5.save();
      this.savedMd5.catch(() => {});
    }
    callback();
  }

  /** The chunk's own md5 (hex) once every byte has passed, if it was hashed. */
  chunkMd5(): string | undefined {
    return this.chunkDigest;
  }

  /** The whole file's md5 state after this chunk; only once every byte has passed. */
  md5State(): Promise<Uint8Array> {
    if (!this.savedMd5) throw new Error('The chunk has not been read to its end.');
    return this.savedMd5;
  }
}

/**
 * Watches a request body: cuts it off when it sends nothing for too long, and reads a refused
 * body to its end so the client gets the answer instead of a reset connection.
 */
export class BodyWatch {
  private timer?: NodeJS.Timeout;

  constructor(
    readonly body: Readable,
    private readonly idleMs: number,
  ) {
    this.touch();
  }

  /** The body made progress: the idle deadline starts again. */
  touch(): void {
    if (this.timer) {
      this.timer.refresh();
      return;
    }
    this.timer = setTimeout(
      () => this.body.destroy(Errors.badInput(`The chunk body sent nothing for ${this.idleMs / 1000} s and was cut off.`)),
      this.idleMs,
    ).unref();
  }

  /** While the server itself is busy (fencing), the client's silence is not its fault. */
  pause(): void {
    this.stop();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** What the body failed with if it was destroyed before its end (client gone, cut off): it will never emit again. */
  cutOff(): Error | undefined {
    const { body } = this;
    if (!body.destroyed || body.readableEnded) return undefined;
    return body.errored ?? Errors.badInput('The chunk was cut off before its end.');
  }

  /** Waits for the body's first byte (false) or its end (true) without consuming anything. */
  endsBeforeFirstByte(): Promise<boolean> {
    const { body } = this;
    const cut = this.cutOff();
    if (cut) return Promise.reject(cut);
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
   * Reads the rest of the body and throws it away; false if it went past `maxBytes` (the
   * caller then closes the connection after answering rather than read on).
   */
  async drain(maxBytes = Infinity): Promise<boolean> {
    if (this.body.destroyed || this.body.readableEnded) return true;
    this.touch();
    let read = 0;
    try {
      for await (const buffer of this.body.iterator({ destroyOnReturn: false })) {
        this.touch();
        read += (buffer as Buffer).length;
        if (read > maxBytes) {
          this.stop();
          return false;
        }
      }
    } catch {
      // The body failed on its own (client gone, timeout): nothing left to read.
    }
    return true;
  }
}

/**
 * Cuts one long request body (a tus PATCH may carry a whole multi-GiB file) into consecutive
 * segments of at most `size` bytes, each its own stream, so each can be written and committed
 * like a chunk: a connection cut mid-way loses at most the segment in flight. Bytes past a
 * segment's end are put back on the body for the next one. Destroying a segment with an error
 * destroys the body (an idle or lost-lease cut-off ends the request, not just the segment).
 */
export class BodySegments {
  constructor(
    private readonly body: Readable,
    private readonly size: number,
  ) {}

  next(): BodySegment {
    return new BodySegment(this.body, this.size);
  }
}

/**
 * The body is read in flowing mode ('data', pause, resume), as a pipe would: reading it with
 * 'readable' and read() made V8 collect a full heap several times more often per GiB.
 */
export class BodySegment extends Readable {
  private left: number;
  /** The segment ended because the whole body did: nothing follows it. */
  endedWithSource = false;

  constructor(
    private readonly source: Readable,
    size: number,
  ) {
    super();
    this.left = size;
    source.on('data', this.onSourceData).once('end', this.sourceEnded).once('error', this.sourceFailed).once('close', this.sourceClosed);
  }

  override _read(): void {
    if (this.source.readableEnded) return this.sourceEnded();
    this.source.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.detach();
    if (err) this.source.destroy(err);
    callback(err);
  }

  private readonly onSourceData = (data: Buffer): void => {
    let buffer = data;
    if (buffer.length > this.left) {
      this.source.pause();
      this.source.unshift(buffer.subarray(this.left));
      buffer = buffer.subarray(0, this.left);
    }
    this.left -= buffer.length;
    const wantsMore = this.push(buffer);
    if (this.left === 0) {
      this.source.pause();
      this.finish();
    } else if (!wantsMore) {
      this.source.pause();
    }
  };

  private readonly sourceEnded = (): void => {
    this.endedWithSource = true;
    this.finish();
  };
  private readonly sourceFailed = (err: Error): void => void this.destroy(err);
  private readonly sourceClosed = (): void => {
    if (!this.source.readableEnded) this.destroy(Errors.badInput('The request was cut off.'));
  };

  private finish(): void {
    this.detach();
    this.push(null);
  }

  private detach(): void {
    this.source.off('data', this.onSourceData).off('end', this.sourceEnded).off('error', this.sourceFailed).off('close', this.sourceClosed);
  }
}

/** Storage that failed on its own becomes an answer a client can act on: retry from `offset` later. */
export function asStorageRefusal(err: unknown, offset: number): unknown {
  return err instanceof StorageUnavailableError ? Errors.storageUnavailable(err.reason, offset) : err;
}
