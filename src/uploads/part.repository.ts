import { randomUUID } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/core';
import { ChunkedUpload } from './chunked-upload.entity';
import type { Lease } from './lease.repository';

/** The right to write one part of an upload in parts; several parts of one upload are leased at once. */
export interface PartLease extends Omit<Lease, 'tookOver'> {
  readonly partNumber: number;
}

/** A part whose bytes are stored: which attempt's spool file holds them. */
export interface SpooledPart {
  partNumber: number;
  generation: number;
  size: number;
  /** Known when the part came with a chunkMd5 (checked). */
  md5: string | null;
}

export interface PartClaim {
  lease: PartLease;
  /** The part as stored by an earlier request (a resend must be identical), if it was. */
  stored?: SpooledPart;
  /** The upload's contiguous prefix when the part was claimed. */
  uploadOffset: number;
  /** The bytes this part must have: partSize, or what is left for the last part. */
  size: number;
}

type Bigint = string | number;
type PartRow = {
  lease_generation: Bigint;
  stored_generation: Bigint | null;
  size: Bigint | null;
  md5: string | null;
  upload_offset: Bigint;
  part_size: Bigint;
  total_size: Bigint;
};

/**
 * The only code that reads or writes `upload_parts`. Like the upload's own lease, each operation
 * is one conditional statement, so the database settles every race between parts.
 */
export class PartRepository {
  constructor(
    private readonly orm: MikroORM,
    private readonly leaseTtlSeconds: number,
    /** How long an upload lives after its last part (as after its last chunk). */
    private readonly uploadTtlSeconds: number,
  ) {}

  /**
   * Takes the lease of one part of the owner's upload in parts (UPLOADING, not expired, not
   * direct) unless a live writer holds it. Undefined when refused; the caller explains why.
   */
  async claim(uploadId: string, ownerId: string, partNumber: number, maxAhead: number): Promise<PartClaim | undefined> {
    const token = randomUUID();
    const rows = await this.orm.em.getConnection().execute<PartRow[]>(
      // The part must exist and lie at most `maxAhead` parts past the first one not merged yet,
      // so the spool holds a bounded number of parts per upload. An abort that slips in after
      // the check is caught by the part's commit, which needs the upload still UPLOADING.
      // A lease need not survive a crash: no WAL flush for its commit.
      `with no_flush as (select set_config('synchronous_commit', 'off', true)),
            up as (select u.id, u."offset", u.part_size, u.total_size from chunked_uploads u, no_flush
                    where u.id = ? and u.owner_id = ? and u.status = 'UPLOADING' and u.expires_at > now()
                      and u.part_size is not null and not u.direct
                      and ?::int <= (u.total_size + u.part_size - 1) / u.part_size
                      and ?::int <= u."offset" / u.part_size + 1 + ?::int)
       insert into upload_parts as p (upload_id, part_number, lease_token, lease_expires_at)
       select up.id, ?, ?, now() + make_interval(secs => ?) from up
       on conflict (upload_id, part_number) do update
          set lease_token = excluded.lease_token, lease_expires_at = excluded.lease_expires_at, lease_generation = p.lease_generation + 1
        where p.lease_token is null or p.lease_expires_at <= now()
       returning p.lease_generation, p.stored_generation, p.size, p.md5,
                 (select "offset" from up) as upload_offset, (select part_size from up) as part_size, (select total_size from up) as total_size`,
      [uploadId, ownerId, partNumber, partNumber, maxAhead, partNumber, token, this.leaseTtlSeconds],
    );
    const row = rows[0];
    if (!row) return undefined;
    const generation = Number(row.lease_generation);
    return {
      lease: { uploadId, partNumber, token, generation },
      stored:
        row.stored_generation === null
          ? undefined
          : { partNumber, generation: Number(row.stored_generation), size: Number(row.size), md5: row.md5 },
      uploadOffset: Number(row.upload_offset),
      size: Math.min(Number(row.part_size), Number(row.total_size) - (partNumber - 1) * Number(row.part_size)),
    };
  }

