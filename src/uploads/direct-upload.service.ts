import type { MikroORM } from '@mikro-orm/core';
import type { Logger } from 'pino';
import type { Config } from '../config';
import { File, FileStatus, type User } from '../entities';
import { Errors } from '../errors';
import type { FileService } from '../services/file.service';
import { isUuid, parseMd5 } from '../services/validation';
import type { DirectUploads, FileStore, StoredPart, StoredUpload } from '../storage/file-store';
import { ChunkedUpload, UploadStatus } from './chunked-upload.entity';
import type { FileVerifier } from './file-verifier';
import type { Claimed, LeaseRepository } from './lease.repository';

const MiB = 1024 * 1024;
/** S3's rules for multipart uploads: parts but the last of 5 MiB to 5 GiB, at most 10,000 of them. */
export const MIN_DIRECT_PART_SIZE = 5 * MiB;
export const MAX_DIRECT_PART_SIZE = 5 * 1024 * MiB;
export const MAX_PARTS = 10_000;
/** The most parts one signUploadParts signs. */
export const MAX_SIGN_BATCH = 100;

export interface SignedPart {
  partNumber: number;
  url: string;
  headers: { name: string; value: string }[];
  expiresAt: Date;
}

/** `ceil(totalSize / partSize)`, or null for an upload that is not in parts. */
export function partCountOf(upload: Pick<ChunkedUpload, 'totalSize' | 'partSize'>): number | null {
  return upload.partSize ? Math.ceil(upload.totalSize / upload.partSize) : null;
}

/**
 * StartUploadInput's partSize, checked against `direct` (API.md: direct needs a partSize of at
 * least 5 MiB, and S3 allows at most 10,000 parts of at most 5 GiB). A part that is not sent
 * directly (direct not asked, or not granted) passes through the server as one uploadPart
 * request: at most MAX_CHUNK_SIZE.
 */
export function checkPartSize(
  input: { partSize?: number | null; direct?: boolean | null },
  totalSize: number,
  { maxChunkSize, directGranted }: { maxChunkSize: number; directGranted: boolean },
): number | null {
  if (input.partSize == null) {
    if (input.direct) throw Errors.badInput('A direct upload needs a partSize (at least 5 MiB).');
    return null;
  }
  const partSize = input.partSize;
  if (!Number.isSafeInteger(partSize) || partSize < 1) throw Errors.badInput('partSize must be a whole number of bytes, at least 1.');
  if (input.direct && (partSize < MIN_DIRECT_PART_SIZE || partSize > MAX_DIRECT_PART_SIZE)) {
    throw Errors.badInput(`A direct upload's partSize must be between ${MIN_DIRECT_PART_SIZE} (5 MiB) and ${MAX_DIRECT_PART_SIZE} (5 GiB) bytes.`);
  }
  // Direct asked but not granted: the parts come through the server, one request each.
  if (!directGranted && partSize > maxChunkSize) {
    throw Errors.badInput(
      `partSize must be at most the largest chunk, ${maxChunkSize} bytes${input.direct ? ': this server does not grant direct uploads, so the parts come through it' : ''}.`,
    );
  }
  if (Math.ceil(totalSize / partSize) > MAX_PARTS) {
    throw Errors.badInput(`With this partSize the file would need more than ${MAX_PARTS} parts: take at least ${Math.ceil(totalSize / MAX_PARTS)} bytes.`);
  }
  return partSize;
}

/**
 * Direct uploads: the server signs part URLs for the owner, and at completion checks what the
 * store holds, joins the parts and files the upload as VERIFYING; the FileVerifier reads it
 * once afterwards. The bytes never pass through this process.
 */
