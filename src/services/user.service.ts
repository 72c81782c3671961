import { UniqueConstraintViolationException, type MikroORM } from '@mikro-orm/core';
import { User } from '../entities';
import { Errors } from '../errors';
import type { LoginThrottleService } from './login-throttle.service';
import { hashPassword, verifyPassword } from './passwords';
import { isUuid } from './validation';

const USERNAME = /^[\p{L}\p{N}._@-]{1,64}$/u;
const MIN_PASSWORD_LENGTH = 8;
const MAX_PASSWORD_LENGTH = 1024;

export class UserService {
  constructor(
    private readonly orm: MikroORM,
    private readonly throttle: LoginThrottleService,
  ) {}

  async findById(id: string): Promise<User | null> {
    return isUuid(id) ? this.orm.em.fork().findOne(User, { id }) : null;
  }

  async create(input: { username: string; password: string; isAdmin?: boolean | null }): Promise<User> {
    const username = input.username.trim().normalize('NFC');
    if (!USERNAME.test(username)) {
      throw Errors.badInput('username must be 1 to 64 letters, digits or . _ @ - characters.');
    }
    checkPasswordStrength(input.password, 'password');
    const em = this.orm.em.fork();
    const user = em.create(User, { username, passwordHash: await hashPassword(input.password), isAdmin: input.isAdmin ?? false });
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
    return current;
  }
}

function checkPasswordStrength(password: string, field: string): void {
  if (password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH) {
    throw Errors.badInput(`${field} must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters long.`);
  }
}
