/**
 * Messages between Md5Pool and its workers. One port per worker keeps them in order. A session
 * opens with its first message (`open`: the state to continue from) and a chunk's last bytes
 * carry `save`, so a chunk that fits in one slab costs one message each way.
 */
export type ToWorker =
  /** `slab` is transferred: the worker hashes its first `length` bytes and sends it back. */
  | { type: 'data'; session: number; slab: ArrayBuffer; length: number; open?: Uint8Array; save?: boolean }
  | { type: 'save'; session: number; open?: Uint8Array }
  | { type: 'discard'; session: number };

export type FromWorker =
  | { type: 'slab'; session: number; slab: ArrayBuffer }
  /** `slab`: the one that came with `save`, returned with the state. */
  | { type: 'saved'; session: number; state: Uint8Array; slab?: ArrayBuffer }
  | { type: 'failed'; session: number; message: string };
