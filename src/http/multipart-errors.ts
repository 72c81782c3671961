import type { RequestHandler } from 'express';
import { Errors } from '../errors';

/**
 * Wraps graphql-upload-minimal's middleware: whatever it fails with is about the request body,
 * so it reaches the error edge as the client's mistake (400 BAD_USER_INPUT). It passes busboy's
 * own errors on bare ("Unexpected end of form" for a body that is not multipart at all) and
 * answers a multipart body without an `operations` field with a 500 that blames another
 * middleware; both would otherwise be masked as an internal error.
 */
export function multipartErrorsAsBadInput(upload: RequestHandler): RequestHandler {
  return (req, res, next) =>
    upload(req, res, (err?: unknown) => {
      if (err === undefined || err === 'route' || err === 'router') return next(err);
      const { status, message } = err as { status?: unknown; message?: unknown };
      if (typeof status === 'number' && status >= 400 && status < 500) return next(err);
      const detail = status === 500 || typeof message !== 'string' ? 'it has no operations field' : message;
      next(Errors.badInput(`The request is not a GraphQL multipart request (operations, map, then files): ${detail}.`));
    });
}
