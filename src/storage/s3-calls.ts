import { S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import { setTimeout as sleep } from 'node:timers/promises';
import { StorageUnavailableError } from './file-store';

/** Answers that mean "ask again later", whatever the S3 implementation. */
const TRANSIENT_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const TRANSIENT_NAMES = new Set(['SlowDown', 'ServiceUnavailable', 'InternalError', 'RequestTimeout', 'RequestTimeTooSkewed', 'TimeoutError']);
/** The object store cannot be reached at all. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
/** Credentials or bucket policy refuse us: waiting will not help, but it is the store's fault, not the client's. */
const REFUSED_NAMES = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AllAccessDisabled', 'QuotaExceeded']);

export interface RetryPolicy {
  attempts: number;
  /** The first wait; each later one doubles, with jitter. */
  firstDelayMs: number;
}

const DEFAULT_POLICY: RetryPolicy = { attempts: 4, firstDelayMs: 200 };

/**
 * The one way the S3 store talks to S3: every command is retried by one policy (exponential
 * backoff with full jitter, the SDK's own retries turned off so they do not stack), made again
 * for every attempt (a streamed body can be read only once), and a store that stays down or
 * refuses us becomes a StorageUnavailableError. Answers about the request itself (NoSuchKey,
 * NoSuchUpload, ...) reach the caller unchanged.
 */
export class S3Calls {
  constructor(
    private readonly s3: S3Client,
    private readonly policy: RetryPolicy = DEFAULT_POLICY,
  ) {}

  /** Runs `call` (one command, its body made inside it) until it succeeds or the policy gives up. */
  async run<Output>(what: string, call: (s3: S3Client) => Promise<Output>, policy: RetryPolicy = this.policy): Promise<Output> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call(this.s3);
      } catch (err) {
        if (isTransient(err) && attempt < policy.attempts) {
          await sleep(Math.random() * policy.firstDelayMs * 2 ** (attempt - 1));
          continue;
        }
        if (isTransient(err)) throw new StorageUnavailableError('unreachable', { cause: withContext(err, what) });
        if (isRefusal(err)) throw new StorageUnavailableError('not writable', { cause: withContext(err, what) });
        throw err;
      }
    }
  }
}

export function isS3Code(err: unknown, code: string): boolean {
  return err instanceof S3ServiceException ? err.name === code : (err as { name?: string })?.name === code;
}

function isTransient(err: unknown): boolean {
  if (err instanceof S3ServiceException) {
    return TRANSIENT_STATUS.has(err.$metadata?.httpStatusCode ?? 0) || TRANSIENT_NAMES.has(err.name) || err.$retryable !== undefined;
  }
  const { code, name } = (err ?? {}) as { code?: string; name?: string };
  return NETWORK_CODES.has(code ?? '') || TRANSIENT_NAMES.has(name ?? '');
}

function isRefusal(err: unknown): boolean {
  return err instanceof S3ServiceException && (REFUSED_NAMES.has(err.name) || err.$metadata?.httpStatusCode === 403);
}

function withContext(err: unknown, what: string): Error {
  return new Error(`S3: could not ${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
