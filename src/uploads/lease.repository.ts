import { randomUUID } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/core';
import { UPLOAD_EVENT_SQL } from '../events/channels';
import type { StoreState } from '../storage/file-store';
import { ChunkedUpload, UploadStatus } from './chunked-upload.entity';

/**
 * The right to write to one upload (a chunk, a completion or an abort), held for a while and
 * renewed while it is used. The database settles every race: each operation below is one
 * conditional statement on the upload's row, and only the holder's token passes it.
 */
export interface Lease {
  readonly uploadId: string;
  readonly token: string;
  /** Monotonic per upload: every claim takes the next one. Storage fences by it. */
  readonly generation: number;
  /**
   * The claim took a lease that ran out without being released: its holder (a frozen or
   * partitioned process) may still be running and must be fenced off before writing.
   */
  readonly tookOver: boolean;
}

export interface Claimed {
  lease: Lease;
  upload: ChunkedUpload;
}

export interface ChunkCommit {
  /** The offset the chunk started at: the commit fails if it has moved. */
  offset: number;
  bytesWritten: number;
  md5State: Uint8Array;
  storageState: StoreState;
}

/** A row as a raw statement returns it, with the two columns the claim adds. */
type ClaimRow = Record<string, unknown> & { lease_generation: string | number; took_over: boolean };

/**
 * The only code that reads or writes the lease columns (lease_token, lease_expires_at,
 * lease_generation, lease_release_requested) of `chunked_uploads`.
 */
export class LeaseRepository {
  constructor(
    private readonly orm: MikroORM,
    private readonly leaseTtlSeconds: number,
    /** How long an upload lives after its last chunk. */
    private readonly uploadTtlSeconds: number,
    /**
     * Whether a chunk commit may skip the WAL flush at all: only on a PostgreSQL server, which
     * outlives a crash of this process. The embedded database keeps its WAL buffers in this
     * process's memory, so there a SIGKILL of the server would lose acknowledged chunks.
     */
    private readonly databaseOutlivesProcess = false,
  ) {}

  /**
   * Takes the upload's lease if it is the owner's, UPLOADING, not expired, not leased by a
   * live writer and (when `atOffset` is given) at that offset. Undefined when refused.
   */
  async claim(uploadId: string, ownerId: string, atOffset?: number): Promise<Claimed | undefined> {
    const token = randomUUID();
    const rows = await this.orm.em.getConnection().execute<ClaimRow[]>(
      // A lease need not survive a crash (it would only run out), so its commit skips the WAL
      // flush: set_config(..., true) applies to this statement's own transaction. The row is
      // locked first, so `previous` is the lease this claim replaces, not a stale read.
      `with no_flush as (select set_config('synchronous_commit', 'off', true)),
            previous as (select id, lease_token from chunked_uploads where id = ? for update)
       update chunked_uploads u
          set lease_token = ?, lease_expires_at = now() + make_interval(secs => ?), lease_generation = u.lease_generation + 1,
              lease_release_requested = false
         from no_flush, previous
        where u.id = previous.id and u.owner_id = ? and u.status = 'UPLOADING' and u.expires_at > now()
          and (u.lease_token is null or u.lease_expires_at <= now())
          ${atOffset === undefined ? '' : 'and u."offset" = ?'}
        returning u.*, previous.lease_token is not null as took_over`,
      [uploadId, token, this.leaseTtlSeconds, ownerId, ...(atOffset === undefined ? [] : [atOffset])],
    );
    const row = rows[0];
    if (!row) return undefined;
    return {
      lease: { uploadId, token, generation: Number(row.lease_generation), tookOver: row.took_over },
      upload: this.orm.em.fork().map(ChunkedUpload, row),
    };
  }

  /**
   * Extends the lease by its TTL from now: 'lost' once it belongs to someone else, 'asked to
   * release' when a newer request for the upload wants it (see `askToRelease`).
   */
  async renew(lease: Lease): Promise<'held' | 'lost' | 'asked to release'> {
    const renewed = await this.orm.em.getConnection().execute<{ lease_release_requested: boolean }[]>(
      `update chunked_uploads set lease_expires_at = now() + make_interval(secs => ?)
        where id = ? and lease_token = ? returning lease_release_requested`,
      [this.leaseTtlSeconds, lease.uploadId, lease.token],
    );
    if (renewed.length === 0) return 'lost';
    return renewed[0].lease_release_requested ? 'asked to release' : 'held';
  }

