/** Messages between Md5Pool and its workers. One port per worker keeps them in order. */
export type ToWorker =
  | { type: 'open'; session: number; state: Uint8Array }
  /** `slab` is transferred: the worker hashes its first `length` bytes and sends it back. */
  | { type: 'data'; session: number; slab: ArrayBuffer; length: number }
  | { type: 'save'; session: number }
  | { type: 'discard'; session: number };

export type FromWorker =
  | { type: 'slab'; session: number; slab: ArrayBuffer }
  | { type: 'saved'; session: number; state: Uint8Array }
  | { type: 'failed'; session: number; message: string };
