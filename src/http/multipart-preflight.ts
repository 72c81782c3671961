import type { RequestHandler } from 'express';
import { sendAppError } from '../error-edge';
import { Errors } from '../errors';

/**
 * CSRF prevention for uploads, checked before the body is parsed: a browser sends a
 * cross-site multipart form without preflight, but never with a custom header. Apollo makes
 * the same check, but only after the upload middleware has started on the body.
 */
export const requireMultipartPreflight: RequestHandler = (req, res, next) => {
  if (!req.is('multipart/form-data') || req.headers['apollo-require-preflight'] || req.headers['x-apollo-operation-name']) {
    return next();
  }
  // Read the body to its end first, so the client gets this answer and not a reset.
  req.resume();
  req.once('end', () => sendAppError(res, Errors.preflightRequired()));
};
