import type { EntityManager, MikroORM } from '@mikro-orm/core';
import { User } from '../entities';
import { Errors } from '../errors';
import type { UploadService } from '../uploads/upload.service';
import type { AuthCache } from './auth-cache';
import { isUuid } from './validation';

export interface UserChange {
  isAdmin?: boolean | null;
  disabled?: boolean | null;
}

/**
 * Admin changes to users. Each runs in a transaction that first locks every enabled admin's
 * row: two admins demoting each other at once take turns, and the second sees the first's
 * change (PostgreSQL re-reads a locked row before returning it), so the last admin stays.
 */
export class UserAdmin {
  constructor(
    private readonly orm: MikroORM,
    private readonly uploads: UploadService,
    /** Told after each commit, so this instance's next request sees the change (others hear the notification). */
    private readonly authCache?: AuthCache,
  ) {}

  /**
   * Promotes, demotes, disables or enables a user. Disabling ends every login token for good
   * (re-enabling does not revive them); access tokens only pause while the user is disabled.
   */
  async update(id: string, change: UserChange): Promise<User> {
    const updated = await this.guarded(id, async (em, user, otherAdmins) => {
      const isAdmin = change.isAdmin ?? user.isAdmin;
      const disabled = change.disabled ?? user.disabled;
      if (user.isAdmin && !user.disabled && (!isAdmin || disabled) && otherAdmins === 0) {
        throw Errors.badInput(`${user.username} is the last admin: promote someone else first.`);
      }
      const rows = await execute(
        em,
        `update users set is_admin = ?, disabled = ?, token_version = token_version + ? where id = ? returning *`,
        [isAdmin, disabled, disabled && !user.disabled ? 1 : 0, id],
      );
      return em.map(User, rows[0]);
    });
    this.authCache?.invalidateUser(id);
    return updated;
  }

  /**
   * Deletes a user: out at once (disabled in the guarded transaction), then their uploads in
   * progress aborted and their bytes freed, then the row, with their access tokens. Their files
   * stay, without an author (files.author_id is `on delete set null`). Interrupted half-way, the
   * user is left disabled, and deleting again finishes.
   */
  async delete(id: string): Promise<User> {
    const user = await this.guarded(id, async (em, target, otherAdmins) => {
      if (target.isAdmin && !target.disabled && otherAdmins === 0) {
        throw Errors.badInput(`${target.username} is the last admin: promote someone else first.`);
      }
      await execute(em, `update users set disabled = true, token_version = token_version + 1 where id = ?`, [id]);
      return target;
    });
    this.authCache?.invalidateUser(id);
    await this.uploads.abortAllOf(id);
    await this.orm.em.getConnection().execute('delete from users where id = ?', [id]);
    this.authCache?.invalidateUser(id);
    return user;
  }

  private async guarded<T>(id: string, work: (em: EntityManager, user: User, otherAdmins: number) => Promise<T>): Promise<T> {
    if (!isUuid(id)) throw Errors.notFound('User');
    return this.orm.em.fork().transactional(async (em) => {
      const admins = await execute(em, `select id from users where is_admin and not disabled order by id for update`, []);
      const [row] = await execute(em, `select * from users where id = ? for update`, [id]);
      if (!row) throw Errors.notFound('User');
      return work(em, em.map(User, row), admins.filter((admin) => admin.id !== id).length);
    });
  }
}

/** A raw statement inside `em`'s transaction. */
function execute(em: EntityManager, sql: string, params: unknown[]): Promise<Record<string, unknown>[]> {
  return em.getConnection().execute<Record<string, unknown>[]>(sql, params, 'all', em.getTransactionContext());
}
