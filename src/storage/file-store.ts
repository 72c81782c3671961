import type { Readable } from 'node:stream';

/** Inclusive byte range, as in an HTTP Range header. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Where bytes live: the partial bytes of uploads in progress, and the files of the library.
 * Implementations hold no database state; the upload service decides who may write where.
 */
export interface FileStore {
  /** Makes room for a new upload's bytes (an empty partial file). */
  createUpload(uploadId: string): Promise<void>;

  /**
   * Writes `data` into the upload starting at `offset` and resolves with the byte count once
   * those bytes are durable. Anything past `offset` left by an earlier cut-off write is
   * discarded first. If `data` throws, the write stops and the error is rethrown: bytes past
   * `offset` may remain, but they do not count and the next write discards them.
   * The caller must hold the upload's lease: two writers at once would interleave.
   */
  writeChunk(uploadId: string, offset: number, data: AsyncIterable<Buffer>): Promise<number>;

  /**
   * Moves a finished upload of `size` bytes into the library as file `fileId`.
   * Idempotent: when the bytes were already moved (a completion cut off before its database
   * commit), it succeeds without doing anything.
   */
  publishUpload(uploadId: string, fileId: string, size: number): Promise<void>;

  /** Forgets an upload's partial bytes; no error if there are none. */
  deleteUpload(uploadId: string): Promise<void>;

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
