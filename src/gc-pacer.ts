import type { Logger } from 'pino';

/**
 * Runs a young-generation collection after every `everyBytes` of chunk data.
 *
 * Almost all of an upload's garbage is off-heap: the 64 KiB buffers each socket read allocates.
 * Their JS wrappers are tiny, so they barely fill the young generation and V8 notices them only
 * through its limits on external memory, which it answers with back-to-back full
 * mark-compacts of the whole heap (45 of them in one `npm run bench -- --quick`, for twice the
 * CPU per GiB). A minor collection every few MiB frees the buffers while they are young, for
 * 1-2 ms each: 3 to 5 mark-compacts in the same run.
 *
 * It needs `gc()`, which only `node --expose-gc` provides: whether to have it is the entry
 * point's decision (`npm start`, the Docker image, `upload-server serve`), not this library's.
 */
export class GcPacer {
  private sinceLastCollection = 0;

  private constructor(
    private readonly everyBytes: number,
    private readonly collect: NonNullable<typeof globalThis.gc>,
  ) {}

  /** Undefined when pacing is off: `everyBytes` 0, or a process started without --expose-gc. */
  static create(everyBytes: number, log?: Logger): GcPacer | undefined {
    if (everyBytes <= 0) return undefined;
    const collect = globalThis.gc;
    if (typeof collect !== 'function') {
      log?.debug({ gcPaceBytes: everyBytes }, 'GC pacing is off: gc() is not exposed (start node with --expose-gc)');
      return undefined;
    }
    return new GcPacer(everyBytes, collect);
  }

  received(bytes: number): void {
    this.sinceLastCollection += bytes;
    if (this.sinceLastCollection < this.everyBytes) return;
    this.sinceLastCollection = 0;
    this.collect({ type: 'minor' });
  }
}
