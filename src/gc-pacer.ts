import v8 from 'node:v8';
import vm from 'node:vm';

type CollectGarbage = (options: { type: 'minor' | 'major' }) => void;

/**
 * Runs a young-generation collection after every `everyBytes` of chunk data.
 *
 * Almost all of an upload's garbage is off-heap: the 64 KiB buffers each socket read allocates.
 * Their JS wrappers are tiny, so they barely fill the young generation and V8 notices them only
 * through its limits on external memory, which it answers with back-to-back full
 * mark-compacts of the whole heap (45 of them in one `npm run bench -- --quick`, for twice the
 * CPU per GiB). A minor collection every few MiB frees the buffers while they are young, for
 * 1-2 ms each: 3 to 5 mark-compacts in the same run.
 */
export class GcPacer {
  private sinceLastCollection = 0;

  private constructor(
    private readonly everyBytes: number,
    private readonly collect: CollectGarbage,
  ) {}

  /** Undefined when pacing is off (`everyBytes` 0). */
  static create(everyBytes: number): GcPacer | undefined {
    if (everyBytes <= 0) return undefined;
    // gc() exists only behind a V8 flag; set it, then take the function from a fresh context,
    // so this process's own global scope stays as it was.
    v8.setFlagsFromString('--expose-gc');
    return new GcPacer(everyBytes, vm.runInNewContext('gc') as CollectGarbage);
  }

  received(bytes: number): void {
    this.sinceLastCollection += bytes;
    if (this.sinceLastCollection < this.everyBytes) return;
    this.sinceLastCollection = 0;
    this.collect({ type: 'minor' });
  }
}
