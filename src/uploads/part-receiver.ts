import type { MikroORM } from '@mikro-orm/core';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Config } from '../config';
import type { User } from '../entities';
import { type AppError, Errors } from '../errors';
import type { GcPacer } from '../gc-pacer';
import type { PartSpool } from '../storage/part-spool';
import { ChunkInspector, LeaseClock, asStorageRefusal, renewWhileWriting, type BodyWatch } from './chunk-pipeline';
import { ChunkedUpload, UploadStatus } from './chunked-upload.entity';
import { MAX_PARTS, partCountOf } from './direct-upload.service';
import type { PartRepository } from './part.repository';
import type { StreamSlots } from './stream-slots';

/**
 * How far past the first part not appended to the upload yet a part may be: what one upload may
 * spool on local disk (32 parts of at most MAX_CHUNK_SIZE) while it waits for the parts before it.
 */
export const MAX_PARTS_AHEAD = 32;

/**
 * The parts of an upload in parts as they arrive, in any order and several at once: each is
 * written to the spool under its own lease and recorded. Appending them to the upload's prefix
 * is the upload service's (it is the ordinary write path).
 */
export class PartReceiver {
  constructor(
    private readonly orm: MikroORM,
    private readonly parts: PartRepository,
    private readonly spool: PartSpool,
    private readonly streams: StreamSlots,
    private readonly config: Config,
    private readonly log: Logger,
    private readonly gcPacer?: GcPacer,
  ) {}

  /**
   * Writes the part into the spool under its own lease and records it. A part stored before
   * may be sent again (a client that did not see the answer), but only with the same bytes:
   * those are hashed and compared, not written. Returns the upload as the part's commit left it
   * (undefined for a part sent again).
   */
  async receive(owner: User, uploadId: string, partNumber: number, watch: BodyWatch, expectedChunkMd5?: string): Promise<ChunkedUpload | undefined> {
    const claimSentAt = Date.now();
    const claim = await this.parts.claim(uploadId, owner.id, partNumber, MAX_PARTS_AHEAD);
    if (!claim) throw await this.explainRefusal(uploadId, owner.id, partNumber);
    const { lease, size } = claim;
    const ttlMs = this.config.uploadLockTtlSeconds * 1000;
    const clock = new LeaseClock(lease.generation, ttlMs, claimSentAt);
    const renewal = renewWhileWriting(async () => ((await this.parts.renew(lease)) ? 'held' : 'lost'), clock, watch.body, ttlMs / 3, (err) =>
      this.log.warn({ err, uploadId, partNumber }, 'could not renew a part lease; the part stops if the lease runs out'),
    );
    let committed = false;
    try {
      using _slot = this.streams.take(owner);
      const inspector = ChunkInspector.inspect(watch, {
        limit: size,
        totalSize: size,
        offset: 0,
        expectedChunkMd5,
        // A resend is compared with the stored part. A new part is hashed only to check a chunkMd5:
        // hashing every part on this thread would cost as much CPU again as the whole-file md5.
        hashChunk: claim.stored !== undefined,
        lease: clock,
        gcPacer: this.gcPacer,
        tooLarge: () => Errors.badInput(`Part ${partNumber} must be ${size} bytes; more arrived.`),
      });
      const written = claim.stored ? await countBytes(inspector) : await this.spool.write(uploadId, partNumber, lease.generation, inspector).catch((err: unknown) => {
        throw asStorageRefusal(err, claim.uploadOffset);
      });
      const md5 = inspector.chunkMd5();
      if (written !== size) {
        if (!claim.stored) await this.spool.deleteAttempt(uploadId, partNumber, lease.generation);
        throw Errors.badInput(`Part ${partNumber} must be ${size} bytes, not ${written}.`);
      }
      if (claim.stored) {
        const storedMd5 = claim.stored.md5 ?? (await this.spool.md5Of(uploadId, claim.stored));
        // Unknown only for a part sent without chunkMd5 and already appended to the upload: nothing
        // left to compare with, and nothing changes either way (API.md).
        if (storedMd5 !== undefined && md5 !== storedMd5) {
          throw Errors.badInput(`Part ${partNumber} is already stored with other bytes (md5 ${storedMd5}): a stored part can only be sent again unchanged.`);
        }
        return undefined;
      }
      const upload = await this.parts.commit(lease, { size, md5: md5 ?? null });
      if (!upload) {
        // The part's lease was taken over, or the upload ended (aborted, expired) meanwhile.
        await this.spool.deleteAttempt(uploadId, partNumber, lease.generation);
        throw await this.explainRefusal(uploadId, owner.id, partNumber);
      }
      committed = true;
      return upload;
    } finally {
      clearInterval(renewal);
      if (!committed) await this.parts.release(lease).catch((err: unknown) => this.log.warn({ err, uploadId, partNumber }, 'could not release a part lease'));
    }
  }

  /** Part numbers of an upload in parts not stored yet, ascending, at most `first`. */
  async missingParts(upload: ChunkedUpload, first: number): Promise<number[]> {
    if (!Number.isInteger(first) || first < 0 || first > MAX_PARTS) throw Errors.badInput(`first must be between 0 and ${MAX_PARTS}.`);
    if (upload.status !== UploadStatus.UPLOADING || first === 0) return [];
    const partCount = partCountOf(upload) ?? 0;
    const merged = upload.offset >= upload.totalSize ? partCount : Math.floor(upload.offset / upload.partSize!);
    const stored = await this.parts.storedFrom(upload.id, merged + 1);
    const missing: number[] = [];
    for (let n = merged + 1; n <= partCount && missing.length < first; n++) if (!stored.has(n)) missing.push(n);
    return missing;
  }

  /** Why a part's claim failed, in API.md's order of precedence. */
  private async explainRefusal(uploadId: string, ownerId: string, partNumber: number): Promise<AppError> {
    const upload = await this.orm.em.fork().findOne(ChunkedUpload, { id: uploadId, owner: ownerId });
    if (!upload) return Errors.notFound('Upload');
    if (upload.status === UploadStatus.COMPLETE || upload.status === UploadStatus.ABORTED) return Errors.uploadNotActive(upload.status);
    if (upload.status === UploadStatus.EXPIRED || upload.expiresAt <= new Date()) return Errors.uploadExpired();
    if (upload.direct) return Errors.badInput('This is a direct upload: PUT its parts to the URLs signUploadParts gives.');
    if (!upload.partSize) return Errors.badInput('This upload is not in parts: send its bytes with uploadChunk, or start an upload with a partSize.');
    const partCount = partCountOf(upload)!;
    if (partNumber > partCount) return Errors.badInput(`Part ${partNumber} does not exist: this upload has parts 1 to ${partCount}.`);
    const firstUnmerged = Math.floor(upload.offset / upload.partSize) + 1;
    if (partNumber > firstUnmerged + MAX_PARTS_AHEAD) return Errors.partTooFarAhead(partNumber, firstUnmerged, MAX_PARTS_AHEAD);
    // Held by another request, or released between the claim and this read: retry either way.
    return Errors.uploadLocked(`Part ${partNumber} of this upload is being written by another request right now. Retry when it has finished.`);
  }
}

/** Reads a stream to its end, keeping nothing: how many bytes it had. */
async function countBytes(data: Readable): Promise<number> {
  let bytes = 0;
  await pipeline(
    data,
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        bytes += chunk.length;
        done();
      },
    }),
  );
  return bytes;
}
