import { availableParallelism } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FromWorker, ToWorker } from './md5-protocol';

/**
 * Bytes are copied into slabs this big and the slabs themselves are moved to a worker, not
 * copied again. Every message wakes a thread, which costs far more than the copy: a 1 MiB
 * chunk goes in one message (256 KiB slabs took six each way with the open and the save).
 */
const SLAB_BYTES = 1024 * 1024;
/**
 * Slabs one session may have at its worker at once; past that its body waits (backpressure).
 * Four hide a worker's latency from one fast upload; with many uploads at once each gets a
 * share of IN_FLIGHT_SHARED (at least two), so memory does not grow by 4 MiB per upload.
 */
const MAX_SLABS_IN_FLIGHT_PER_SESSION = 4;
const MIN_SLABS_IN_FLIGHT_PER_SESSION = 2;
const IN_FLIGHT_SHARED = 12;
/** Returned slabs kept for reuse, so a steady stream of chunks allocates nothing. */
const SPARE_SLABS = 4;

/**
 * Whole-file md5s computed on worker threads, so hashing (the costliest step of a chunk after
 * the kernel's own copying) runs beside the request handling instead of inside it. A session
 * continues from a saved hash-wasm state and ends with the new state to store with the offset.
 * Workers start on first use; an idle one never keeps the process alive.
 */
export class Md5Pool {
  private readonly workers: (HashWorker | undefined)[];
  private readonly spareSlabs: ArrayBuffer[] = [];
  private nextWorker = 0;
  private nextSession = 1;

  constructor(workerCount = Math.max(1, Math.min(4, availableParallelism() - 1))) {
    this.workers = new Array(workerCount).fill(undefined);
  }

  /** Continues an md5 from `state` (hash-wasm's `save()`). */
  open(state: Uint8Array): Md5Session {
    const index = this.nextWorker++ % this.workers.length;
    let worker = this.workers[index];
    if (!worker || worker.gone) worker = this.workers[index] = new HashWorker(this);
    return worker.open(this.nextSession++, state);
  }

  /** How many slabs a session may have at its worker now. */
  slabsInFlightPerSession(): number {
    const openSessions = this.workers.reduce((sum, worker) => sum + (worker?.sessionCount ?? 0), 0);
    const share = Math.floor(IN_FLIGHT_SHARED / Math.max(1, openSessions));
    return Math.max(MIN_SLABS_IN_FLIGHT_PER_SESSION, Math.min(MAX_SLABS_IN_FLIGHT_PER_SESSION, share));
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker?.terminate()));
    this.workers.fill(undefined);
  }

  takeSlab(): ArrayBuffer {
    return this.spareSlabs.pop() ?? new ArrayBuffer(SLAB_BYTES);
  }

  returnSlab(slab: ArrayBuffer): void {
    if (this.spareSlabs.length < SPARE_SLABS) this.spareSlabs.push(slab);
  }
}

class HashWorker {
  gone = false;
  private readonly worker: Worker;
  private readonly sessions = new Map<number, Md5Session>();

  constructor(private readonly pool: Md5Pool) {
    this.worker = new Worker(path.join(__dirname, 'md5-worker.js'));
    this.worker.on('message', (message: FromWorker) => this.receive(message));
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new Error(`The md5 worker exited (code ${code}).`)));
    // After the listeners (a 'message' listener refs the port again): an idle worker never keeps
    // the process alive; one with open sessions does, until they end.
    this.worker.unref();
  }

  /** The worker hears of the session with its first message. */
  open(id: number, state: Uint8Array): Md5Session {
    const session = new Md5Session(this, this.pool, id, state);
    if (this.sessions.size === 0) this.worker.ref();
    this.sessions.set(id, session);
    return session;
  }

  post(message: ToWorker, transfer?: ArrayBuffer[]): void {
    this.worker.postMessage(message, transfer);
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  forget(id: number): void {
    if (this.sessions.delete(id) && this.sessions.size === 0) this.worker.unref();
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }

  private receive(message: FromWorker): void {
    // Slabs come back even for sessions that were discarded meanwhile.
    if ('slab' in message && message.slab) this.pool.returnSlab(message.slab);
    const session = this.sessions.get(message.session);
    if (!session) return;
    if (message.type === 'slab') session.slabReturned();
    else if (message.type === 'saved') session.saved(message.state);
    else session.fail(new Error(`md5 hashing failed: ${message.message}`));
  }

  private fail(err: Error): void {
    if (this.gone) return;
    this.gone = true;
    for (const session of this.sessions.values()) session.fail(err);
    this.sessions.clear();
    this.worker.unref();
  }
}

