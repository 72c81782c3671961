import type { EntityManager, MikroORM } from '@mikro-orm/core';
import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { FileStatus } from '../entities';
import { FileMissingError, type FileStore } from '../storage/file-store';

export interface VerifierOptions {
  /** How long a claim on a job lasts without renewal; renewed every third of it while reading. */
  leaseSeconds: number;
  /** Between two looks for work when there was none (a completion here wakes it at once). */
  pollMs: number;
  /** Bytes a second one read may take from the store (0: no limit). */
  maxRate: number;
}

interface ClaimedJob {
  fileId: string;
  expectedMd5: string;
  size: number;
  attempt: number;
  token: string;
}

/** Jobs that failed on the store's side (unreachable) wait this long times their attempts, up to MAX_BACKOFF. */
const BACKOFF_SECONDS = 5;
const MAX_BACKOFF_SECONDS = 300;

class LeaseLost extends Error {}
class Stopping extends Error {}

/**
 * Verifies directly uploaded files: reads each one once from the store, computes its md5, and
 * sets it READY when that is the md5 given at completion, else REJECTED (bytes deleted, name
 * freed). Jobs are rows of `file_verifications`, written in the same transaction as the File:
 * every instance polls for them and claims one with `FOR UPDATE SKIP LOCKED` and a lease, in
 * one short statement; no transaction is held while the object is read. The verdict is written
 * only if the claim still holds (one conditional statement with the file's new status), so it
 * happens once however many instances try, and a job whose holder died is taken over when its
 * lease runs out, after a restart too.
 */
export class FileVerifier {
  private stopped = true;
  private wakeUp?: () => void;
  private loop?: Promise<void>;
  /** The object being read, destroyed when the server stops so that stopping does not wait for the store. */
  private reading?: Readable;

  constructor(
    private readonly orm: MikroORM,
    private readonly store: FileStore,
    private readonly options: VerifierOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  /** Look for work now (a completion on this instance just queued some). */
  wake(): void {
    this.wakeUp?.();
  }

  /** Stops looking; a read in progress stops and its job is given back for another instance or the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    this.reading?.destroy(new Stopping());
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let worked = false;
      try {
        worked = await this.runOnce();
      } catch (err) {
        this.log.warn({ err }, 'file verification: could not look for or finish a job; trying again at the next poll');
      }
      if (!worked && !this.stopped) await this.idle();
    }
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.options.pollMs);
      timer.unref();
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = undefined;
        done();
      };
    });
  }

  /** Claims one job and does it; false when there was none to claim. */
  async runOnce(): Promise<boolean> {
    const job = await this.claim();
    if (!job) return false;
    this.log.info({ fileId: job.fileId, attempt: job.attempt, size: job.size }, 'verification started');
    try {
      const actual = await this.readMd5(job);
      if (actual.size !== job.size) {
        await this.finish(job, FileStatus.REJECTED, `The store holds ${actual.size} bytes, not the ${job.size} the upload declared.`);
      } else if (actual.md5 !== job.expectedMd5) {
        await this.finish(job, FileStatus.REJECTED, `The stored bytes have md5 ${actual.md5}, not ${job.expectedMd5} as given at completion.`);
      } else {
        await this.finish(job, FileStatus.READY, null);
      }
    } catch (err) {
      if (err instanceof LeaseLost) {
        this.log.warn({ fileId: job.fileId }, 'verification lost its claim (another instance took the job over); stopped reading');
      } else if (err instanceof Stopping) {
        await this.giveBack(job, null);
      } else if (err instanceof FileMissingError) {
        await this.finish(job, FileStatus.REJECTED, 'The bytes are missing from the store.');
      } else {
        this.log.warn({ err, fileId: job.fileId, attempt: job.attempt }, 'verification failed; it will be tried again');
        await this.giveBack(job, err, Math.min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * job.attempt)).catch(() => {});
      }
    }
    return true;
  }

