import type { RequestHandler } from 'express';
import { Errors } from '../errors';
import { authenticateRequest } from '../graphql/context';
import type { Services } from '../services';
import { BodyWatch } from '../uploads/chunk-pipeline';

/**
 * Multipart requests carry uploads, and every upload operation needs a valid token
 * (UNAUTHENTICATED comes first in API.md's order): without one, the body is refused before it
 * is parsed, instead of being read for as long as it comes. It is read up to the largest chunk,
 * so an honest client sees the answer rather than a reset; past that the connection closes
 * after the answer. A database that cannot check the token passes the request on, to be
 * answered as any other request is.
 */
export function refuseAnonymousUploads(services: Services, drainLimit: number, bodyTimeoutMs: number): RequestHandler {
  return async (req, res, next) => {
    if (!req.is('multipart/form-data')) return next();
    let outcome;
    try {
      outcome = await authenticateRequest(services, req);
    } catch {
      return next();
    }
    if (outcome && !(outcome instanceof Error)) return next();
    const refusal = outcome ?? Errors.unauthenticated();
    const drained = await new BodyWatch(req, bodyTimeoutMs).drain(drainLimit);
    if (!drained) res.setHeader('Connection', 'close');
    // The same answer Apollo gives an operation refused for its token.
    res.status(200).json({ errors: [{ message: refusal.message, extensions: { ...refusal.extensions, code: refusal.graphqlCode } }] });
  };
}