export class DirectUploadService {
  constructor(
    private readonly orm: MikroORM,
    private readonly leases: LeaseRepository,
    private readonly store: FileStore,
    private readonly files: FileService,
    private readonly verifier: FileVerifier,
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  /** Whether this server grants direct uploads (its store takes bytes itself). */
  get available(): boolean {
    return this.store.direct !== undefined;
  }

  /**
   * Presigned PUT URLs for the owner's parts, valid DIRECT_URL_TTL seconds. Signing again is
   * fine (a link that expired). Each signing counts as activity: the upload lives UPLOAD_TTL
   * from now. With `partMd5s` (hex, one per part), each URL carries that md5 as a signed
   * Content-MD5, so the store itself refuses a part damaged on the way.
   */
  async sign(owner: User, uploadId: string, partNumbers: number[], partMd5s?: string[] | null): Promise<SignedPart[]> {
    if (partNumbers.length === 0 || partNumbers.length > MAX_SIGN_BATCH) {
      throw Errors.badInput(`Ask for 1 to ${MAX_SIGN_BATCH} parts at a time.`);
    }
    if (new Set(partNumbers).size !== partNumbers.length) throw Errors.badInput('partNumbers must not repeat a part.');
    if (partMd5s != null && partMd5s.length !== partNumbers.length) throw Errors.badInput('partMd5s must have one md5 for each of partNumbers.');
    const md5s = partMd5s?.map((m) => parseMd5(m, 'partMd5s'));
    if (!isUuid(uploadId)) throw Errors.notFound('Upload');
    const em = this.orm.em.fork();
    const upload = await em.findOne(ChunkedUpload, { id: uploadId, owner: owner.id });
    if (!upload) throw Errors.notFound('Upload');
    if (!upload.direct || !this.store.direct) throw Errors.badInput('This is not a direct upload: send its bytes with uploadChunk.');
    const partCount = partCountOf(upload)!;
    const outside = partNumbers.find((n) => !Number.isInteger(n) || n < 1 || n > partCount);
    if (outside !== undefined) throw Errors.badInput(`Part ${outside} does not exist: this upload has parts 1 to ${partCount}.`);
    if (upload.status === UploadStatus.COMPLETE || upload.status === UploadStatus.ABORTED) throw Errors.uploadNotActive(upload.status);
    if (!(await this.keepAlive(uploadId))) throw Errors.uploadExpired();
    const direct = this.store.direct;
    const stored = storedUpload(upload);
    const expiresInSeconds = this.config.directUrlTtlSeconds;
    // The SDK signs with the clock as it is now: the link ends expiresIn after that instant at the latest.
    const expiresAt = new Date(Date.now() + expiresInSeconds * 1000);
    return Promise.all(
      partNumbers.map(async (partNumber, i) => ({
        partNumber,
        ...(await direct.presignPart(stored, partNumber, { expiresInSeconds, md5: md5s?.[i] })),
        expiresAt,
      })),
    );
  }

  /** Part numbers the store does not hold yet, ascending, `first` at most. */
  async missingParts(upload: ChunkedUpload, first: number): Promise<number[]> {
    if (!Number.isInteger(first) || first < 0 || first > MAX_PARTS) throw Errors.badInput(`first must be between 0 and ${MAX_PARTS}.`);
    if (!upload.direct || !this.store.direct || upload.status !== UploadStatus.UPLOADING || first === 0) return [];
    const held = new Set((await this.store.direct.listParts(storedUpload(upload))).map((p) => p.partNumber));
    const missing: number[] = [];
    for (let n = 1; n <= partCountOf(upload)! && missing.length < first; n++) if (!held.has(n)) missing.push(n);
    return missing;
  }

  /**
   * Completion of a direct upload under the caller's lease: the parts the store lists must be
   * exactly parts 1 to partCount at their sizes, each with an ETag; then, in one transaction,
   * the upload becomes COMPLETE, the File is created VERIFYING with its verification job, and
   * the store joins those parts (under the ETags it reported, so a part replaced since fails the
   * join). The verifier is woken at once.
   */
  async complete({ lease, upload }: Claimed, details: { md5?: string; description: string }): Promise<File> {
    if (!details.md5) throw Errors.badInput('A direct upload completes with the md5 of the whole file.');
    const md5 = details.md5;
    const direct = this.store.direct as DirectUploads;
    const stored = storedUpload(upload);
    const parts = checkParts(upload, await direct.listParts(stored));
    const file = await this.files.createWithFreeName(upload.filename, async (em, name) => {
      if (!(await this.leases.complete(em, lease))) throw Errors.uploadLocked();
      const tx = em.getTransactionContext();
      await em.getConnection().execute(`update chunked_uploads set "offset" = total_size where id = ?`, [upload.id], 'all', tx);
      const created = em.create(File, {
        id: upload.id,
        name,
        description: details.description,
        size: upload.totalSize,
        md5,
        mimeType: upload.mimeType,
        author: upload.owner,
        uploadedAt: new Date(),
        status: FileStatus.VERIFYING,
      });
      await em.flush();
      await em.getConnection().execute(`insert into file_verifications (file_id, expected_md5) values (?, ?)`, [upload.id, md5], 'all', tx);
      await direct.completeParts(stored, parts);
      return created;
    });
    this.verifier.wake();
    this.log.info({ uploadId: upload.id, fileId: file.id, name: file.name, size: file.size, md5, parts: parts.length }, 'direct upload completed; verifying');
    return file;
  }

  /** UPLOAD_TTL from now, for an upload still UPLOADING and not expired; false otherwise. */
  private async keepAlive(uploadId: string): Promise<boolean> {
    const rows = await this.orm.em.getConnection().execute<unknown[]>(
      `update chunked_uploads set expires_at = greatest(expires_at, now() + make_interval(secs => ?)), updated_at = now()
        where id = ? and status = 'UPLOADING' and expires_at > now() returning id`,
      [this.config.uploadTtlSeconds, uploadId],
    );
    return rows.length === 1;
  }
}

function storedUpload(upload: ChunkedUpload): StoredUpload {
  return { id: upload.id, totalSize: upload.totalSize, offset: upload.offset, state: upload.storageState ?? null };
}

/**
 * Parts 1 to partCount, each of partSize bytes but the last (the rest), each with an ETag.
 * Missing parts: UPLOAD_INCOMPLETE with `missingParts` (the first 100); a wrong size or no
 * ETag: BAD_USER_INPUT (send that part again). Parts past partCount are left out of the join.
 */
function checkParts(upload: ChunkedUpload, listed: StoredPart[]): StoredPart[] {
  const partSize = upload.partSize!;
  const partCount = partCountOf(upload)!;
  const byNumber = new Map(listed.map((p) => [p.partNumber, p]));
  const missing: number[] = [];
  let contiguous = 0;
  for (let n = 1; n <= partCount; n++) {
    if (!byNumber.has(n)) missing.push(n);
    else if (missing.length === 0) contiguous += byNumber.get(n)!.size;
  }
  if (missing.length > 0) throw Errors.uploadIncomplete(Math.min(contiguous, upload.totalSize), upload.totalSize, { missingParts: missing.slice(0, 100) });
  const parts: StoredPart[] = [];
  let sum = 0;
  for (let n = 1; n <= partCount; n++) {
    const part = byNumber.get(n)!;
    const expected = n < partCount ? partSize : upload.totalSize - partSize * (partCount - 1);
    if (part.size !== expected) throw Errors.badInput(`Part ${n} holds ${part.size} bytes, not ${expected}: sign it again and send the right bytes.`);
    if (!part.etag) throw Errors.badInput(`The store reports no ETag for part ${n}: send it again.`);
    sum += part.size;
    parts.push(part);
  }
  if (sum !== upload.totalSize) throw Errors.badInput(`The parts hold ${sum} bytes, not ${upload.totalSize}.`);
  return parts;
}