  /** The oldest unfinished job nobody holds a live claim on, claimed in one statement. */
  private async claim(): Promise<ClaimedJob | undefined> {
    const token = randomUUID();
    const rows = await this.orm.em.getConnection().execute<{ file_id: string; expected_md5: string; attempts: number; size: string | number }[]>(
      `update file_verifications v
          set lease_token = ?, lease_expires_at = now() + make_interval(secs => ?), attempts = v.attempts + 1
         from files f
        where f.id = v.file_id
          and v.file_id = (select file_id from file_verifications
                            where finished_at is null and (lease_token is null or lease_expires_at <= now())
                            order by created_at limit 1 for update skip locked)
        returning v.file_id, v.expected_md5, v.attempts, f.size`,
      [token, this.options.leaseSeconds],
    );
    const row = rows[0];
    if (!row) return undefined;
    return { fileId: row.file_id, expectedMd5: row.expected_md5, size: Number(row.size), attempt: Number(row.attempts), token };
  }

  /** One streaming read of the object: its md5 and length. Renews the claim as it goes. */
  private async readMd5(job: ClaimedJob): Promise<{ md5: string; size: number }> {
    const body: Readable = await this.store.readFile(job.fileId);
    this.reading = body;
    const hash = createHash('md5');
    const renewEveryMs = (this.options.leaseSeconds * 1000) / 3;
    const started = Date.now();
    let renewedAt = started;
    let size = 0;
    try {
      for await (const chunk of body) {
        if (this.stopped) throw new Stopping();
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
        if (this.options.maxRate > 0) {
          const due = started + (size / this.options.maxRate) * 1000;
          if (due > Date.now()) await sleep(due - Date.now());
        }
        if (Date.now() - renewedAt >= renewEveryMs) {
          const sentAt = Date.now();
          if (!(await this.renew(job))) throw new LeaseLost();
          renewedAt = sentAt;
        }
      }
    } finally {
      this.reading = undefined;
      body.destroy();
    }
    if (!(await this.renew(job))) throw new LeaseLost();
    return { md5: hash.digest('hex'), size };
  }

  private async renew(job: ClaimedJob): Promise<boolean> {
    const rows = await this.orm.em.getConnection().execute<unknown[]>(
      `update file_verifications set lease_expires_at = now() + make_interval(secs => ?)
        where file_id = ? and lease_token = ? and finished_at is null returning file_id`,
      [this.options.leaseSeconds, job.fileId, job.token],
    );
    return rows.length === 1;
  }

  /**
   * The verdict, once: the job finishes and the file takes its status in one transaction, only
   * if this claim still holds. A rejected file's bytes are deleted after that commit (if that
   * fails, the cleanup's orphan sweep deletes them: a REJECTED file's bytes count as orphans).
   */
  private async finish(job: ClaimedJob, status: FileStatus.READY | FileStatus.REJECTED, reason: string | null): Promise<void> {
    const decided = await this.orm.em.fork().transactional(async (em: EntityManager) => {
      const tx = em.getTransactionContext();
      const connection = em.getConnection();
      const finished = await connection.execute<unknown[]>(
        `update file_verifications set finished_at = now(), lease_token = null, lease_expires_at = null, last_error = ?
          where file_id = ? and lease_token = ? and finished_at is null returning file_id`,
        [reason, job.fileId, job.token],
        'all',
        tx,
      );
      if (finished.length === 0) return false;
      await connection.execute(`update files set status = ?, status_reason = ? where id = ?`, [status, reason, job.fileId], 'all', tx);
      return true;
    });
    if (!decided) {
      this.log.warn({ fileId: job.fileId }, 'verification finished after losing its claim; the verdict of the instance that took over stands');
      return;
    }
    this.log.info({ fileId: job.fileId, status, reason, attempt: job.attempt }, 'verification finished');
    if (status === FileStatus.REJECTED) {
      try {
        await this.store.deleteFile(job.fileId);
      } catch (err) {
        this.log.error({ err, fileId: job.fileId }, 'a rejected file\'s bytes could not be deleted; cleanup will retry');
      }
    }
  }

  /** Releases the claim (at once, or after `delaySeconds`) so the job runs again. */
  private async giveBack(job: ClaimedJob, err: unknown, delaySeconds = 0): Promise<void> {
    await this.orm.em.getConnection().execute(
      `update file_verifications set lease_expires_at = now() + make_interval(secs => ?), last_error = ?
        where file_id = ? and lease_token = ? and finished_at is null`,
      [delaySeconds, err ? String((err as Error).message ?? err) : null, job.fileId, job.token],
    );
  }
}
