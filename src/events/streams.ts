/**
 * What one subscriber has waiting. Both kinds are bounded, so a client that reads slowly (or not
 * at all: graphql-ws waits for each message to be written before it asks for the next) cannot
 * make the server hold more for it:
 * - `ProgressStream` keeps at most the newest progress and a final status: older progress is
 *   replaced (coalesced), and progress goes out at most every `intervalMs`;
 * - `BoundedStream` keeps up to `capacity` events in order; one more, and the subscriber is
 *   told it fell behind (its connection is closed) instead of the queue growing.
 */

const DONE = { done: true, value: undefined } as const;

abstract class Stream<T> implements AsyncIterableIterator<T> {
  protected closed = false;
  private wake?: () => void;

  constructor(private readonly onClose: () => void) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  abstract next(): Promise<IteratorResult<T>>;

  async return(): Promise<IteratorResult<T>> {
    this.close();
    return DONE;
  }

  async throw(err: unknown): Promise<IteratorResult<T>> {
    this.close();
    throw err;
  }

  /** Ends the stream: the subscriber is unregistered and a waiting `next` returns done. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
    this.notify();
  }

  protected notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Until `notify` (something arrived, or the stream closed), or `ms` passed. */
  protected wait(ms = Infinity): Promise<void> {
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(resolve, ms) : undefined;
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

export class ProgressStream<T> extends Stream<T> {
  private progress?: T;
  private final?: T;
  private lastSentAt = -Infinity;

  constructor(
    private readonly intervalMs: number,
    onClose: () => void,
  ) {
    super(onClose);
  }

  /** A newer state; `final` ends the stream once it is sent. */
  push(state: T, final: boolean): void {
    if (this.closed || this.final !== undefined) return;
    if (final) {
      this.final = state;
      // The final state is the newest: progress still waiting is older.
      this.progress = undefined;
    } else {
      this.progress = state;
    }
    this.notify();
  }

  async next(): Promise<IteratorResult<T>> {
    for (;;) {
      if (this.closed) return DONE;
      if (this.final !== undefined) {
        const value = this.final;
        this.close();
        return { done: false, value };
      }
      if (this.progress !== undefined) {
        const wait = this.lastSentAt + this.intervalMs - Date.now();
        if (wait <= 0) {
          const value = this.progress;
          this.progress = undefined;
          this.lastSentAt = Date.now();
          return { done: false, value };
        }
        await this.wait(wait);
        continue;
      }
      await this.wait();
    }
  }
}

export class BoundedStream<T> extends Stream<T> {
  private readonly queue: T[] = [];

  constructor(
    private readonly capacity: number,
    private readonly onOverflow: () => void,
    onClose: () => void,
  ) {
    super(onClose);
  }

  push(event: T): void {
    if (this.closed) return;
    if (this.queue.length >= this.capacity) {
      this.queue.length = 0;
      this.close();
      this.onOverflow();
      return;
    }
    this.queue.push(event);
    this.notify();
  }

  get pending(): number {
    return this.queue.length;
  }

  async next(): Promise<IteratorResult<T>> {
    for (;;) {
      if (this.closed) return DONE;
      const value = this.queue.shift();
      if (value !== undefined) return { done: false, value };
      await this.wait();
    }
  }
}

/**
 * The newest state of each of several things (a user's uploads), in the order they first
 * changed: a state that is not yet sent is replaced by a newer one of the same key. At most
 * `maxKeys` keys wait; one more, and the subscriber is told it fell behind.
 */
export class KeyedStream<T> extends Stream<T> {
  private readonly pending = new Map<string, T>();

  constructor(
    private readonly maxKeys: number,
    private readonly onOverflow: () => void,
    onClose: () => void,
  ) {
    super(onClose);
  }

  push(key: string, state: T): void {
    if (this.closed) return;
    if (!this.pending.has(key) && this.pending.size >= this.maxKeys) {
      this.pending.clear();
      this.close();
      this.onOverflow();
      return;
    }
    this.pending.set(key, state);
    this.notify();
  }

  async next(): Promise<IteratorResult<T>> {
    for (;;) {
      if (this.closed) return DONE;
      const first = this.pending.entries().next();
      if (!first.done) {
        this.pending.delete(first.value[0]);
        return { done: false, value: first.value[1] };
      }
      await this.wait();
    }
  }
}
