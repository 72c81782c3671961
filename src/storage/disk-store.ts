import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, mkdir, open, opendir, rename, rm, stat, truncate, type FileHandle } from 'node:fs/promises';
import type { WriteStream } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  FileMissingError,
  StorageUnavailableError,
  type ByteRange,
  type ChunkWritten,
  type FileStore,
  type StoredUpload,
  type StoreState,
  type WriterLease,
} from './file-store';

const WRITE_BUFFER_BYTES = 1024 * 1024;
const PREFERRED_CHUNK_BYTES = 8 * 1024 * 1024;
/** `<upload id>.part`, or `<upload id>.<generation>.part` once a takeover by that generation fenced it. */
const PART_FILE = /^([0-9a-zA-Z-]{1,64})(?:\.(\d+))?\.part$/;

export interface DiskStoreOptions {
  /** fsync every chunk before acknowledging it (durability of an acknowledged chunk). */
  fsync: boolean;
}

/** Which part file holds an upload's bytes: the generation of the last takeover, if any. */
interface DiskUploadState {
  fencedBy?: number;
}

/**
 * Local-disk storage: `uploads/<id>.part` while in progress, `files/<id>` once published.
 * Both directories sit under one root so publishing is a rename, never a copy.
 *
 * Fencing: a writer opens the part file its committed state names, then checks its lease, then
 * writes through that handle only. A takeover copies the committed bytes into a new part file
 * named by its generation and commits that name: a writer of an older generation keeps writing
 * into the old file, which no committed state names any more.
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

  /**
   * Nothing to do: the part file appears with the first bytes, so an upload that is started and
   * never sent costs a row, not an inode (a user could start thousands).
   */
  async createUpload(): Promise<null> {
    return null;
  }

  async fenceOlderWriters(upload: StoredUpload, lease: WriterLease): Promise<StoreState> {
    const fenced = { fencedBy: lease.generation } satisfies DiskUploadState;
    const from = this.partPath(upload.id, upload.state);
    const to = this.partPath(upload.id, fenced);
    const copied = await storageCall(async () => {
      // A reflink where the file system has them, else an in-kernel copy. Only the committed
      // bytes count: whatever an older writer put after them is cut off.
      try {
        await copyFile(from, to, constants.COPYFILE_FICLONE);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        // Already published by a completion that died before its commit: nothing left to fence.
        if (upload.offset > 0) return false;
        // No byte sent yet: the new generation still needs a file of its own.
        await (await open(to, 'w', 0o600)).close();
      }
      await truncate(to, upload.offset);
      if (this.options.fsync) {
        await syncFile(to);
        await syncFile(this.uploadsDir);
      }
      return true;
    });
    return copied ? fenced : upload.state;
  }

  async writeChunk(upload: StoredUpload, data: Readable, lease: WriterLease): Promise<ChunkWritten> {
    // Created by the first bytes only: a part file lost later is an error, not a silently
    // zero-filled upload.
    const flags = upload.offset === 0 ? constants.O_RDWR | constants.O_CREAT : 'r+';
    const fh = await storageCall(() => open(this.partPath(upload.id, upload.state), flags, 0o600));
    let out: WriteStream | undefined;
    try {
      // Checked once the handle is open: a writer frozen before this point finds its lease gone,
      // and one frozen after it holds the file a takeover has since replaced.
      lease.assertHeld();
      await fh.truncate(upload.offset);
      // While one write is in flight, the buffers behind it queue up and go out in one writev:
      // disk and CPU overlap, and a MiB costs one syscall instead of sixteen. `flush` syncs the
      // bytes to disk before the stream closes the handle, so before the offset can be committed.
      out = fh.createWriteStream({ start: upload.offset, highWaterMark: WRITE_BUFFER_BYTES, flush: this.options.fsync });
      await pipeline(data, out);
      return { bytesWritten: out.bytesWritten, state: upload.state };
    } catch (err) {
      throw asStorageFailure(err);
    } finally {
      // The stream closes the handle itself once it is done, failed or not.
      if (!out) await fh.close();
    }
  }

  async stateCommitted(uploadId: string, previous: StoreState, committed: StoreState): Promise<void> {
    const before = this.partPath(uploadId, previous);
    if (before !== this.partPath(uploadId, committed)) await rm(before, { force: true });
  }

  async publishUpload(upload: StoredUpload, fileId: string): Promise<void> {
    const target = this.filePath(fileId);
    await storageCall(async () => {
      try {
        await rename(this.partPath(upload.id, upload.state), target);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        // An empty file never had bytes, so never a part file.
        if (upload.totalSize === 0) await (await open(target, 'w', 0o600)).close();
        const published = await stat(target).catch(() => null);
        if (published?.size !== upload.totalSize) throw new FileMissingError(`upload ${upload.id}`);
      }
      if (this.options.fsync) await syncFile(this.filesDir);
    });
  }

  async deleteUpload(uploadId: string, state?: StoreState): Promise<void> {
    await rm(this.partPath(uploadId, null), { force: true });
    if (state !== undefined) {
      await rm(this.partPath(uploadId, state), { force: true });
      return;
    }
    // State unknown (an orphan): whatever part files a takeover made for it.
    for await (const entry of await opendir(this.uploadsDir)) {
      if (entry.isFile() && PART_FILE.exec(entry.name)?.[1] === uploadId) await rm(path.join(this.uploadsDir, entry.name), { force: true });
    }
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

  async probe(): Promise<void> {
    await probeDirectory(this.uploadsDir);
    await probeDirectory(this.filesDir);
  }

  async *listUploadIds(): AsyncIterable<string> {
    const seen = new Set<string>();
    for await (const entry of await opendir(this.uploadsDir)) {
      const id = entry.isFile() ? PART_FILE.exec(entry.name)?.[1] : undefined;
      if (id && !seen.has(id)) yield id;
      if (id) seen.add(id);
    }
  }

  async *listFileIds(): AsyncIterable<string> {
    for await (const entry of await opendir(this.filesDir)) {
      if (entry.isFile()) yield entry.name;
    }
  }

  private partPath(uploadId: string, state: StoreState): string {
    const fencedBy = (state as DiskUploadState | null)?.fencedBy;
    const name = fencedBy === undefined ? `${assertSafeKey(uploadId)}.part` : `${assertSafeKey(uploadId)}.${fencedBy}.part`;
    return path.join(this.uploadsDir, name);
  }

  private filePath(fileId: string): string {
    return path.join(this.filesDir, assertSafeKey(fileId));
  }
}

