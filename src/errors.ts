/**
 * The closed catalogue of failures a client can cause or has to wait out, and how each one
 * reaches the wire: its `extensions.code` (API.md) and its HTTP status. `error-edge.ts` is the
 * one place either is used: GraphQL answers, downloads and transport errors all go through it.
 *
 * GraphQL answers keep HTTP 200 (a GraphQL response over application/json; data and errors can
 * come together): the status here is for the answers that are plain HTTP (downloads, requests
 * refused before GraphQL runs, tus).
 */
export const ERROR_TABLE = {
  UNAUTHENTICATED: { graphql: 'UNAUTHENTICATED', http: 401 },
  FORBIDDEN: { graphql: 'FORBIDDEN', http: 403 },
  NOT_FOUND: { graphql: 'NOT_FOUND', http: 404 },
  BAD_USER_INPUT: { graphql: 'BAD_USER_INPUT', http: 400 },
  // tus answers a wrong offset with 409 and a locked upload with 423.
  OFFSET_MISMATCH: { graphql: 'OFFSET_MISMATCH', http: 409 },
  UPLOAD_LOCKED: { graphql: 'UPLOAD_LOCKED', http: 423 },
  PAYLOAD_TOO_LARGE: { graphql: 'PAYLOAD_TOO_LARGE', http: 413 },
  UPLOAD_INCOMPLETE: { graphql: 'UPLOAD_INCOMPLETE', http: 409 },
  // 460: tus's checksum extension ("Checksum Mismatch").
  CHECKSUM_MISMATCH: { graphql: 'CHECKSUM_MISMATCH', http: 460 },
  // Gone: retrying the same request can never succeed (tus clients stop on 410, retry on 409/423).
  UPLOAD_EXPIRED: { graphql: 'UPLOAD_EXPIRED', http: 410 },
  UPLOAD_NOT_ACTIVE: { graphql: 'UPLOAD_NOT_ACTIVE', http: 410 },
  RATE_LIMITED: { graphql: 'RATE_LIMITED', http: 429 },
  // 413 like a size over MAX_FILE_SIZE: tus clients stop on it rather than retry.
  QUOTA_EXCEEDED: { graphql: 'QUOTA_EXCEEDED', http: 413 },
  // Beyond API.md: a user with MAX_UPLOADS_IN_PROGRESS uploads open must finish or abort one first.
  TOO_MANY_UPLOADS: { graphql: 'TOO_MANY_UPLOADS', http: 429 },
  // Beyond API.md: a download of a file still VERIFYING, or REJECTED (API.md: "answer 409").
  FILE_NOT_READY: { graphql: 'FILE_NOT_READY', http: 409 },
  // Beyond API.md's list of client mistakes: server-side conditions a client can only wait out.
  STORAGE_UNAVAILABLE: { graphql: 'STORAGE_UNAVAILABLE', http: 503 },
  SERVICE_UNAVAILABLE: { graphql: 'SERVICE_UNAVAILABLE', http: 503 },
  // HTTP-only refusals, under the code a client already handles.
  RANGE_NOT_SATISFIABLE: { graphql: 'BAD_USER_INPUT', http: 416 },
  // Apollo's own code for the same CSRF refusal of a JSON body.
  PREFLIGHT_REQUIRED: { graphql: 'BAD_REQUEST', http: 400 },
  // tus: a client speaking another protocol version, or a PATCH that is not tus's byte stream.
  TUS_VERSION_UNSUPPORTED: { graphql: 'BAD_REQUEST', http: 412 },
  UNSUPPORTED_MEDIA_TYPE: { graphql: 'BAD_USER_INPUT', http: 415 },
} as const satisfies Record<string, { graphql: string; http: number }>;

export type ErrorCode = keyof typeof ERROR_TABLE;

/** What the edge answers for a failure that is no AppError: logged, and masked. */
export const INTERNAL_ERROR = {
  graphql: 'INTERNAL_SERVER_ERROR',
  http: 500,
  message: 'Internal server error. It has been logged.',
} as const;

/**
 * A failure from the catalogue. Built only by the `Errors` factories below, so that each code's
 * message and extensions are decided in one place.
 */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }

  /** `extensions.code` in a GraphQL answer and in an HTTP error body. */
  get graphqlCode(): string {
    return ERROR_TABLE[this.code].graphql;
  }

  get httpStatus(): number {
    return ERROR_TABLE[this.code].http;
  }
}

/** Why the store refused: full (ENOSPC, EDQUOT), read-only or forbidden (EROFS, EACCES, EIO...), or out of reach (S3). */
export type StorageFailure = 'full' | 'not writable' | 'unreachable';

