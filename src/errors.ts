/**
 * The closed catalogue of failures a client can cause. Each has a stable code from API.md;
 * `formatError` (graphql/format-error.ts) is the one place they become `extensions.code`.
 */
export type ErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'BAD_USER_INPUT'
  | 'OFFSET_MISMATCH'
  | 'UPLOAD_LOCKED'
  | 'PAYLOAD_TOO_LARGE'
  | 'UPLOAD_INCOMPLETE'
  | 'CHECKSUM_MISMATCH'
  | 'UPLOAD_EXPIRED'
  | 'UPLOAD_NOT_ACTIVE'
  | 'RATE_LIMITED'
  // Server-side conditions a client can only wait out.
  | 'STORAGE_UNAVAILABLE'
  | 'SERVICE_UNAVAILABLE';

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const Errors = {
  unauthenticated: (message = 'Log in first: send "Authorization: Bearer <token>" from the login mutation.') =>
    new AppError('UNAUTHENTICATED', message),
  forbidden: (message: string) => new AppError('FORBIDDEN', message),
  notFound: (what: string) => new AppError('NOT_FOUND', `${what} not found.`),
  badInput: (message: string) => new AppError('BAD_USER_INPUT', message),
  offsetMismatch: (expectedOffset: number) =>
    new AppError('OFFSET_MISMATCH', `This upload continues at offset ${expectedOffset}: send the chunk that starts there.`, {
      expectedOffset,
    }),
  uploadLocked: () =>
    new AppError('UPLOAD_LOCKED', 'Another request is writing to this upload right now. Retry when it has finished.'),
  payloadTooLarge: (message: string) => new AppError('PAYLOAD_TOO_LARGE', message),
  uploadIncomplete: (offset: number, totalSize: number) =>
    new AppError('UPLOAD_INCOMPLETE', `Only ${offset} of ${totalSize} bytes have arrived: send the rest before completing.`, {
      offset,
      totalSize,
    }),
  checksumMismatch: (message: string) => new AppError('CHECKSUM_MISMATCH', message),
  uploadExpired: () => new AppError('UPLOAD_EXPIRED', 'This upload has expired: start a new one.'),
  uploadNotActive: (status: string) =>
    new AppError('UPLOAD_NOT_ACTIVE', `This upload is ${status} and takes no more chunks.`, { status }),
  storageUnavailable: (expectedOffset: number, reason: 'full' | 'not writable' | 'unreachable') =>
    new AppError(
      'STORAGE_UNAVAILABLE',
      `The server could not store the chunk (storage is ${reason}). Nothing was stored: retry from offset ${expectedOffset} later.`,
      { expectedOffset },
    ),
};
