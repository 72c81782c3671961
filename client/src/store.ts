/**
 * Remembers which upload id belongs to which file (by fingerprint) until it completes, so an
 * upload interrupted by a crash, a closed tab or a reload resumes instead of starting over.
 * Only ids are kept: where to resume is always asked from the server (`upload(id).offset`).
 */
export interface ResumeRecord {
  uploadId: string;
  name: string;
  size: number;
  /** Date.now() when the upload was started. */
  startedAt: number;
}

type MaybePromise<T> = T | Promise<T>;

export interface ResumeStore {
  get(key: string): MaybePromise<ResumeRecord | undefined>;
  set(key: string, record: ResumeRecord): MaybePromise<void>;
  remove(key: string): MaybePromise<void>;
  /** Every record, for a UI that lists interrupted uploads. */
  entries(): MaybePromise<[string, ResumeRecord][]>;
}

export class MemoryResumeStore implements ResumeStore {
  private readonly records = new Map<string, ResumeRecord>();

  get(key: string) {
    return this.records.get(key);
  }

  set(key: string, record: ResumeRecord) {
    this.records.set(key, record);
  }

  remove(key: string) {
    this.records.delete(key);
  }

  entries() {
    return [...this.records.entries()];
  }
}

/** The part of the Web Storage API the store needs (typed here so Node builds need no DOM types). */
export interface StorageLike {
  readonly length: number;
  key(index: number): string | null;
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Browser store: survives reloads and browser restarts (localStorage by default). */
export class WebStorageResumeStore implements ResumeStore {
  constructor(
    private readonly storage: StorageLike = (globalThis as unknown as { localStorage: StorageLike }).localStorage,
    private readonly prefix = 'chunked-upload:',
  ) {}

  get(key: string): ResumeRecord | undefined {
    const raw = this.storage.getItem(this.prefix + key);
    if (!raw) return undefined;
    try {
      return JSON.parse(raw) as ResumeRecord;
    } catch {
      this.storage.removeItem(this.prefix + key);
      return undefined;
    }
  }

  set(key: string, record: ResumeRecord): void {
    try {
      this.storage.setItem(this.prefix + key, JSON.stringify(record));
    } catch {
      // Storage full or disabled (private mode): the upload still works, it just cannot be
      // resumed after a reload.
    }
  }

  remove(key: string): void {
    this.storage.removeItem(this.prefix + key);
  }

  entries(): [string, ResumeRecord][] {
    const out: [string, ResumeRecord][] = [];
    for (let i = 0; i < this.storage.length; i++) {
      const full = this.storage.key(i);
      if (!full?.startsWith(this.prefix)) continue;
      const record = this.get(full.slice(this.prefix.length));
      if (record) out.push([full.slice(this.prefix.length), record]);
    }
    return out;
  }
}