const STORAGE_FAILURE_TEXT: Record<StorageFailure, string> = {
  full: 'storage is full',
  'not writable': 'storage is not writable',
  unreachable: 'storage is unreachable',
};

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
  uploadLocked: (message = 'Another request is writing to this upload right now. Retry when it has finished.') => new AppError('UPLOAD_LOCKED', message),
  partTooFarAhead: (partNumber: number, firstUnmerged: number, maxAhead: number) =>
    Errors.uploadLocked(
      `Part ${partNumber} is more than ${maxAhead} parts past part ${firstUnmerged}, where the upload's offset stands: send the parts before it first, or retry once they have been appended.`,
    ),
  payloadTooLarge: (message: string) => new AppError('PAYLOAD_TOO_LARGE', message),
  uploadIncomplete: (offset: number, totalSize: number, more: { missingParts?: number[] } = {}) =>
    new AppError(
      'UPLOAD_INCOMPLETE',
      more.missingParts
        ? `Parts ${more.missingParts.join(', ')}${more.missingParts.length >= 100 ? ' (and maybe more)' : ''} are not in the store yet: send them before completing.`
        : `Only ${offset} of ${totalSize} bytes have arrived: send the rest before completing.`,
      { offset, totalSize, ...more },
    ),
  checksumMismatch: (message: string) => new AppError('CHECKSUM_MISMATCH', message),
  uploadExpired: () => new AppError('UPLOAD_EXPIRED', 'This upload has expired: start a new one.'),
  uploadNotActive: (status: string) =>
    new AppError('UPLOAD_NOT_ACTIVE', `This upload is ${status} and takes no more chunks.`, { status }),
  /** API.md: `extensions.retryAfter` in seconds (also sent as Retry-After on plain HTTP answers). */
  rateLimited: (retryAfterSeconds: number) =>
    new AppError('RATE_LIMITED', `Too many failed logins: try again in ${retryAfterSeconds} s.`, { retryAfter: retryAfterSeconds }),
  /** MAX_STREAMS_PER_USER: the user's other chunks are still streaming. */
  tooManyStreams: (limit: number) =>
    new AppError('RATE_LIMITED', `You already have ${limit} chunks streaming to this server: retry when one has finished.`, { retryAfter: 1 }),
  /** API.md: `extensions.availableBytes`, what the user may still reserve (never negative). */
  quotaExceeded: (availableBytes: number) =>
    new AppError(
      'QUOTA_EXCEEDED',
      `This upload would pass your storage quota: ${availableBytes} bytes are left. Delete files or abort uploads in progress to free space.`,
      { availableBytes },
    ),
  tooManyUploads: (limit: number) =>
    new AppError('TOO_MANY_UPLOADS', `You have ${limit} uploads in progress, the most allowed: complete or abort one first.`, { limit }),
  fileNotReady: (status: string, reason?: string | null) =>
    new AppError(
      'FILE_NOT_READY',
      status === 'VERIFYING'
        ? 'This file is still being verified: it can be downloaded once its status is READY.'
        : `This file was rejected${reason ? ` (${reason})` : ''}: its bytes are gone.`,
      { status },
    ),
  /**
   * The store itself failed (full, read-only, out of reach). For a chunk, `expectedOffset` is
   * where the client resumes: nothing of this chunk counts.
   */
  storageUnavailable: (reason: StorageFailure, expectedOffset?: number) =>
    expectedOffset === undefined
      ? new AppError('STORAGE_UNAVAILABLE', `Storage is unavailable right now (${STORAGE_FAILURE_TEXT[reason]}): retry later.`)
      : new AppError(
          'STORAGE_UNAVAILABLE',
          `The server could not store the chunk (${STORAGE_FAILURE_TEXT[reason]}). Nothing was stored: retry from offset ${expectedOffset} later.`,
          { expectedOffset },
        ),
  /** The database is down, restarting or out of connections (see `toDomainError` in error-edge.ts). */
  serviceUnavailable: () =>
    new AppError('SERVICE_UNAVAILABLE', 'The database is unavailable right now. Nothing was changed: retry in a few seconds.'),
  rangeNotSatisfiable: (size: number) =>
    new AppError('RANGE_NOT_SATISFIABLE', `The requested range is outside the file's ${size} bytes.`, { size }),
  tusVersionUnsupported: () => new AppError('TUS_VERSION_UNSUPPORTED', 'This server speaks tus 1.0.0: send "Tus-Resumable: 1.0.0".'),
  unsupportedMediaType: (expected: string) => new AppError('UNSUPPORTED_MEDIA_TYPE', `Send the bytes as Content-Type: ${expected}.`),
  preflightRequired: () =>
    new AppError('PREFLIGHT_REQUIRED', 'Multipart requests need an "apollo-require-preflight: true" header (CSRF prevention).'),
};
