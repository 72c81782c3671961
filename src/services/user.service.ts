import { UniqueConstraintViolationException, type FilterQuery, type MikroORM } from '@mikro-orm/core';
import { User } from '../entities';
import { Errors } from '../errors';
import type { AuthCache } from './auth-cache';
import type { LoginThrottleService } from './login-throttle.service';
import { hashPassword, verifyPassword } from './passwords';
import { usernameKey } from './usernames';
import { escapeLike, isUuid } from './validation';

const MAX_USERNAME_LENGTH = 64;
const USERNAME = /^[\p{L}\p{N}._@-]{1,64}$/u;
/** The most users `users` returns at once. */
const MAX_USERS_PAGE = 200;
const MIN_PASSWORD_LENGTH = 8;
const MAX_PASSWORD_LENGTH = 1024;

export class UserService {
  constructor(
    private readonly orm: MikroORM,
    private readonly throttle: LoginThrottleService,
    /** DEFAULT_USER_QUOTA: the quota every user created here starts with (null: no limit). */
    private readonly defaultQuota: number | null = null,
    /** Told at once, so this instance's next request sees the change (others hear the notification). */
    private readonly authCache?: AuthCache,
  ) {}

  /** Everyone, oldest first (the first admin at the top). */
  async list(): Promise<User[]> {
    return this.orm.em.fork().find(User, {}, { orderBy: { createdAt: 'asc', id: 'asc' } });
  }

  /**
   * A page of users for admins, oldest first: `first` after the user whose id is `after`,
   * those whose username contains `search` (any case), and how many match in all.
   */
  async page(query: { first: number; after?: string | null; search?: string | null }): Promise<{ users: User[]; hasNextPage: boolean; totalCount: number }> {
    if (!Number.isInteger(query.first) || query.first < 0 || query.first > MAX_USERS_PAGE) {
      throw Errors.badInput(`first must be between 0 and ${MAX_USERS_PAGE}.`);
    }
    const search = query.search?.trim() ?? '';
    if (search.length > MAX_USERNAME_LENGTH) throw Errors.badInput(`search is longer than a username can be (${MAX_USERNAME_LENGTH}).`);
    const em = this.orm.em.fork();
    const matching: FilterQuery<User> = search ? { username: { $ilike: `%${escapeLike(search)}%` } } : {};
    const where: FilterQuery<User> = { ...matching };
    if (query.after != null) {
      const cursor = isUuid(query.after) ? await em.findOne(User, { id: query.after }) : null;
      if (!cursor) throw Errors.badInput('after is not a cursor this API gave out.');
      where.$or = [{ createdAt: { $gt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { $gt: cursor.id } }];
    }
    const [rows, totalCount] = await Promise.all([
      em.find(User, where, { orderBy: { createdAt: 'asc', id: 'asc' }, limit: query.first + 1 }),
      em.count(User, matching),
    ]);
    return { users: rows.slice(0, query.first), hasNextPage: rows.length > query.first, totalCount };
  }

  async findById(id: string): Promise<User | null> {
    return isUuid(id) ? this.orm.em.fork().findOne(User, { id }) : null;
  }

  /** Found as login finds it: any case, any Unicode form. */
  async findByUsername(username: string): Promise<User | null> {
    return this.orm.em.fork().findOne(User, { usernameKey: usernameKey(username) });
  }

  async create(input: { username: string; password: string; isAdmin?: boolean | null }): Promise<User> {
    const username = input.username.trim().normalize('NFC');
    if (!USERNAME.test(username)) {
      throw Errors.badInput('username must be 1 to 64 letters, digits or . _ @ - characters.');
    }
    checkPasswordStrength(input.password, 'password');
    const em = this.orm.em.fork();
    const user = em.create(User, { username, passwordHash: await hashPassword(input.password), isAdmin: input.isAdmin ?? false, quotaBytes: this.defaultQuota });
    try {
      await em.flush();
    } catch (err) {
      // The unique username_key (usernames.ts) decides, so two concurrent creations cannot both win.
      if (err instanceof UniqueConstraintViolationException) throw Errors.badInput(`The username "${username}" is taken.`);
      throw err;
    }
    return user;
  }

  /**
   * Changes the password and revokes every token issued before the change. The old password is
   * guessed like a login's (a stolen token could try it over and over): the login throttle
   * counts it, for the same username and address.
   */
  async changePassword(user: User, oldPassword: string, newPassword: string, address: string): Promise<User> {
    checkPasswordStrength(newPassword, 'newPassword');
    const em = this.orm.em.fork();
    const current = await em.findOneOrFail(User, { id: user.id });
    const valid = await this.throttle.attempt(user.usernameKey, address, () => verifyPassword(oldPassword, current.passwordHash));
    if (!valid) throw Errors.forbidden('The old password is wrong.');
    current.passwordHash = await hashPassword(newPassword);
    current.tokenVersion += 1;
    await em.flush();
    this.authCache?.invalidateUser(current.id);
    return current;
  }

  /**
   * An operator's reset (the CLI): no old password. Revokes every token issued before, and lifts
   * a lock that failed logins put on the username, since those were probably the forgotten one.
   */
  async resetPassword(username: string, newPassword: string): Promise<User> {
    checkPasswordStrength(newPassword, 'password');
    const em = this.orm.em.fork();
    // Found as login finds it.
    const user = await em.findOne(User, { usernameKey: usernameKey(username) });
    if (!user) throw Errors.notFound(`User "${username}"`);
    user.passwordHash = await hashPassword(newPassword);
    user.tokenVersion += 1;
    await em.flush();
    this.authCache?.invalidateUser(user.id);
    await this.throttle.forgetFailures(user.usernameKey);
    return user;
  }
}

function checkPasswordStrength(password: string, field: string): void {
  if (password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH) {
    throw Errors.badInput(`${field} must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters long.`);
  }
}
