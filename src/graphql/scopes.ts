import { TokenScope } from '../entities';

/** API.md: UPLOAD is READ plus these, on one's own uploads (nobody else's are reachable). */
const UPLOAD_MUTATIONS = new Set(['startUpload', 'uploadChunk', 'uploadPart', 'completeUpload', 'abortUpload', 'signUploadParts']);
/** Ending the request's own token is allowed to any token: it only ever takes rights away. */
const ANY_TOKEN_MUTATIONS = new Set(['logout']);

/**
 * The scope an access token needs for a root field: every query (and subscription) is a read;
 * a mutation needs FULL unless it is one of the upload operations. One table for the whole
 * schema, so a new mutation is FULL until someone decides otherwise.
 */
export function scopeFor(operation: 'query' | 'mutation' | 'subscription', field: string): TokenScope {
  if (operation !== 'mutation' || ANY_TOKEN_MUTATIONS.has(field)) return TokenScope.READ;
  return UPLOAD_MUTATIONS.has(field) ? TokenScope.UPLOAD : TokenScope.FULL;
}
