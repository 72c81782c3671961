import type { Readable } from 'node:stream';
import type { StorageFailure } from '../errors';

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
  /**
   * The state to commit with the new offset: the very object the upload had when the write
   * changed nothing in it (then its commit may skip the database's WAL flush).
   */
  state: StoreState;
}

/**
 * The writer's side of an upload's lease, handed to the store with every write. Leases are
 * fenced: each claim takes a higher generation, and a claim that takes over a lease which ran
 * out unreleased first has the store fence off everything an older generation may still do.
 */
export interface WriterLease {
  /** Monotonic per upload: a later claim always has a higher generation. */
  readonly generation: number;
  /**
   * Throws (UPLOAD_LOCKED) once this writer can no longer be sure it holds the lease. Stores
   * call it after they have a handle on where the bytes go and before each write that a
   * later holder could see.
   */
  assertHeld(): void;
}

/** A part as the object store holds it. */
export interface StoredPart {
  partNumber: number;
  size: number;
  etag: string;
}

/** A presigned request for one part: PUT the part's bytes to `url` with exactly `headers`. */
export interface PresignedPart {
  url: string;
  headers: { name: string; value: string }[];
}

/**
 * Direct uploads (object stores only): clients PUT the parts of an upload straight to the store
 * over presigned URLs, and the server only signs, checks and completes.
 */
export interface DirectUploads {
  /** Where presigned URLs point (scheme, host, port): the browser page must be allowed to connect there. */
  readonly clientOrigin: string;
  /** The upload's initial state, for parts of exactly `partSize` bytes (but the last). */
  createDirectUpload(uploadId: string, partSize: number): Promise<StoreState>;
  /** A URL valid `expiresInSeconds`; with `md5` (hex), the store refuses a part whose bytes do not have it. */
  presignPart(upload: StoredUpload, partNumber: number, options: { expiresInSeconds: number; md5?: string }): Promise<PresignedPart>;
  /** Every part stored so far, ascending. */
  listParts(upload: StoredUpload): Promise<StoredPart[]>;
  /** Joins exactly these parts into the file `upload.id`. Idempotent: a file already there is left alone. */
  completeParts(upload: StoredUpload, parts: StoredPart[]): Promise<void>;
}

/**
 * Where bytes live: the partial bytes of uploads in progress, and the files of the library.
 * Implementations keep no database state of their own; the upload service decides who may
 * write where, and persists the StoreState they return. Failures of the storage itself (full,
 * read-only, unreachable) are thrown as StorageUnavailableError.
 */
export interface FileStore {
  /** Present when clients can send bytes to the store itself (S3). */
  readonly direct?: DirectUploads;

  /** A chunk size that suits this backend for a file of `totalSize` bytes (told to clients). */
  preferredChunkSize(totalSize: number): number;

  /** Makes room for a new upload's bytes; returns its initial state. */
  createUpload(uploadId: string, totalSize: number): Promise<StoreState>;

  /**
   * Called by a writer that took over a lease which ran out without being released: its
   * holder (a frozen process, say) may still wake up and write. Afterwards nothing a writer of
   * an older generation does can become visible. Returns the state to persist before writing.
   */
  fenceOlderWriters(upload: StoredUpload, lease: WriterLease): Promise<StoreState>;

  /**
   * Writes `data` into the upload after its `offset` bytes and resolves once those bytes
   * are durable. Anything past `offset` left by an earlier cut-off write is discarded or
   * overwritten. If `data` fails, the write stops and the error is rethrown: what was
   * written does not count, and the upload's committed state stays valid.
   */
  writeChunk(upload: StoredUpload, data: Readable, lease: WriterLease): Promise<ChunkWritten>;

  /**
   * A state this store returned (from a chunk or a fence) is now committed in place of
   * `previous`: forget what only the previous state needed (S3: tail objects merged into a
   * part; disk: the file a fence replaced). Best effort; publishing and deleting the upload
   * remove what is left.
   */
  stateCommitted(uploadId: string, previous: StoreState, committed: StoreState): Promise<void>;

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

  /**
   * Readiness (GET /readyz): resolves when the store can take bytes now, else rejects with a
   * StorageUnavailableError. Cheap and quick: a probe file on disk, one HeadBucket on S3.
   */
  probe(): Promise<void>;

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

/** The storage itself failed (not the request): disk full or read-only, object store down. */
export class StorageUnavailableError extends Error {
  constructor(
    readonly reason: StorageFailure,
    options?: { cause?: unknown },
  ) {
    super(`Storage is ${reason}.`, options);
    this.name = 'StorageUnavailableError';
  }
}
