import { UniqueConstraintViolationException, type MikroORM } from '@mikro-orm/core';
import path from 'node:path';
import type { Logger } from 'pino';
import { ChunkedUpload, File, UploadStatus } from '../entities';
import { Errors } from '../errors';
import type { Readable } from 'node:stream';
import type { ByteRange, FileStore } from '../storage/file-store';
import { escapeLike, isUuid, MAX_FILENAME_BYTES } from './validation';

const NAME_INDEX = 'files_name_lower_unique';
const MAX_NAME_ATTEMPTS = 20;

export class FileService {
  constructor(
    private readonly orm: MikroORM,
    private readonly store: FileStore,
    private readonly log: Logger,
  ) {}

  async findById(id: string): Promise<File | null> {
    if (!isUuid(id)) return null;
    return this.orm.em.fork().findOne(File, { id }, { populate: ['author'] });
  }

  async get(id: string): Promise<File> {
    const file = await this.findById(id);
    if (!file) throw Errors.notFound('File');
    return file;
  }

  /** The stored bytes of a file, or one range of them. */
  open(fileId: string, range?: ByteRange): Promise<Readable> {
    return this.store.readFile(fileId, range);
  }

  /**
   * Turns a fully uploaded, leased upload into a library File in one unit of work: the File
   * row and the upload's COMPLETE status are written in a transaction, the bytes are moved
   * just before it commits, and a failure anywhere rolls the rows back. Moving is idempotent,
   * so if the commit is lost after the move, completing again finishes the job; the bytes
   * are never removed, so there is never a row without bytes.
   */
  async publish(upload: ChunkedUpload, leaseToken: string, details: { description: string; md5: string }): Promise<File> {
    const taken = new Set<string>();
    for (let attempt = 0; attempt < MAX_NAME_ATTEMPTS; attempt++) {
      const name = await this.freeName(upload.filename, taken);
      try {
        const file = await this.orm.em.fork().transactional(async (em) => {
          const completed = await em.nativeUpdate(
            ChunkedUpload,
            { id: upload.id, lockToken: leaseToken, status: UploadStatus.UPLOADING },
            { status: UploadStatus.COMPLETE, lockToken: null, lockExpiresAt: null, updatedAt: new Date() },
          );
          if (completed !== 1) throw Errors.uploadLocked();
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
          await this.store.publishUpload(upload.id, file.id, upload.totalSize);
          return file;
        });
        return this.get(file.id);
      } catch (err) {
        // Two completions raced for one name: the unique index let one through; try the next.
        if (err instanceof UniqueConstraintViolationException && err.message.includes(NAME_INDEX)) {
          taken.add(name.toLowerCase());
          continue;
        }
        throw err;
      }
    }
    this.log.error({ uploadId: upload.id, filename: upload.filename }, 'no free file name after many attempts');
    throw Errors.uploadLocked();
  }

  /** `name.ext`, else the first free `name_N.ext` (API.md: a clash becomes "name_1.ext", ...). */
  private async freeName(wanted: string, alsoTaken: Set<string>): Promise<string> {
    const ext = path.extname(wanted);
    const stem = wanted.slice(0, wanted.length - ext.length);
    const rows: { name: string }[] = await this.orm.em.getConnection().execute(
      `select lower(name) as name from files where lower(name) = lower(?) or lower(name) like lower(?) escape '\\'`,
      [wanted, `${escapeLike(stem)}\\_%${escapeLike(ext)}`],
    );
    const taken = new Set([...rows.map((r) => r.name), ...alsoTaken]);
    if (!taken.has(wanted.toLowerCase())) return wanted;
    for (let n = 1; ; n++) {
      const candidate = withSuffix(stem, `_${n}${ext}`);
      if (!taken.has(candidate.toLowerCase())) return candidate;
    }
  }
}

/** `stem + suffix`, shortening the stem so the whole stays within the 255-byte name limit. */
function withSuffix(stem: string, suffix: string): string {
  const room = MAX_FILENAME_BYTES - Buffer.byteLength(suffix);
  let trimmed = stem;
  // Drop whole code points, never half of one.
  while (Buffer.byteLength(trimmed) > room) trimmed = Array.from(trimmed).slice(0, -1).join('');
  return trimmed + suffix;
}