  /**
   * Asks whoever holds the owner's upload's live lease, on any instance, to give it back soon
   * (its next renewal sees the request). False when nobody holds it.
   */
  async askToRelease(uploadId: string, ownerId: string): Promise<boolean> {
    const asked = await this.orm.em.getConnection().execute<unknown[]>(
      `update chunked_uploads set lease_release_requested = true
        where id = ? and owner_id = ? and lease_token is not null and lease_expires_at > now() returning id`,
      [uploadId, ownerId],
    );
    return asked.length === 1;
  }

  /** Persists a storage state the holder made without moving the offset (a fence). */
  async saveStorageState(lease: Lease, state: StoreState): Promise<boolean> {
    const saved = await this.orm.em.getConnection().execute<unknown[]>(
      `update chunked_uploads set storage_state = ?::jsonb where id = ? and lease_token = ? returning id`,
      [state === null ? null : JSON.stringify(state), lease.uploadId, lease.token],
    );
    return saved.length === 1;
  }

  /**
   * Counts a written chunk and releases the lease in one statement: offset, md5 state and
   * storage state always move together. Undefined if the lease was lost meanwhile.
   * `keepLease` renews it instead, for a writer with more of the same body to come.
   *
   * `flushWal: false` commits without waiting for the WAL flush (on a PostgreSQL server), for a chunk whose bytes are
   * already durable and whose storage state did not change: a database crash can then only move
   * the upload back to an earlier consistent point (offset, md5 state and storage state of an
   * earlier commit), whose bytes are all still there, and the client resends from
   * `upload(id).offset`. A commit whose storage state changed must flush: once it is committed,
   * what only the previous state needed is deleted (S3 tail segments).
   *
   * `notify` tells subscribers of the new offset in the same statement (the caller throttles it).
   */
  async commitChunk(lease: Lease, chunk: ChunkCommit, { keepLease = false, flushWal = true, notify = false } = {}): Promise<ChunkedUpload | undefined> {
    const leaseAfter = keepLease
      ? 'lease_expires_at = now() + make_interval(secs => ?)'
      : 'lease_token = null, lease_expires_at = null';
    const rows = await this.orm.em.getConnection().execute<Record<string, unknown>[]>(
      `update chunked_uploads
          set "offset" = "offset" + ?, md5_state = ?, storage_state = ?::jsonb, ${leaseAfter},
              updated_at = now(), expires_at = now() + make_interval(secs => ?)
         ${flushWal || !this.databaseOutlivesProcess ? '' : "from (select set_config('synchronous_commit', 'off', true)) no_flush"}
        where id = ? and lease_token = ? and "offset" = ?
        returning chunked_uploads.*, case when ?::boolean then ${UPLOAD_EVENT_SQL} end as notified`,
      [
        chunk.bytesWritten,
        Buffer.from(chunk.md5State),
        chunk.storageState === null ? null : JSON.stringify(chunk.storageState),
        ...(keepLease ? [this.leaseTtlSeconds] : []),
        this.uploadTtlSeconds,
        lease.uploadId,
        lease.token,
        chunk.offset,
        notify,
      ],
    );
    return rows[0] ? this.orm.em.fork().map(ChunkedUpload, rows[0]) : undefined;
  }

  /**
   * The holder declares the size of an upload that deferred it (tus), in the caller's transaction
   * (which checked the quota): never below what is stored. Undefined if the lease was lost or the size does not fit.
   */
  async declareLength(lease: Lease, totalSize: number, em: EntityManager): Promise<ChunkedUpload | undefined> {
    const rows = await em.getConnection().execute<Record<string, unknown>[]>(
      `update chunked_uploads set total_size = ?, length_deferred = false
        where id = ? and lease_token = ? and length_deferred and "offset" <= ?
        returning *, ${UPLOAD_EVENT_SQL} as notified`,
      [totalSize, lease.uploadId, lease.token, totalSize],
      'all',
      em.getTransactionContext(),
    );
    return rows[0] ? this.orm.em.fork().map(ChunkedUpload, rows[0]) : undefined;
  }