/**
 * The directory exists and takes a new file (what a chunk and a publish need). The probe file's
 * name never matches PART_FILE, so the orphan sweep cannot mistake it for an upload.
 */
export async function probeDirectory(dir: string): Promise<void> {
  const probe = path.join(dir, `.ready-probe-${randomUUID()}`);
  try {
    const fh = await open(probe, 'wx', 0o600);
    await fh.close();
    await rm(probe, { force: true });
  } catch (err) {
    const failure = asStorageFailure(err);
    // A directory that is gone (an unmounted volume, say) is out of reach, not merely read-only.
    throw failure instanceof StorageUnavailableError ? failure : new StorageUnavailableError('unreachable', { cause: err });
  }
}

/** Keys are server-made ids; refusing anything else keeps a path from ever leaving the root. */
export function assertSafeKey(key: string): string {
  if (!/^[0-9a-zA-Z-]{1,64}$/.test(key)) throw new Error(`Refusing unsafe storage key ${JSON.stringify(key)}`);
  return key;
}

/** A new name (or a rename) is durable only once its directory is flushed; file contents once the file is. */
export async function syncFile(file: string): Promise<void> {
  const fh = await open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const FULL = new Set(['ENOSPC', 'EDQUOT']);
const NOT_WRITABLE = new Set(['EROFS', 'EACCES', 'EPERM', 'EIO']);

/** The file system's own failures, as the storage failure a client can wait out. */
export function asStorageFailure(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException)?.code ?? '';
  if (FULL.has(code)) return new StorageUnavailableError('full', { cause: err });
  if (NOT_WRITABLE.has(code)) return new StorageUnavailableError('not writable', { cause: err });
  return err;
}

async function storageCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw asStorageFailure(err);
  }
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}
