import { constants } from 'node:fs';
import { mkdir, open, opendir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { FileMissingError, type ByteRange, type ChunkWritten, type FileStore, type StoredUpload } from './file-store';

/** Writes are batched to this size: one syscall per MiB instead of one per socket read. */
const WRITE_BATCH_BYTES = 1024 * 1024;
const PREFERRED_CHUNK_BYTES = 8 * 1024 * 1024;
const PART_SUFFIX = '.part';

export interface DiskStoreOptions {
  /** fdatasync every chunk before acknowledging it (durability of an acknowledged chunk). */
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

  async writeChunk(upload: StoredUpload, data: AsyncIterable<Buffer>): Promise<ChunkWritten> {
    const { offset } = upload;
    // r+ never creates: a missing part file is an error, not a silently zero-filled upload.
    const fh = await open(this.partPath(upload.id), 'r+');
    try {
      await fh.truncate(offset);
      let position = offset;
      let batch: Buffer[] = [];
      let batchBytes = 0;
      // One batch is written while the next is read and hashed, so disk and CPU overlap.
      let inFlight: Promise<void> = Promise.resolve();
      const flush = async () => {
        await inFlight;
        inFlight = writeFully(fh, batch, position);
        inFlight.catch(() => {}); // awaited below; this only keeps it from counting as unhandled
        position += batchBytes;
        batch = [];
        batchBytes = 0;
      };
      try {
        for await (const buffer of data) {
          batch.push(buffer);
          batchBytes += buffer.length;
          if (batchBytes >= WRITE_BATCH_BYTES) await flush();
        }
        if (batchBytes > 0) await flush();
      } finally {
        await inFlight;
      }
      if (this.options.fsync) await fh.datasync();
      return { bytesWritten: position - offset, state: null };
    } finally {
      await fh.close();
    }
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

async function writeFully(fh: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let pending = buffers;
  while (pending.length > 0) {
    const { bytesWritten } = await fh.writev(pending, position);
    position += bytesWritten;
    pending = dropWritten(pending, bytesWritten);
  }
}

function dropWritten(buffers: Buffer[], written: number): Buffer[] {
  const rest: Buffer[] = [];
  for (const buffer of buffers) {
    if (written >= buffer.length) {
      written -= buffer.length;
    } else {
      rest.push(written > 0 ? buffer.subarray(written) : buffer);
      written = 0;
    }
  }
  return rest;
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