  /**
   * Gives the lease back early (a refused or failed chunk); a no-op once it is someone else's.
   * Like a claim, a release need not survive a crash (the lease would only run out), so its
   * commit skips the WAL flush.
   */
  async release(lease: Lease): Promise<void> {
    await this.orm.em.getConnection().execute(
      `with no_flush as (select set_config('synchronous_commit', 'off', true))
       update chunked_uploads set lease_token = null, lease_expires_at = null from no_flush where id = ? and lease_token = ?`,
      [lease.uploadId, lease.token],
    );
  }

  /** Marks the upload COMPLETE inside the caller's transaction; false if the lease was lost. */
  async complete(em: EntityManager, lease: Lease): Promise<boolean> {
    const done = await em.getConnection().execute<unknown[]>(
      `update chunked_uploads set status = 'COMPLETE', lease_token = null, lease_expires_at = null, updated_at = now()
        where id = ? and lease_token = ? and status = 'UPLOADING' returning id, ${UPLOAD_EVENT_SQL} as notified`,
      [lease.uploadId, lease.token],
      'all',
      em.getTransactionContext(),
    );
    return done.length === 1;
  }

  /** Marks the upload ABORTED; false if the lease was lost. */
  async abort(lease: Lease): Promise<boolean> {
    const done = await this.orm.em.getConnection().execute<unknown[]>(
      `update chunked_uploads set status = 'ABORTED', lease_token = null, lease_expires_at = null, updated_at = now()
        where id = ? and lease_token = ? returning id, ${UPLOAD_EVENT_SQL} as notified`,
      [lease.uploadId, lease.token],
    );
    return done.length === 1;
  }

  /**
   * Marks every upload in progress of the owner ABORTED whoever holds its lease (the owner is
   * being deleted): a writer still streaming finds its lease gone at its next renewal or
   * commit, and stops. Returns the uploads, for their bytes to be deleted.
   */
  async abortAllOf(ownerId: string): Promise<ChunkedUpload[]> {
    const rows = await this.orm.em.getConnection().execute<Record<string, unknown>[]>(
      `update chunked_uploads set status = 'ABORTED', lease_token = null, lease_expires_at = null, updated_at = now()
        where owner_id = ? and status = 'UPLOADING' returning *`,
      [ownerId],
    );
    const em = this.orm.em.fork();
    return rows.map((row: Record<string, unknown>) => em.map(ChunkedUpload, row));
  }

  /**
   * Tells subscribers where an upload stands now: the trailing notification after commits whose
   * own notification the throttle held back.
   */
  async notifyProgress(uploadId: string): Promise<void> {
    // A NOTIFY gives its transaction an xid, so its commit would flush the WAL (and with it every
    // chunk commit that skipped the flush): a notification need not survive a crash.
    await this.orm.em.getConnection().execute(
      `select ${UPLOAD_EVENT_SQL} from chunked_uploads, (select set_config('synchronous_commit', 'off', true)) no_flush
        where id = ? and status = 'UPLOADING'`,
      [uploadId],
    );
  }

  /** Whether a live writer holds the upload's lease right now. */
  async isHeld(uploadId: string): Promise<boolean> {
    const rows = await this.orm.em
      .getConnection()
      .execute<unknown[]>(`select id from chunked_uploads where id = ? and lease_token is not null and lease_expires_at > now()`, [uploadId]);
    return rows.length === 1;
  }

  /** Marks uploads past their expiry EXPIRED (never one a live writer holds) and returns them. */
  async expireAbandoned(): Promise<ChunkedUpload[]> {
    const rows = await this.orm.em.getConnection().execute<Record<string, unknown>[]>(
      `update chunked_uploads set status = ?, updated_at = now()
        where status = ? and expires_at <= now() and (lease_token is null or lease_expires_at <= now())
        returning *, ${UPLOAD_EVENT_SQL} as notified`,
      [UploadStatus.EXPIRED, UploadStatus.UPLOADING],
    );
    const em = this.orm.em.fork();
    return rows.map((row: Record<string, unknown>) => em.map(ChunkedUpload, row));
  }
}
