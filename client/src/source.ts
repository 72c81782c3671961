/**
 * Where an upload's bytes come from: a browser File or Blob, or (in Node) a file on disk.
 * Chunks are read on demand, so a file of any size is never held in memory whole.
 */
export interface ChunkSource {
  /** The name sent to startUpload. */
  readonly name: string;
  readonly size: number;
  /** A MIME type, when known. */
  readonly type?: string;
  /**
   * Identifies the same content across calls and page loads (name, size, modification time),
   * so an interrupted upload can be found again. Undefined: only this client instance can
   * resume it (the same Blob object passed again).
   */
  readonly fingerprint?: string;
  /** The bytes [start, end). */
  read(start: number, end: number): Promise<Uint8Array>;
  close?(): Promise<void>;
}

interface NamedBlob extends Blob {
  readonly name: string;
  readonly lastModified: number;
}

function isNamedBlob(blob: Blob): blob is NamedBlob {
  return typeof (blob as Partial<NamedBlob>).name === 'string' && typeof (blob as Partial<NamedBlob>).lastModified === 'number';
}

/** A File (browser `<input type=file>`, drag and drop, Node's File) or a plain Blob. */
export function blobSource(blob: Blob, name?: string): ChunkSource {
  const named = isNamedBlob(blob);
  return {
    name: name ?? (named ? blob.name : 'blob'),
    size: blob.size,
    type: blob.type || undefined,
    // A File's name, size and mtime identify it well enough across a page reload; the md5 at
    // completeUpload catches the rare file that changed without changing any of them.
    fingerprint: named ? `file:${blob.name}:${blob.size}:${blob.lastModified}:${blob.type}` : undefined,
    async read(start, end) {
      return new Uint8Array(await blob.slice(start, end).arrayBuffer());
    },
  };
}

export function isChunkSource(value: unknown): value is ChunkSource {
  return typeof value === 'object' && value !== null && typeof (value as ChunkSource).read === 'function' && typeof (value as ChunkSource).size === 'number';
}
