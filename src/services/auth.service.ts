import type { MikroORM } from '@mikro-orm/core';
import jwt from 'jsonwebtoken';
import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config';
import { User } from '../entities';
import { AppError, Errors } from '../errors';
import type { LoginThrottleService } from './login-throttle.service';
import { DUMMY_PASSWORD_HASH, hashPassword, needsRehash, verifyPassword } from './passwords';
import { usernameKey } from './usernames';
import { isUuid } from './validation';

interface AccessClaims {
  sub: string;
  /** The user's tokenVersion when the token was issued; a later bump revokes it. */
  ver: number;
}

interface DownloadClaims {
  /** The one file this link opens. */
  fid: string;
  typ: 'download';
}

const ALGORITHM = 'HS256';

export class AuthService {
  /**
   * A KeyObject, not the string: given a string, jsonwebtoken first tries to parse it as a
   * public key and fails, which costs about a millisecond on every request.
   */
  private readonly signingKey: KeyObject;

  constructor(
    private readonly orm: MikroORM,
    private readonly throttle: LoginThrottleService,
    private readonly config: ServerConfig,
    private readonly log: Logger,
  ) {
    this.signingKey = createSecretKey(Buffer.from(config.jwtSecret, 'utf8'));
  }

  /** `address` is the client's IP address, for the login throttle's per-address limits. */
  async login(username: string, password: string, address: string): Promise<{ token: string; user: User }> {
    // No stored username holds NUL (nor could the database store one).
    if (username.includes('\u0000')) throw Errors.unauthenticated('Wrong username or password.');
    const key = usernameKey(username);
    const found: { user?: User | null } = {};
    const valid = await this.throttle.attempt(key, address, async () => {
      found.user = await this.orm.em.fork().findOne(User, { usernameKey: key });
      // Hash even when the user does not exist, so response time does not reveal usernames.
      return (await verifyPassword(password, found.user?.passwordHash ?? DUMMY_PASSWORD_HASH)) && Boolean(found.user);
    });
    const user = found.user;
    if (!user || !valid) {
      this.log.info({ username, address }, 'failed login');
      throw Errors.unauthenticated('Wrong username or password.');
    }
    if (needsRehash(user.passwordHash)) await this.upgradePasswordHash(user, password);
    return { token: this.issueAccessToken(user), user };
  }

  /** Re-hashes with today's scrypt parameters (the password is known only now); tokens stay valid. */
  private async upgradePasswordHash(user: User, password: string): Promise<void> {
    try {
      const passwordHash = await hashPassword(password);
      // Only if the password did not change meanwhile.
      await this.orm.em.fork().nativeUpdate(User, { id: user.id, passwordHash: user.passwordHash }, { passwordHash });
    } catch (err) {
      this.log.warn({ err, userId: user.id }, 'could not upgrade a password hash; the old one still works');
    }
  }

  issueAccessToken(user: User): string {
    const claims: AccessClaims = { sub: user.id, ver: user.tokenVersion };
    return jwt.sign(claims, this.signingKey, { algorithm: ALGORITHM, expiresIn: this.config.jwtTtlSeconds });
  }

  /** The user a bearer token speaks for; throws UNAUTHENTICATED for anything else. */
  async authenticate(token: string): Promise<User> {
    const claims = this.verify<AccessClaims>(token);
    if (typeof claims.sub !== 'string' || !isUuid(claims.sub) || typeof claims.ver !== 'number') {
      throw Errors.unauthenticated('This token is not an access token: log in again.');
    }
    // Every request runs this: one plain select costs a third of the CPU of findOne's query
    // building, and the token's version is checked in the same statement.
    const em = this.orm.em.fork();
    const [row] = await em
      .getConnection()
      .execute<Record<string, unknown>[]>('select * from users where id = ? and token_version = ?', [claims.sub, claims.ver]);
    const user = row && em.map(User, row);
    if (!user) {
      throw Errors.unauthenticated('This token is no longer valid: log in again.');
    }
    return user;
  }

  issueDownloadToken(fileId: string): string {
    const claims: DownloadClaims = { fid: fileId, typ: 'download' };
    return jwt.sign(claims, this.signingKey, { algorithm: ALGORITHM, expiresIn: this.config.downloadLinkTtlSeconds });
  }

  /** True when `token` is a live download link for exactly this file. */
  allowsDownload(token: string, fileId: string): boolean {
    try {
      const claims = this.verify<DownloadClaims>(token);
      return claims.typ === 'download' && claims.fid === fileId;
    } catch {
      return false;
    }
  }

  /** First run: with no users at all, create the admin from config or with a generated password. */
  async ensureAdmin(): Promise<void> {
    const em = this.orm.em.fork();
    if ((await em.count(User, {})) > 0) return;
    const { username } = this.config.admin;
    const password = this.config.admin.password ?? randomBytes(12).toString('base64url');
    em.create(User, { username, passwordHash: await hashPassword(password), isAdmin: true });
    try {
      await em.flush();
    } catch (err) {
      // Another instance created it first.
      if ((await this.orm.em.fork().count(User, {})) > 0) return;
      throw err;
    }
    if (this.config.admin.password) {
      this.log.info({ username }, 'created the first admin from ADMIN_USERNAME / ADMIN_PASSWORD');
    } else {
      this.log.warn({ username, password }, 'created the first admin with a generated password: it is shown only this once');
    }
  }

  private verify<T>(token: string): T {
    let claims: T & { exp?: unknown };
    try {
      claims = jwt.verify(token, this.signingKey, { algorithms: [ALGORITHM] }) as T & { exp?: unknown };
    } catch (err) {
      if (err instanceof AppError) throw err;
      const expired = err instanceof jwt.TokenExpiredError;
      throw Errors.unauthenticated(expired ? 'This token has expired: log in again.' : 'This token is not valid: log in again.');
    }
    // Every token this server signs expires; one that never does was not made here as intended.
    if (typeof claims.exp !== 'number') throw Errors.unauthenticated('This token has no expiry time: log in again.');
    return claims;
  }
}
