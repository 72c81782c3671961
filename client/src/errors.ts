/**
 * One error type for everything the SDK reports: GraphQL errors keep the server's
 * `extensions.code` (API.md), transport failures get codes of their own.
 */
export class UploadError extends Error {
  constructor(
    /** An API.md code (OFFSET_MISMATCH, UPLOAD_LOCKED, ...) or NETWORK_ERROR, HTTP_ERROR, CLIENT_ERROR. */
    readonly code: string,
    message: string,
    readonly extensions: Record<string, unknown> = {},
    /** The HTTP status, when a response arrived. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UploadError';
  }

  /**
   * Worth retrying unchanged after a pause: the network failed, the server failed (5xx or a
   * masked INTERNAL_SERVER_ERROR), its database or storage is unavailable for now, or another
   * request holds the upload's lease.
   */
  get transient(): boolean {
    if (TRANSIENT_CODES.has(this.code)) return true;
    if (this.code === 'HTTP_ERROR') return this.status === undefined || this.status >= 500 || this.status === 408 || this.status === 429;
    return false;
  }
}

const TRANSIENT_CODES = new Set(['NETWORK_ERROR', 'UPLOAD_LOCKED', 'INTERNAL_SERVER_ERROR', 'SERVICE_UNAVAILABLE', 'STORAGE_UNAVAILABLE']);

/** True for an AbortSignal's rejection (the caller paused or cancelled), never worth a retry. */
export function isAbortError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'AbortError';
}

export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The upload was aborted.', 'AbortError');
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/** Waits, unless the signal fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