  /** Extends the part's lease; false once it is someone else's. */
  async renew(lease: PartLease): Promise<boolean> {
    const renewed = await this.orm.em.getConnection().execute<unknown[]>(
      `update upload_parts set lease_expires_at = now() + make_interval(secs => ?)
        where upload_id = ? and part_number = ? and lease_token = ? returning part_number`,
      [this.leaseTtlSeconds, lease.uploadId, lease.partNumber, lease.token],
    );
    return renewed.length === 1;
  }

  /**
   * Records the part as stored by this attempt's spool file and releases its lease, while the
   * upload is still UPLOADING (whose expiry it pushes back, as a chunk does). Returns the upload;
   * undefined if the lease or the upload was lost meanwhile.
   */
  async commit(lease: PartLease, part: { size: number; md5: string | null }): Promise<ChunkedUpload | undefined> {
    const rows = await this.orm.em.getConnection().execute<Record<string, unknown>[]>(
      `with up as (update chunked_uploads set updated_at = now(), expires_at = now() + make_interval(secs => ?)
                    where id = ? and status = 'UPLOADING' returning *)
       update upload_parts p set stored_generation = p.lease_generation, size = ?, md5 = ?, lease_token = null, lease_expires_at = null
         from up
        where p.upload_id = up.id and p.part_number = ? and p.lease_token = ?
        returning up.*`,
      [this.uploadTtlSeconds, lease.uploadId, part.size, part.md5, lease.partNumber, lease.token],
    );
    return rows[0] ? this.orm.em.fork().map(ChunkedUpload, rows[0]) : undefined;
  }

  /** Gives the part's lease back (a refused, failed or identical resent part). */
  async release(lease: PartLease): Promise<void> {
    await this.orm.em.getConnection().execute(
      `with no_flush as (select set_config('synchronous_commit', 'off', true))
       update upload_parts set lease_token = null, lease_expires_at = null from no_flush
        where upload_id = ? and part_number = ? and lease_token = ?`,
      [lease.uploadId, lease.partNumber, lease.token],
    );
  }

  /** The part's stored bytes were lost: it is missing again, for the client to resend. */
  async forget(uploadId: string, part: { partNumber: number; generation: number }): Promise<void> {
    await this.orm.em.getConnection().execute(
      `update upload_parts set stored_generation = null, size = null, md5 = null where upload_id = ? and part_number = ? and stored_generation = ?`,
      [uploadId, part.partNumber, part.generation],
    );
  }

  /** Whether a live writer holds the part's lease right now. */
  async isHeld(uploadId: string, partNumber: number): Promise<boolean> {
    const rows = await this.orm.em
      .getConnection()
      .execute<unknown[]>(`select 1 from upload_parts where upload_id = ? and part_number = ? and lease_token is not null and lease_expires_at > now()`, [
        uploadId,
        partNumber,
      ]);
    return rows.length === 1;
  }

  /** The stored parts from `firstPart` on that follow each other without a gap, at most `max`. */
  async storedRun(uploadId: string, firstPart: number, max: number): Promise<SpooledPart[]> {
    const rows = await this.orm.em.getConnection().execute<{ part_number: number; stored_generation: number; size: string | number; md5: string | null }[]>(
      `select part_number, stored_generation, size, md5 from upload_parts
        where upload_id = ? and part_number >= ? and part_number < ? and stored_generation is not null
        order by part_number`,
      [uploadId, firstPart, firstPart + max],
    );
    const run: SpooledPart[] = [];
    for (const row of rows) {
      if (row.part_number !== firstPart + run.length) break;
      run.push({ partNumber: row.part_number, generation: row.stored_generation, size: Number(row.size), md5: row.md5 });
    }
    return run;
  }

  /** Numbers of the stored parts from `firstPart` on, ascending. */
  async storedFrom(uploadId: string, firstPart: number): Promise<Set<number>> {
    const rows = await this.orm.em
      .getConnection()
      .execute<{ part_number: number }[]>(`select part_number from upload_parts where upload_id = ? and part_number >= ? and stored_generation is not null`, [
        uploadId,
        firstPart,
      ]);
    return new Set(rows.map((r: { part_number: number }) => r.part_number));
  }
}
