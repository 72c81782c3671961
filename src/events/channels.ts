import type { UploadStatus } from '../uploads/chunked-upload.entity';

/**
 * What travels through PostgreSQL's LISTEN/NOTIFY, so a subscriber on one instance sees what
 * happens on another. NOTIFY is transactional: an event sent inside a transaction goes out when
 * it commits and never if it rolls back, and one session's notifications arrive in commit order.
 */
export const UPLOAD_CHANNEL = 'upload_events';
export const LIBRARY_CHANNEL = 'library_events';
/**
 * Changes that can end a credential or change its user, sent by triggers (migration auth_cache)
 * whoever makes them: `{"userId"}` or `{"tokenId"}` (a revoked login token's id), for the
 * authentication cache (services/auth-cache.ts).
 */
export const AUTH_CHANNEL = 'auth_events';
export const CHANNELS = [UPLOAD_CHANNEL, LIBRARY_CHANNEL, AUTH_CHANNEL] as const;

/**
 * An upload's moving parts, notified by the statement that moves them (RETURNING clause of an
 * UPDATE on chunked_uploads): no round trip of its own, and it cannot tell of a change that did
 * not commit. Small and fixed in size, far below NOTIFY's 8000-byte limit.
 */
export const UPLOAD_EVENT_SQL = `pg_notify('${UPLOAD_CHANNEL}', json_build_object(
  'id', id, 'ownerId', owner_id, 'offset', "offset", 'totalSize', total_size, 'lengthDeferred', length_deferred,
  'status', status, 'expiresAt', expires_at, 'updatedAt', updated_at)::text)`;

export interface UploadEvent {
  id: string;
  ownerId: string;
  offset: number;
  totalSize: number;
  lengthDeferred: boolean;
  status: UploadStatus;
  expiresAt: string;
  updatedAt: string;
}

export type LibraryEventKind = 'ADDED' | 'UPDATED' | 'DELETED' | 'READY' | 'REJECTED';

/**
 * Sent by the `files_notify_library` trigger (migration quotas): every insert, update and delete
 * of a file, whichever code path makes it. `file` is the row (`to_jsonb`, snake_case), without
 * its description when that is too long for a notification.
 */
export interface LibraryNotification {
  kind: LibraryEventKind;
  file: Record<string, unknown> & { id: string };
}
