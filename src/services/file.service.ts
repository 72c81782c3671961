import { raw, UniqueConstraintViolationException, type EntityManager, type FilterQuery, type MikroORM } from '@mikro-orm/core';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { File, FileStatus, type User } from '../entities';
import { Errors } from '../errors';
import type { ByteRange, FileStore } from '../storage/file-store';
import { cleanDescription, cleanSearch, escapeLike, isUuid, MAX_FILENAME_BYTES, requireInstant } from './validation';

const NAME_INDEX = 'files_name_lower_unique';
const MAX_NAME_ATTEMPTS = 20;
const MAX_PAGE_SIZE = 100;

export interface FileListQuery {
  first: number;
  /** An opaque cursor from a previous page's edge. */
  after?: string | null;
  /** Strictly before this instant. */
  uploadedBefore?: Date | null;
  /** A case-insensitive substring of the name; `%`, `_` and quotes are plain characters. */
  search?: string | null;
  /** Files in this status; READY when not given. */
  status?: FileStatus | null;
}

export interface FilePage {
  files: File[];
  cursors: string[];
  hasNextPage: boolean;
  totalCount: number;
}

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

  /**
   * Newest first with the id as tie-break. The cursor is the last row's (uploadedAt, id), so
   * a page starts strictly after it: files added meanwhile land before page one, never inside
   * later pages, and no file is skipped or repeated.
   */
  async list(query: FileListQuery): Promise<FilePage> {
    if (!Number.isInteger(query.first) || query.first < 0 || query.first > MAX_PAGE_SIZE) {
      throw Errors.badInput(`first must be between 0 and ${MAX_PAGE_SIZE}.`);
    }
    const uploadedBefore = query.uploadedBefore ? requireInstant(query.uploadedBefore, 'uploadedBefore') : undefined;
    const search = query.search ? cleanSearch(query.search) : undefined;
    const cursor = query.after ? decodeCursor(query.after) : undefined;
    // Built afresh for each query: a raw() key in a filter can be used only once.
    const filters = (): FilterQuery<File>[] => [
      { status: query.status ?? FileStatus.READY },
      ...(uploadedBefore ? [{ uploadedAt: { $lt: uploadedBefore } }] : []),
      ...(search ? [nameContains(search)] : []),
    ];
    const em = this.orm.em.fork();
    const page: FilterQuery<File>[] = filters();
    if (cursor) {
      page.push({
        $or: [{ uploadedAt: { $lt: cursor.uploadedAt } }, { uploadedAt: cursor.uploadedAt, id: { $lt: cursor.id } }],
      });
    }
    const counted = filters();
    const [rows, totalCount] = await Promise.all([
      em.find(File, { $and: page }, {
        orderBy: [{ uploadedAt: 'desc' }, { id: 'desc' }],
        limit: query.first + 1,
        populate: ['author'],
      }),
      em.fork().count(File, { $and: counted }),
    ]);
    const files = rows.slice(0, query.first);
    return { files, cursors: files.map(encodeCursor), hasNextPage: rows.length > query.first, totalCount };
  }

  /** The newest READY file, optionally strictly before an instant (the "older than 30 days" view). */
  async newest(uploadedBefore?: Date | null): Promise<File | null> {
    if (uploadedBefore) requireInstant(uploadedBefore, 'uploadedBefore');
    const [file] = await this.orm.em
      .fork()
      .find(File, { status: FileStatus.READY, ...(uploadedBefore ? { uploadedAt: { $lt: uploadedBefore } } : {}) }, {
        orderBy: [{ uploadedAt: 'desc' }, { id: 'desc' }],
        limit: 1,
        populate: ['author'],
      });
    return file ?? null;
  }

  async updateDescription(actor: User, id: string, description: string): Promise<File> {
    const em = this.orm.em.fork();
    const file = isUuid(id) ? await em.findOne(File, { id }, { populate: ['author'] }) : null;
    if (!file) throw Errors.notFound('File');
    assertMayChange(actor, file);
    file.description = cleanDescription(description);
    await em.flush();
    return file;
  }

  /**
   * Deletes the row, then the bytes once the row is gone for good. Bytes that cannot be
   * removed are logged and left to the cleanup's orphan sweep: never a row without bytes.
   */
  async delete(actor: User, id: string): Promise<void> {
    const em = this.orm.em.fork();
    const file = isUuid(id) ? await em.findOne(File, { id }) : null;
    if (!file) throw Errors.notFound('File');
    assertMayChange(actor, file);
    await em.remove(file).flush();
    this.log.info({ fileId: id, name: file.name, size: file.size, by: actor.id }, 'file deleted');
    try {
      await this.store.deleteFile(id);
    } catch (err) {
      this.log.error({ err, fileId: id }, 'file row deleted but its bytes could not be removed; cleanup will retry');
    }
  }

  /** A file whose bytes may be served: READY, else FILE_NOT_READY (HTTP 409). */
  async getReady(id: string): Promise<File> {
    const file = await this.get(id);
    if (file.status !== FileStatus.READY) throw Errors.fileNotReady(file.status, file.statusReason);
    return file;
  }

  /** The stored bytes of a file, or one range of them. */
  open(fileId: string, range?: ByteRange): Promise<Readable> {
    return this.store.readFile(fileId, range);
  }

  /**
   * Runs `create` in a transaction with the first free name for `wanted` (API.md: a clash
   * becomes "name_1.ext", ...). Two creators racing for one name: the unique index lets one
   * through, and the other runs again with the next free name.
   */
  async createWithFreeName(wanted: string, create: (em: EntityManager, name: string) => Promise<File>): Promise<File> {
    const taken = new Set<string>();
    for (let attempt = 0; attempt < MAX_NAME_ATTEMPTS; attempt++) {
      const name = await this.freeName(wanted, taken);
      try {
        const file = await this.orm.em.fork().transactional((em) => create(em, name));
        return this.get(file.id);
      } catch (err) {
        if (err instanceof UniqueConstraintViolationException && err.message.includes(NAME_INDEX)) {
          taken.add(name.toLowerCase());
          continue;
        }
        throw err;
      }
    }
    this.log.error({ filename: wanted }, 'no free file name after many attempts');
    throw Errors.uploadLocked();
  }

  /** `name.ext`, else the first free `name_N.ext` (API.md: a clash becomes "name_1.ext", ...). */
  private async freeName(wanted: string, alsoTaken: Set<string>): Promise<string> {
    const ext = path.extname(wanted);
    const stem = wanted.slice(0, wanted.length - ext.length);
    const rows: { name: string }[] = await this.orm.em.getConnection().execute(
      // A REJECTED file's name is free again (the unique index leaves those rows out too).
      `select lower(name) as name from files where status <> 'REJECTED' and (lower(name) = lower(?) or lower(name) like lower(?) escape '\\')`,
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

function assertMayChange(actor: User, file: File): void {
  if (!actor.isAdmin && file.author?.id !== actor.id) throw Errors.forbidden('Only the file\'s author or an admin may change it.');
}

/**
 * `lower(name) like lower('%term%')`: the shape the trigram index `files_name_trgm` (on
 * lower(name)) serves, so a substring search does not read every row. Both sides go through
 * the database's lower(), so they fold case alike; `escapeLike` makes `%`, `_` and `\` plain
 * characters (backslash is LIKE's default escape).
 */
export function nameContains(search: string): FilterQuery<File> {
  return { [raw((alias) => `lower(${alias}.name)`)]: { $like: raw('lower(?)', [`%${escapeLike(search)}%`]) } } as FilterQuery<File>;
}

function encodeCursor(file: File): string {
  return Buffer.from(`${file.uploadedAt.toISOString()}|${file.id}`).toString('base64url');
}

/** What encodeCursor writes: toISOString of a date within years 1 to 9999 (4 digits). */
const CURSOR_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function decodeCursor(cursor: string): { uploadedAt: Date; id: string } {
  const [iso, id] = Buffer.from(cursor, 'base64url').toString().split('|');
  const uploadedAt = new Date(iso);
  // A forged instant the database cannot compare with (year 0, or -271821) must not reach it.
  if (!id || !isUuid(id) || !CURSOR_INSTANT.test(iso ?? '') || Number.isNaN(uploadedAt.getTime()) || uploadedAt.toISOString() !== iso) {
    throw Errors.badInput('after is not a cursor this API gave out.');
  }
  return { uploadedAt: requireInstant(uploadedAt, 'after'), id };
}

/** `stem + suffix`, shortening the stem so the whole stays within the 255-byte name limit. */
function withSuffix(stem: string, suffix: string): string {
  const room = MAX_FILENAME_BYTES - Buffer.byteLength(suffix);
  let trimmed = stem;
  // Drop whole code points, never half of one.
  while (Buffer.byteLength(trimmed) > room) trimmed = Array.from(trimmed).slice(0, -1).join('');
  return trimmed + suffix;
}
