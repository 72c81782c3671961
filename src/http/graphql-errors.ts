import type { ErrorRequestHandler } from 'express';
import type { Logger } from 'pino';
import { sendHttpError } from '../error-edge';

/**
 * Failures of the transport layer (malformed multipart from graphql-upload-minimal, bad JSON
 * or an oversized body from express.json) get the error edge's answer: an API.md code and the
 * table's status instead of an HTML page; anything unexpected is logged and masked (500).
 */
export function transportErrorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => sendHttpError(res, err, log, { url: req.originalUrl });
}
