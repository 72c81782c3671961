import { constants, createWriteStream } from 'node:fs';
import { mkdir, open, opendir, rename, rm, stat, truncate, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FileMissingError, type ByteRange, type ChunkWritten, type FileStore, type StoredUpload } from './file-store';

const WRITE_BUFFER_BYTES = 1024 * 1024;
const PREFERRED_CHUNK_BYTES = 8 * 1024 * 1024;
const PART_SUFFIX = '.part';

export interface DiskStoreOptions {
  /** fsync every chunk before acknowledging it (durability of an acknowledged chunk). */
  fsync: boolean;
}

/**
 * Local-disk storage: `uploads/<id>.part` while in progress, `files/<id>` once published.
 * Both directories sit under one root so publishing is a rename, never a copy.
 */
export class DiskStore implements FileStore {
  private readonly uploadsDir: string;
  private readonly filesDir: string;

  private constructor(root: string, private readonly options: DiskStoreOptions) {
    this.uploadsDir = path.join(root, 'uploads');
    this.filesDir = path.join(root, 'files');
  }

  static async open(root: string, options: DiskStoreOptions): Promise<DiskStore> {
    const store = new DiskStore(root, options);
    await mkdir(store.uploadsDir, { recursive: true });
    await mkdir(store.filesDir, { recursive: true });
    return store;
  }

  preferredChunkSize(totalSize: number): number {
    return Math.max(1, Math.min(PREFERRED_CHUNK_BYTES, totalSize));
  }

  async createUpload(uploadId: string): Promise<null> {
    const fh = await open(this.partPath(uploadId), constants.O_CREAT | constants.O_WRONLY | constants.O_TRUNC, 0o600);
    await fh.close();
    return null;
  }

  async writeChunk(upload: StoredUpload, data: Readable): Promise<ChunkWritten> {
    const part = this.partPath(upload.id);
    // Never creates (truncate and r+ fail on a missing file): a lost part file is an error,
    // not a silently zero-filled upload.
    await truncate(part, upload.offset);
    // While one write is in flight, the buffers behind it queue up and go out in one writev:
    // disk and CPU overlap, and a MiB costs one syscall instead of sixteen. `flush` syncs the
    // bytes to disk before the stream closes, so before the offset can be committed.
    const out = createWriteStream(part, {
      flags: 'r+',
      start: upload.offset,
      highWaterMark: WRITE_BUFFER_BYTES,
      flush: this.options.fsync,
    });
    await pipeline(data, out);
    return { bytesWritten: out.bytesWritten, state: null };
  }

  async publishUpload(upload: StoredUpload, fileId: string): Promise<void> {
    const target = this.filePath(fileId);
    try {
      await rename(this.partPath(upload.id), target);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const published = await stat(target).catch(() => null);
      if (published?.size !== upload.totalSize) throw new FileMissingError(`upload ${upload.id}`);
    }
    if (this.options.fsync) await syncDirectory(this.filesDir);
  }

  async deleteUpload(uploadId: string): Promise<void> {
    await rm(this.partPath(uploadId), { force: true });
  }

  async readFile(fileId: string, range?: ByteRange): Promise<Readable> {
    let fh: FileHandle;
    try {
      fh = await open(this.filePath(fileId), 'r');
    } catch (err) {
      if (isNotFound(err)) throw new FileMissingError(`file ${fileId}`);
      throw err;
    }
    return fh.createReadStream({ start: range?.start, end: range?.end, highWaterMark: 256 * 1024 });
  }

  async deleteFile(fileId: string): Promise<void> {
    await rm(this.filePath(fileId), { force: true });
  }

  async *listUploadIds(): AsyncIterable<string> {
    for await (const entry of await opendir(this.uploadsDir)) {
      if (entry.isFile() && entry.name.endsWith(PART_SUFFIX)) yield entry.name.slice(0, -PART_SUFFIX.length);
    }
  }

  async *listFileIds(): AsyncIterable<string> {
    for await (const entry of await opendir(this.filesDir)) {
      if (entry.isFile()) yield entry.name;
    }
  }

  private partPath(uploadId: string): string {
    return path.join(this.uploadsDir, assertSafeKey(uploadId) + PART_SUFFIX);
  }

  private filePath(fileId: string): string {
    return path.join(this.filesDir, assertSafeKey(fileId));
  }
}

/** Keys are server-made ids; refusing anything else keeps a path from ever leaving the root. */
function assertSafeKey(key: string): string {
  if (!/^[0-9a-zA-Z-]{1,64}$/.test(key)) throw new Error(`Refusing unsafe storage key ${JSON.stringify(key)}`);
  return key;
}

/** A rename is durable only once its directory is flushed. */
async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}
