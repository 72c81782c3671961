import { Router, type Request, type Response } from 'express';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { TokenScope } from '../entities';
import { sendHttpError } from '../error-edge';
import { AppError, Errors } from '../errors';
import { bearerUser } from './bearer';
import type { Services } from '../services';
import { isMediaType, removeInvisible } from '../services/validation';
import type { ByteRange } from '../storage/file-store';

/**
 * GET /files/:id/content: the stored bytes, for a bearer token or a signed `?token=` link
 * scoped to this one file. Single byte ranges (206), ETag from the md5, attachment download.
 * Failures get the error edge's answer: the status of the error table and a GraphQL-shaped
 * body with the code a GraphQL answer would carry.
 */
export function downloadRouter(services: Services, log: Logger): Router {
  const router = Router();
  router.get('/files/:id/content', async (req, res) => {
    try {
      await authorize(services, req);
      const file = await services.files.getReady(req.params.id);
      const etag = `"${file.md5}"`;
      // Validators and caching describe this file: only the answers about it (200, 206, 304) carry them.
      const validators = { ETag: etag, 'Accept-Ranges': 'bytes', 'Cache-Control': 'private, no-cache' };
      if (matchesEtag(req.headers['if-none-match'], etag)) {
        res.status(304).set(validators).end();
        return;
      }
      const range = requestedRange(req, file.size, etag);
      if (range === 'unsatisfiable') throw Errors.rangeNotSatisfiable(file.size);
      const body = await services.files.open(file.id, range);
      res.set(validators);
      res.setHeader('Content-Disposition', attachment(file.name));
      // A type stored before mimeType was checked could hold a line break, which no header may carry.
      res.setHeader('Content-Type', file.mimeType && isMediaType(file.mimeType) ? file.mimeType : 'application/octet-stream');
      res.setHeader('X-Content-Type-Options', 'nosniff');
      if (range) {
        res.status(206);
        res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${file.size}`);
      }
      res.setHeader('Content-Length', range ? range.end - range.start + 1 : file.size);
      if (req.method === 'HEAD') {
        body.destroy();
        res.end();
        return;
      }
      await pipeline(body, res).catch((err) => {
        if (err?.code !== 'ERR_STREAM_PREMATURE_CLOSE') log.warn({ err, fileId: file.id }, 'download stopped');
      });
    } catch (err) {
      sendDownloadError(res, err, log, req.originalUrl);
    }
  });
  return router;
}

/** Headers that describe the file; an error answer must not carry them (a browser would save the JSON error as the file). */
const FILE_HEADERS = ['Content-Disposition', 'Content-Type', 'Content-Length', 'Content-Range', 'ETag', 'Accept-Ranges', 'Cache-Control'];

/**
 * An error answer carries error headers only, whatever the route had set before it failed: the
 * error edge's JSON, `Cache-Control: no-store`, and for a 416 the Content-Range with the file's
 * size that RFC 9110 asks for. Once the bytes are flowing, the error edge cuts the connection
 * instead.
 */
function sendDownloadError(res: Response, err: unknown, log: Logger, url: string): void {
  if (!res.headersSent) {
    for (const name of FILE_HEADERS) res.removeHeader(name);
    res.setHeader('Cache-Control', 'no-store');
    if (err instanceof AppError && err.code === 'RANGE_NOT_SATISFIABLE') res.setHeader('Content-Range', `bytes */${err.extensions.size}`);
  }
  sendHttpError(res, err, log, { url }, 'download failed');
}

async function authorize(services: Services, req: Request): Promise<void> {
  const linkToken = typeof req.query.token === 'string' ? req.query.token : undefined;
  if (linkToken) {
    if (!services.auth.allowsDownload(linkToken, req.params.id as string)) {
      throw Errors.unauthenticated('This download link is not valid for this file, or has expired: ask the API for a fresh downloadUrl.');
    }
    return;
  }
  await bearerUser(services, req, 'Send "Authorization: Bearer <token>" or use the file\'s downloadUrl.', TokenScope.READ);
}

/**
 * RFC 6266: an ASCII `filename` for old clients and an RFC 8187 `filename*` that carries any
 * Unicode name intact. A name stored before filenames lost their bidi and zero-width
 * characters loses them here, so it cannot pose as another extension in a save dialog.
 */
function attachment(stored: string): string {
  const name = removeInvisible(stored) || 'file';
  const fallback = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t === etag || t === `W/${etag}`;
  });
}

/** The one range to send, undefined for the whole file (no Range, several ranges, stale If-Range). */
function requestedRange(req: Request, size: number, etag: string): ByteRange | 'unsatisfiable' | undefined {
  if (!req.headers.range) return undefined;
  const ifRange = req.headers['if-range'];
  if (ifRange && ifRange !== etag) return undefined;
  const ranges = req.range(size, { combine: true });
  if (ranges === -1) return 'unsatisfiable';
  if (ranges === -2 || ranges === undefined || ranges.type !== 'bytes' || ranges.length !== 1) return undefined;
  return { start: ranges[0].start, end: ranges[0].end };
}
