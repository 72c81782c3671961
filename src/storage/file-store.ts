import type { Readable } from 'node:stream';

/** Inclusive byte range, as in an HTTP Range header. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * What a backend must remember about an upload between chunks (for S3: the multipart upload
 * id, the parts so far and the staged tail). JSON, kept in the upload's row and committed
 * together with the offset, so it is right across restarts and server instances. Null for
 * backends that need nothing (disk).
 */
export type StoreState = Record<string, unknown> | null;

/** A state column as a raw query returns it (jsonb arrives parsed; tolerate text too). */
export function parseState(value: unknown): StoreState {
  if (value === null || value === undefined) return null;
  return (typeof value === 'string' ? JSON.parse(value) : value) as StoreState;
}

/** An upload as the store sees it. */
export interface StoredUpload {
  id: string;
  totalSize: number;
  /** Bytes already stored and counted. */
  offset: number;
  state: StoreState;
}

export interface ChunkWritten {
  bytesWritten: number;
  /** The state to commit with the new offset. */
  state: StoreState;
}

/**
 * Where bytes live: the partial bytes of uploads in progress, and the files of the library.
 * Implementations keep no database state of their own; the upload service decides who may
 * write where, and persists the StoreState they return.
 */
export interface FileStore {
  /** A chunk size that suits this backend for a file of `totalSize` bytes (told to clients). */
  preferredChunkSize(totalSize: number): number;

  /** Makes room for a new upload's bytes; returns its initial state. */
  createUpload(uploadId: string, totalSize: number): Promise<StoreState>;

  /**
   * Writes `data` into the upload after its `offset` bytes and resolves once those bytes
   * are durable. Anything past `offset` left by an earlier cut-off write is discarded or
   * overwritten. If `data` fails, the write stops and the error is rethrown: what was
   * written does not count, and the upload's committed state stays valid.
   * The caller must hold the upload's lease: two writers at once would interleave.
   */
  writeChunk(upload: StoredUpload, data: Readable): Promise<ChunkWritten>;

  /**
   * Moves a finished upload (offset == totalSize) into the library as file `fileId`.
   * Idempotent: when the bytes were already moved (a completion cut off before its database
   * commit), it succeeds without doing anything.
   */
  publishUpload(upload: StoredUpload, fileId: string): Promise<void>;

  /** Forgets an upload's partial bytes; no error if there are none. `state` may be unknown (orphans). */
  deleteUpload(uploadId: string, state?: StoreState): Promise<void>;

  /** Streams a library file, or the given range of it. Rejects with FileMissingError if absent. */
  readFile(fileId: string, range?: ByteRange): Promise<Readable>;

  /** Removes a library file; no error if it is already gone. */
  deleteFile(fileId: string): Promise<void>;

  /** Ids of every upload with partial bytes, and every library file (for the orphan sweep). */
  listUploadIds(): AsyncIterable<string>;
  listFileIds(): AsyncIterable<string>;
}

export class FileMissingError extends Error {
  constructor(readonly key: string) {
    super(`Stored bytes for ${key} are missing.`);
    this.name = 'FileMissingError';
  }
}
