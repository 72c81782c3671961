/**
 * The SDK for Node (22.12 and later): `new UploadClient({ url }).upload(pathOrBlob, options)`. Resume records
 * live in memory by default; pass `store: new JsonFileResumeStore(file)` to resume across runs.
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { mkdir, open, readFile, realpath, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createClient } from 'graphql-ws';
import { postMultipart } from './node-http.js';
import type { ChunkSource } from './source.js';
import { MemoryResumeStore, type ResumeRecord, type ResumeStore } from './store.js';
import { BaseUploadClient, type ClientOptions, type Md5Hasher, type Platform } from './upload-client.js';

export * from './errors.js';
export * from './format.js';
export * from './live.js';
export * from './source.js';
export * from './store.js';
export * from './upload-client.js';
export type { TransportOptions, FetchLike } from './transport.js';

/** One store for the whole process, so two clients (or two calls) share resume records. */
const processStore = new MemoryResumeStore();

/**
 * OpenSSL's md5, faster than hash-wasm's here (the client hashes every byte twice: the file and
 * each chunk's own md5); a saved state is a copy of the Hash.
 */
class NodeMd5 implements Md5Hasher {
  private hash: Hash = createHash('md5');

  init(): void {
    this.hash = createHash('md5');
  }

  update(data: Uint8Array): void {
    this.hash.update(data);
  }

  digest(outputType: 'hex'): string {
    return this.hash.digest(outputType);
  }

  save(): Hash {
    return this.hash.copy();
  }

  load(state: unknown): void {
    this.hash = (state as Hash).copy();
  }
}

export const nodePlatform: Platform = {
  createMD5: async () => new NodeMd5(),
  defaultStore: () => processStore,
  openPath: fileSource,
  postMultipart,
  // Node's own WebSocket (global since Node 22).
  createWsClient: (options) => createClient(options),
};

export class UploadClient extends BaseUploadClient {
  constructor(options: ClientOptions) {
    super(options, nodePlatform);
  }
}

/** A file on disk, read chunk by chunk through one file handle. */
export async function fileSource(filePath: string): Promise<ChunkSource> {
  const absolute = await realpath(filePath);
  const handle = await open(absolute, 'r');
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error(`${filePath} is not a regular file.`);
    return {
      name: path.basename(absolute),
      size: stat.size,
      fingerprint: `path:${absolute}:${stat.size}:${Math.trunc(stat.mtimeMs)}`,
      async read(start, end) {
        const buffer = Buffer.allocUnsafe(end - start);
        let filled = 0;
        while (filled < buffer.length) {
          const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, start + filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        return filled === buffer.length ? buffer : buffer.subarray(0, filled);
      },
      close: () => handle.close(),
    };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/**
 * Resume records in a small JSON file (the CLI's `--state-file`), written atomically. Writes
 * from one process are serialised; two processes sharing a file may lose a record, which only
 * costs a resume (the upload starts over).
 */
export class JsonFileResumeStore implements ResumeStore {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly file: string) {}

  async get(key: string): Promise<ResumeRecord | undefined> {
    return (await this.load())[key];
  }

  set(key: string, record: ResumeRecord): Promise<void> {
    return this.update((records) => {
      records[key] = record;
    });
  }

  remove(key: string): Promise<void> {
    return this.update((records) => {
      delete records[key];
    });
  }

  async entries(): Promise<[string, ResumeRecord][]> {
    return Object.entries(await this.load());
  }

  private async load(): Promise<Record<string, ResumeRecord>> {
    try {
      const parsed: unknown = JSON.parse(await readFile(this.file, 'utf8'));
      return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, ResumeRecord>) : {};
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof SyntaxError) return {};
      throw err;
    }
  }

  private update(change: (records: Record<string, ResumeRecord>) => void): Promise<void> {
    const next = this.queue.then(async () => {
      const records = await this.load();
      change(records);
      await mkdir(path.dirname(this.file), { recursive: true });
      const temp = `${this.file}.${randomUUID()}.tmp`;
      await writeFile(temp, `${JSON.stringify(records, null, 2)}\n`, { mode: 0o600 });
      await rename(temp, this.file);
    });
    this.queue = next.catch(() => {});
    return next;
  }
}
