import { formatBytes, type UploadProgress } from '../src/node.js';

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * One file's progress on stderr: redrawn in place on a terminal (at most 10 times a second),
 * one line per 10% step when stderr is a pipe or a log file.
 */
export class ProgressBar {
  private readonly started = Date.now();
  private lastDraw = 0;
  private lastStep = -1;
  private lastPhase = '';
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly label: string,
  ) {}

  update(p: UploadProgress): void {
    const now = Date.now();
    if (this.stream.isTTY) {
      if (now - this.lastDraw < 100 && p.phase === this.lastPhase) return;
      this.lastDraw = now;
      this.lastPhase = p.phase;
      this.stream.write(`\r${this.render(p, this.stream.columns ?? 80)}\x1b[K`);
      this.drawn = true;
      return;
    }
    const fraction = p.phase === 'hashing' ? p.bytesHashed : p.bytesTransferred;
    const step = p.totalBytes === 0 ? 10 : Math.floor((fraction / p.totalBytes) * 10);
    if (step === this.lastStep && p.phase === this.lastPhase) return;
    this.lastStep = step;
    this.lastPhase = p.phase;
    this.stream.write(`${this.render(p, 100)}\n`);
  }

  /** Ends the bar's line so other messages start on a fresh one. */
  finish(message?: string): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
    if (message) this.stream.write(`${message}\n`);
  }

  private render(p: UploadProgress, columns: number): string {
    // bytesTransferred moves while a chunk is on its way, and never backwards.
    const done = p.phase === 'hashing' ? p.bytesHashed : p.bytesTransferred;
    const ratio = p.totalBytes === 0 ? 1 : Math.min(1, done / p.totalBytes);
    const percent = `${Math.floor(ratio * 100)}%`.padStart(4);
    const elapsed = (Date.now() - this.started) / 1000;
    const rate = elapsed > 0 ? Math.max(0, p.bytesTransferred - p.resumedFrom) / elapsed : 0;
    const remaining = rate > 0 ? (p.totalBytes - p.bytesTransferred) / rate : Number.POSITIVE_INFINITY;
    const detail =
      p.phase === 'hashing'
        ? `checking ${formatBytes(done)} already on the server`
        : p.phase === 'completing' || p.phase === 'verifying' || p.phase === 'done'
          ? `${formatBytes(p.totalBytes)} ${p.phase === 'done' ? 'done' : p.phase === 'verifying' ? 'verifying on the server…' : 'completing…'}`
          : `${formatBytes(p.bytesTransferred)}/${formatBytes(p.totalBytes)} ${formatBytes(rate)}/s ETA ${formatDuration(remaining)}`;
    const name = this.label.length > 24 ? `${this.label.slice(0, 23)}…` : this.label;
    const barWidth = Math.max(10, Math.min(40, columns - name.length - detail.length - 12));
    const filled = Math.round(ratio * barWidth);
    return `${name} [${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${percent} ${detail}`;
  }
}
