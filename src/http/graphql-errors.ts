import type { ErrorRequestHandler, Response } from 'express';
import type { Logger } from 'pino';

/** A GraphQL-shaped error body for requests refused before GraphQL runs. */
export function sendRequestError(res: Response, status: number, code: string, message: string): void {
  res.status(status).json({ errors: [{ message, extensions: { code } }] });
}

/**
 * Failures of the transport layer (malformed multipart from graphql-upload-minimal, bad JSON
 * from express.json) become GraphQL errors with an API.md code instead of an HTML page.
 */
export function transportErrorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const status: number = typeof err?.status === 'number' ? err.status : 500;
    if (status >= 500) {
      log.error({ err, url: req.originalUrl }, 'request failed');
      if (!res.headersSent) sendRequestError(res, 500, 'INTERNAL_SERVER_ERROR', 'Internal server error. It has been logged.');
      return;
    }
    if (res.headersSent) return;
    if (status === 413) {
      sendRequestError(res, 413, 'PAYLOAD_TOO_LARGE', `The request is too large: ${err.message}`);
    } else {
      sendRequestError(res, status, 'BAD_USER_INPUT', `The request could not be read: ${err.message}`);
    }
  };
}