/** One chunk's share of an upload's md5: feed it the chunk's bytes in order, then save. */
export class Md5Session {
  private slab?: Uint8Array;
  private filled = 0;
  private slabsInFlight = 0;
  private resumeCopy?: () => void;
  private saving?: { resolve(state: Uint8Array): void; reject(err: Error): void };
  private failure?: Error;

  constructor(
    private readonly worker: HashWorker,
    private readonly pool: Md5Pool,
    private readonly id: number,
    /** The state to continue from, until the first message takes it to the worker. */
    private unsentState: Uint8Array | undefined,
  ) {}

  /**
   * Takes `bytes` for hashing. `done` runs once they are copied: at once, unless this session
   * already has its share of slabs at the worker, in which case it runs when one comes back.
   */
  update(bytes: Uint8Array, done: (err?: Error) => void): void {
    let position = 0;
    const copy = () => {
      if (this.failure) return done(this.failure);
      while (position < bytes.length) {
        if (!this.slab) {
          if (this.slabsInFlight >= this.pool.slabsInFlightPerSession()) {
            this.resumeCopy = copy;
            return;
          }
          this.slab = new Uint8Array(this.pool.takeSlab());
          this.filled = 0;
        }
        const length = Math.min(bytes.length - position, this.slab.length - this.filled);
        this.slab.set(bytes.subarray(position, position + length), this.filled);
        this.filled += length;
        position += length;
        if (this.filled === this.slab.length) this.sendSlab();
      }
      done();
    };
    copy();
  }

  /** The md5 state after every byte given to `update`: hash-wasm's `save()`, to store and continue from. */
  save(): Promise<Uint8Array> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.saving = { resolve, reject };
      if (this.slab && this.filled > 0) this.sendSlab(true);
      else this.worker.post({ type: 'save', session: this.id, open: this.takeUnsentState() });
    });
  }

  /** Drops the session (its chunk was refused); bytes already sent are hashed and forgotten. */
  discard(): void {
    if (this.slab) this.pool.returnSlab(this.slab.buffer as ArrayBuffer);
    this.slab = undefined;
    this.resumeCopy = undefined;
    this.worker.forget(this.id);
    if (!this.takeUnsentState()) this.worker.post({ type: 'discard', session: this.id });
  }

  slabReturned(): void {
    this.slabsInFlight -= 1;
    const resume = this.resumeCopy;
    this.resumeCopy = undefined;
    resume?.();
  }

  saved(state: Uint8Array): void {
    this.worker.forget(this.id);
    this.saving?.resolve(state);
  }

  fail(err: Error): void {
    this.failure ??= err;
    this.worker.forget(this.id);
    this.saving?.reject(err);
    const resume = this.resumeCopy;
    this.resumeCopy = undefined;
    resume?.();
  }

  private takeUnsentState(): Uint8Array | undefined {
    const state = this.unsentState;
    this.unsentState = undefined;
    return state;
  }

  private sendSlab(save = false): void {
    const slab = this.slab!.buffer as ArrayBuffer;
    this.worker.post({ type: 'data', session: this.id, slab, length: this.filled, open: this.takeUnsentState(), save }, [slab]);
    this.slabsInFlight += 1;
    this.slab = undefined;
  }
}
