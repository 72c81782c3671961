import cors from 'cors';
import { Router, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';
import type { Config } from '../config';
import { TokenScope, type User } from '../entities';
import { sendHttpError } from '../error-edge';
import { Errors } from '../errors';
import { bearerUser } from '../http/bearer';
import type { Services } from '../services';
import { BodyWatch } from '../uploads/chunk-pipeline';
import { UploadStatus, type ChunkedUpload } from '../uploads/chunked-upload.entity';
import { parseUploadMetadata } from './metadata';

const TUS_VERSION = '1.0.0';
const EXTENSIONS = 'creation,creation-with-upload,creation-defer-length,termination,expiration';
const OFFSET_STREAM = 'application/offset+octet-stream';
const HOW_TO_AUTHENTICATE = 'Send "Authorization: Bearer <token>" (the token from the login mutation) with every tus request.';

/**
 * tus 1.0.0 over the upload core: a tus upload is a ChunkedUpload (same lease, storage state,
 * md5 and expiry), so GraphQL sees it too. POST starts one (optionally with its first bytes),
 * HEAD says where it stands, PATCH appends a body of any length, DELETE aborts it. When the
 * last byte is stored the upload completes by itself, as `completeUpload` would.
 */
export function tusRouter(services: Services, config: Config, log: Logger): Router {
  const router = Router();
  const uploads = services.uploads;

  if (config.corsOrigins.length > 0) {
    router.use(
      cors({
        origin: config.corsOrigins,
        methods: ['POST', 'HEAD', 'PATCH', 'DELETE', 'OPTIONS'],
        allowedHeaders: [
          'authorization',
          'content-type',
          'tus-resumable',
          'upload-length',
          'upload-metadata',
          'upload-offset',
          'upload-defer-length',
          'upload-concat',
          'x-http-method-override',
          'x-requested-with',
        ],
        exposedHeaders: ['location', 'upload-offset', 'upload-length', 'upload-expires', 'upload-metadata', 'upload-defer-length', 'tus-resumable', 'tus-version', 'tus-extension', 'tus-max-size'],
        maxAge: 600,
      }),
    );
  }

  router.use(((req, res, next) => {
    // For environments that only send GET and POST (the tus spec's method override).
    const override = req.headers['x-http-method-override'];
    if (req.method === 'POST' && typeof override === 'string') req.method = override.toUpperCase();
    res.setHeader('Tus-Resumable', TUS_VERSION);
    res.setHeader('Cache-Control', 'no-store');
    if (req.method === 'OPTIONS') {
      res.setHeader('Tus-Version', TUS_VERSION);
      res.setHeader('Tus-Extension', EXTENSIONS);
      res.setHeader('Tus-Max-Size', String(config.maxFileSize));
      res.status(204).end();
      return;
    }
    if (req.headers['tus-resumable'] !== TUS_VERSION) {
      res.setHeader('Tus-Version', TUS_VERSION);
      void refuse(req, res, Errors.tusVersionUnsupported());
      return;
    }
    next();
  }) satisfies RequestHandler);

  router.post('/', async (req, res) => {
    try {
      const user = await bearerUser(services, req, HOW_TO_AUTHENTICATE, TokenScope.UPLOAD);
      const rawMetadata = req.get('upload-metadata');
      const metadata = parseUploadMetadata(rawMetadata);
      const deferLength = req.headers['upload-defer-length'] !== undefined;
      if (deferLength && req.headers['upload-defer-length'] !== '1') throw Errors.badInput('Upload-Defer-Length must be 1.');
      const lengthHeader = req.headers['upload-length'];
      if (deferLength === (lengthHeader !== undefined)) throw Errors.badInput('Send either Upload-Length or Upload-Defer-Length: 1.');
      const filename = metadata.get('filename') ?? metadata.get('name');
      if (filename === undefined) throw Errors.badInput('Upload-Metadata needs a "filename".');
      const withBytes = isOffsetStream(req);
      if (!withBytes && req.headers['content-type'] !== undefined && hasBody(req)) throw Errors.unsupportedMediaType(OFFSET_STREAM);

      let upload = await uploads.start(user, {
        filename,
        totalSize: deferLength ? 0 : byteCount(lengthHeader, 'Upload-Length'),
        deferLength,
        description: metadata.get('description'),
        mimeType: metadata.get('filetype') ?? metadata.get('type'),
        expectedMd5: metadata.get('md5'),
        clientMetadata: rawMetadata ?? null,
      });
      res.setHeader('Location', `${req.baseUrl}/${upload.id}`);
      if (withBytes && hasBody(req)) upload = await uploads.appendStream(user, { uploadId: upload.id, offset: 0, body: req });
      await completeIfWhole(user, upload);
      describe(res, upload);
      res.status(201).end();
    } catch (err) {
      await refuse(req, res, err);
    }
  });

  router.head('/:id', async (req, res) => {
    try {
      const user = await bearerUser(services, req, HOW_TO_AUTHENTICATE, TokenScope.UPLOAD);
      const id = req.params.id as string;
      // The client is resuming: a stream it abandoned in this process must not hold the lease.
      await uploads.interruptStream(user, id);
      const upload = await uploads.get(user, id);
      refuseIfGone(upload);
      await completeIfWhole(user, upload);
      describe(res, upload);
      res.status(200).end();
    } catch (err) {
      await refuse(req, res, err);
    }
  });

  router.patch('/:id', async (req, res) => {
    try {
      const user = await bearerUser(services, req, HOW_TO_AUTHENTICATE, TokenScope.UPLOAD);
      if (!isOffsetStream(req)) throw Errors.unsupportedMediaType(OFFSET_STREAM);
      const offset = byteCount(req.headers['upload-offset'], 'Upload-Offset');
      const lengthHeader = req.headers['upload-length'];
      const upload = await uploads.appendStream(user, {
        uploadId: req.params.id as string,
        offset,
        body: req,
        declaredLength: lengthHeader === undefined ? undefined : byteCount(lengthHeader, 'Upload-Length'),
      });
      await completeIfWhole(user, upload);
      describe(res, upload);
      res.status(204).end();
    } catch (err) {
      await refuse(req, res, err);
    }
  });

  router.delete('/:id', async (req, res) => {
    try {
      const user = await bearerUser(services, req, HOW_TO_AUTHENTICATE, TokenScope.UPLOAD);
      const id = req.params.id as string;
      await uploads.interruptStream(user, id);
      await uploads.abort(user, id);
      res.status(204).end();
    } catch (err) {
      await refuse(req, res, err);
    }
  });

  router.all('/{*rest}', (req, res) => {
    res.setHeader('Allow', 'OPTIONS, POST, HEAD, PATCH, DELETE');
    res.status(405).end();
  });

  /**
   * Files an upload whose last byte is stored. A HEAD does it too: the server may have stopped
   * between the last byte and the filing, and a client that finds offset == length stops.
   */
  async function completeIfWhole(user: User, upload: ChunkedUpload): Promise<void> {
    if (upload.status !== UploadStatus.UPLOADING || upload.lengthDeferred || upload.offset < upload.totalSize) return;
    const file = await uploads.complete(user, { uploadId: upload.id });
    upload.status = UploadStatus.COMPLETE;
    log.info({ uploadId: upload.id, fileId: file.id, size: file.size }, 'tus upload completed');
  }

  /**
   * An answer for a refused request. A body the request still carries is read (up to the
   * largest chunk) so the client sees the answer rather than a reset; past that, the
   * connection closes after the answer instead of reading on.
   */
  async function refuse(req: Request, res: Response, err: unknown): Promise<void> {
    if (!req.complete && !req.destroyed) {
      const drained = await new BodyWatch(req, config.bodyTimeoutSeconds * 1000).drain(config.maxChunkSize);
      if (!drained) res.setHeader('Connection', 'close');
    }
    sendHttpError(res, err, log, { url: req.originalUrl, method: req.method }, 'tus request failed');
  }

  return router;
}

function describe(res: Response, upload: ChunkedUpload): void {
  const complete = upload.status === UploadStatus.COMPLETE;
  res.setHeader('Upload-Offset', String(complete ? upload.totalSize : upload.offset));
  if (upload.lengthDeferred) res.setHeader('Upload-Defer-Length', '1');
  else res.setHeader('Upload-Length', String(upload.totalSize));
  if (upload.clientMetadata) res.setHeader('Upload-Metadata', upload.clientMetadata);
  if (!complete) res.setHeader('Upload-Expires', upload.expiresAt.toUTCString());
}

/** An upload that can never take bytes again is gone (410), which tus clients do not retry. */
function refuseIfGone(upload: ChunkedUpload): void {
  if (upload.status === UploadStatus.ABORTED) throw Errors.uploadNotActive(upload.status);
  if (upload.status === UploadStatus.EXPIRED || (upload.status === UploadStatus.UPLOADING && upload.expiresAt <= new Date())) {
    throw Errors.uploadExpired();
  }
}

function isOffsetStream(req: Request): boolean {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase() === OFFSET_STREAM;
}

function hasBody(req: Request): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/** A header that must be a non-negative decimal integer. */
function byteCount(header: string | string[] | undefined, name: string): number {
  if (typeof header !== 'string' || !/^\d{1,16}$/.test(header) || !Number.isSafeInteger(Number(header))) {
    throw Errors.badInput(`${name} must be a non-negative integer.`);
  }
  return Number(header);
}
