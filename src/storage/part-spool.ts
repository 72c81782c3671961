import { createHash } from 'node:crypto';
import { mkdir, open, opendir, readdir, rm, stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { asStorageFailure, assertSafeKey, syncFile } from './disk-store';

const WRITE_BUFFER_BYTES = 1024 * 1024;

/** A part as the spool reads it back: the attempt (generation) that stored it, and its size. */
export interface SpoolPart {
  partNumber: number;
  generation: number;
  size: number;
}

/** A stored part's spool file is gone or not its recorded size (the disk lost it): it must be sent again. */
export class SpooledPartLost extends Error {
  constructor(
    readonly uploadId: string,
    readonly part: SpoolPart,
    foundSize: number | undefined,
  ) {
    super(`Spooled part ${part.partNumber} of upload ${uploadId} ${foundSize === undefined ? 'is missing' : `has ${foundSize} bytes, not ${part.size}`}.`);
    this.name = 'SpooledPartLost';
  }
}

/**
 * Local disk where the parts of an upload in parts wait until the upload's contiguous prefix
 * reaches them (then they are appended to the store in order, hashed on the way, and deleted):
 * `<root>/<upload id>/<part>.<generation>`. Each attempt at a part writes a file of its own, so
 * a writer that lost its lease (frozen, cut off) can never touch the bytes another attempt stored.
 */
export class PartSpool {
  constructor(
    private readonly root: string,
    private readonly options: { fsync: boolean },
  ) {}

  /** Writes one attempt at a part; resolves with its size once its bytes and name are durable. */
  async write(uploadId: string, partNumber: number, generation: number, data: Readable): Promise<number> {
    const dir = this.uploadDir(uploadId);
    const file = this.partPath(uploadId, partNumber, generation);
    try {
      const created = await mkdir(dir, { recursive: true });
      const fh = await open(file, 'w', 0o600);
      const out = fh.createWriteStream({ highWaterMark: WRITE_BUFFER_BYTES, flush: this.options.fsync });
      await pipeline(data, out);
      if (this.options.fsync) {
        await syncFile(dir);
        if (created !== undefined) await syncFile(this.root);
      }
      return out.bytesWritten;
    } catch (err) {
      await rm(file, { force: true });
      throw asStorageFailure(err);
    }
  }

  /**
   * The parts' bytes one after the other, from `skip` bytes into the first: a merge cut off
   * mid-part resumes where its last commit left off. A file that is not the size recorded
   * fails the stream, so nothing past it is ever counted.
   */
  readRun(uploadId: string, parts: SpoolPart[], skip: number): Readable {
    const spool = this;
    return Readable.from(
      (async function* () {
        let start = skip;
        for (const part of parts) {
          const file = spool.partPath(uploadId, part.partNumber, part.generation);
          const size = await stat(file).then(
            (found) => found.size,
            (err: NodeJS.ErrnoException) => {
              if (err.code === 'ENOENT') return undefined;
              throw err;
            },
          );
          if (size !== part.size) throw new SpooledPartLost(uploadId, part, size);
          yield* createReadStream(file, { start, highWaterMark: WRITE_BUFFER_BYTES });
          start = 0;
        }
      })(),
      { objectMode: false },
    );
  }

  /** The md5 (hex) of a spooled part; undefined once it is gone (appended to its upload). */
  async md5Of(uploadId: string, part: { partNumber: number; generation: number }): Promise<string | undefined> {
    const hash = createHash('md5');
    try {
      for await (const data of createReadStream(this.partPath(uploadId, part.partNumber, part.generation))) hash.update(data as Buffer);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return hash.digest('hex');
  }

  /** Drops every attempt at these parts (merged into the store, or superseded). */
  async deleteParts(uploadId: string, partNumbers: Iterable<number>): Promise<void> {
    const wanted = new Set(partNumbers);
    const names = await readdir(this.uploadDir(uploadId)).catch(() => [] as string[]);
    await Promise.all(
      names.filter((name) => wanted.has(Number(name.split('.')[0]))).map((name) => rm(path.join(this.uploadDir(uploadId), name), { force: true })),
    );
  }

  /** Drops an attempt that did not count (a failed write, or a resend identical to the stored part). */
  async deleteAttempt(uploadId: string, partNumber: number, generation: number): Promise<void> {
    await rm(this.partPath(uploadId, partNumber, generation), { force: true });
  }

  async deleteUpload(uploadId: string): Promise<void> {
    await rm(this.uploadDir(uploadId), { recursive: true, force: true });
  }

  /** Ids of every upload with spooled parts (for the orphan sweep). */
  async *listUploadIds(): AsyncIterable<string> {
    const dir = await opendir(this.root).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (!dir) return;
    for await (const entry of dir) if (entry.isDirectory()) yield entry.name;
  }

  private uploadDir(uploadId: string): string {
    return path.join(this.root, assertSafeKey(uploadId));
  }

  private partPath(uploadId: string, partNumber: number, generation: number): string {
    return path.join(this.uploadDir(uploadId), `${partNumber}.${generation}`);
  }
}
