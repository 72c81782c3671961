import type { EntityManager, MikroORM } from '@mikro-orm/core';
import type { Logger } from 'pino';
import { User } from '../entities';
import { Errors } from '../errors';
import type { AuthCache } from './auth-cache';
import { usernameKey } from './usernames';
import { isUuid } from './validation';

/**
 * What a user uses, summed from the rows that hold it: the sizes of the files they authored and
 * the declared sizes (`total_size`) of their uploads still UPLOADING. Nothing is counted twice or
 * kept aside, so every path that adds or removes one of those rows (completion, abort, expiry,
 * deleting a file, a user's uploads going with the user) is exact by construction.
 */
// A REJECTED file keeps its row (for its statusReason) but no bytes.
const USED_BYTES_SQL = `select (select coalesce(sum(size), 0) from files where author_id = ? and status <> 'REJECTED')
                             + (select coalesce(sum(total_size), 0) from chunked_uploads where owner_id = ? and status = 'UPLOADING') as used`;

/** The user's quota and use, read with their row locked (see `QuotaService.lock`). */
export interface QuotaLock {
  quotaBytes: number | null;
  usedBytes: number;
  /** What the user may still reserve; Infinity without a quota. */
  availableBytes: number;
}

export class QuotaService {
  constructor(
    private readonly orm: MikroORM,
    private readonly log: Logger,
    /** Told at once: `me` on this instance shows the new quota from the next request on. */
    private readonly authCache?: AuthCache,
  ) {}

  async usedBytes(userId: string): Promise<number> {
    const [row] = await this.orm.em.getConnection().execute<{ used: string | number }[]>(USED_BYTES_SQL, [userId, userId]);
    return Number(row?.used ?? 0);
  }

  /**
   * Locks the user's row inside `em`'s transaction and reads their quota and use. Every
   * reservation takes this lock first, so two of them for one user run one after the other and
   * the second sees the first's upload (each statement reads what is committed when it starts):
   * twenty concurrent startUploads can never pass the quota together. Without a quota nothing
   * is summed.
   */
  async lock(em: EntityManager, userId: string): Promise<QuotaLock> {
    const connection = em.getConnection();
    const context = em.getTransactionContext();
    const [user] = await connection.execute<{ quota_bytes: string | number | null }[]>(
      'select quota_bytes from users where id = ? for update',
      [userId],
      'all',
      context,
    );
    if (!user) throw Errors.unauthenticated('This account no longer exists.');
    if (user.quota_bytes === null) return { quotaBytes: null, usedBytes: 0, availableBytes: Infinity };
    const quotaBytes = Number(user.quota_bytes);
    const [row] = await connection.execute<{ used: string | number }[]>(USED_BYTES_SQL, [userId, userId], 'all', context);
    const usedBytes = Number(row?.used ?? 0);
    return { quotaBytes, usedBytes, availableBytes: Math.max(0, quotaBytes - usedBytes) };
  }

  /** Admins (and the CLI): null lifts the limit. A quota below what is used already refuses new uploads only. */
  async setQuota(userId: string, quotaBytes: number | null): Promise<User> {
    const quota = checkQuota(quotaBytes);
    const em = this.orm.em.fork();
    const user = isUuid(userId) ? await em.findOne(User, { id: userId }) : null;
    if (!user) throw Errors.notFound('User');
    user.quotaBytes = quota;
    await em.flush();
    this.authCache?.invalidateUser(user.id);
    this.log.info({ userId, quotaBytes: quota }, 'quota set');
    return user;
  }

  /** The CLI's way in: the user by name, as login finds them. */
  async setQuotaByName(username: string, quotaBytes: number | null): Promise<User> {
    const user = await this.orm.em.fork().findOne(User, { usernameKey: usernameKey(username) });
    if (!user) throw Errors.notFound(`User "${username}"`);
    return this.setQuota(user.id, quotaBytes);
  }
}

function checkQuota(quotaBytes: number | null): number | null {
  if (quotaBytes === null) return null;
  if (!Number.isSafeInteger(quotaBytes) || quotaBytes < 0) throw Errors.badInput('quotaBytes must be a whole number of bytes, 0 or more (or null for no limit).');
  return quotaBytes;
}
