/**
 * At the source, at most one progress notification an upload every `intervalMs`: a commit
 * notifies in its own statement when it is due (or when it stores the last byte), and a commit
 * held back leaves a trailing notification for when the interval is over, so a subscriber
 * never stays on an old offset after the client pauses. An upload's writer holds its lease,
 * so it is one process at a time: the throttle's state is this process's.
 */
export class ProgressThrottle {
  private readonly lastSent = new Map<string, number>();
  private readonly trailing = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly intervalMs: number,
    private readonly onError: (err: unknown, uploadId: string) => void,
  ) {}

  /** Whether this commit should notify; if it should, that is counted as sent now. */
  due(uploadId: string, last: boolean): boolean {
    const now = Date.now();
    if (!last && now - (this.lastSent.get(uploadId) ?? -Infinity) < this.intervalMs) return false;
    this.sent(uploadId, now);
    return true;
  }

  /** After a commit that did not notify: `send` once the interval since the last notification is over. */
  later(uploadId: string, send: () => Promise<void>): void {
    if (this.trailing.has(uploadId)) return;
    const wait = Math.max(0, (this.lastSent.get(uploadId) ?? 0) + this.intervalMs - Date.now());
    const timer = setTimeout(() => {
      this.trailing.delete(uploadId);
      this.sent(uploadId, Date.now());
      send().catch((err: unknown) => this.onError(err, uploadId));
    }, wait);
    this.trailing.set(uploadId, timer.unref());
  }

  close(): void {
    for (const timer of this.trailing.values()) clearTimeout(timer);
    this.trailing.clear();
  }

  private sent(uploadId: string, at: number): void {
    const timer = this.trailing.get(uploadId);
    // A notification now carries the newest offset: a trailing one would say nothing new.
    if (timer) {
      clearTimeout(timer);
      this.trailing.delete(uploadId);
    }
    this.lastSent.set(uploadId, at);
    // Entries older than an interval say nothing: forget them, so the map holds live uploads only.
    if (this.lastSent.size > 1024) {
      for (const [id, sentAt] of this.lastSent) if (at - sentAt >= this.intervalMs) this.lastSent.delete(id);
    }
  }
}
