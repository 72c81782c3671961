import type { MikroORM } from '@mikro-orm/core';
import jwt from 'jsonwebtoken';
import { createSecretKey, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config';
import { TokenScope, User } from '../entities';
import { AppError, Errors } from '../errors';
import { accessKey, AuthCache, loginKey, type AuthCacheEntry } from './auth-cache';
import { isWellFormedAccessToken, looksLikeAccessToken, tokenHash, type Credential, type Principal } from './credentials';
import type { LoginThrottleService } from './login-throttle.service';
import { DUMMY_PASSWORD_HASH, hashPassword, needsRehash, verifyPassword } from './passwords';
import { usernameKey } from './usernames';
import { isUuid } from './validation';

interface LoginClaims {
  sub: string;
  /** The user's tokenVersion when the token was issued; a later bump revokes it. */
  ver: number;
  /** This token's id, which `logout` revokes. Tokens issued before there was one lack it. */
  jti?: string;
  exp: number;
}

interface DownloadClaims {
  /** The one file this link opens. */
  fid: string;
  typ: 'download';
}

const ALGORITHM = 'HS256';

/** `lastUsedAt` is written at most this often per access token (and instance). */
const LAST_USED_PRECISION_MS = 60_000;
/** Tokens remembered for that: past this many, those written long enough ago are forgotten. */
const LAST_USED_MEMORY = 10_000;

/** Every column of the user (the row is mapped to the User entity): a column listed here by name was missed once. */
const USER_COLUMNS = 'u.*';

export class AuthService {
  /**
   * A KeyObject, not the string: given a string, jsonwebtoken first tries to parse it as a
   * public key and fails, which costs about a millisecond on every request.
   */
  private readonly signingKey: KeyObject;
  /** When this instance last wrote each access token's `lastUsedAt` (epoch ms). */
  private readonly lastUseWritten = new Map<string, number>();

  constructor(
    private readonly orm: MikroORM,
    private readonly throttle: LoginThrottleService,
    private readonly config: ServerConfig,
    private readonly log: Logger,
    /** Principals of recent requests; `new AuthCache(0)` (the CLI's) never serves. */
    readonly cache: AuthCache = new AuthCache(0),
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
      // A disabled user's right password counts as a wrong one: the same answer, the same throttle.
      return (await verifyPassword(password, found.user?.passwordHash ?? DUMMY_PASSWORD_HASH)) && Boolean(found.user) && !found.user!.disabled;
    });
    const user = found.user;
    if (!user || !valid) {
      this.log.info({ username, address }, 'failed login');
      throw Errors.unauthenticated('Wrong username or password.');
    }
    if (needsRehash(user.passwordHash)) await this.upgradePasswordHash(user, password);
    return { token: this.issueLoginToken(user), user };
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

  /** A login token: a JWT naming the user, the user's token version, and its own id. */
  issueLoginToken(user: User): string {
    const claims: Omit<LoginClaims, 'exp'> = { sub: user.id, ver: user.tokenVersion, jti: randomUUID() };
    return jwt.sign(claims, this.signingKey, { algorithm: ALGORITHM, expiresIn: this.config.jwtTtlSeconds });
  }

  /**
   * Who a bearer token (a login token or an access token) speaks for; UNAUTHENTICATED for
   * anything else. Every request runs this, uploadChunk once per chunk. The signature and expiry
   * are checked every time; what the database says of the token (its version, its revocation,
   * the user's being enabled) comes from the cache (auth-cache.ts) when it holds a recent answer,
   * else from one plain select (a third of the CPU of findOne's query building) that checks all
   * of it at once. A logout or a disabled user counts on every instance from the next request
   * on, as the cache hears of it by notification.
   */
  async authenticate(token: string): Promise<Principal> {
    if (looksLikeAccessToken(token)) return this.authenticateAccessToken(token);
    const claims = this.verify<LoginClaims>(token);
    if (typeof claims.sub !== 'string' || !isUuid(claims.sub) || typeof claims.ver !== 'number' || (claims.jti !== undefined && typeof claims.jti !== 'string')) {
      throw Errors.unauthenticated('This token is not a login token: log in again.');
    }
    const tokenId = claims.jti ?? tokenHash(token);
    const key = loginKey(tokenId);
    const cached = this.cache.get(key);
    // A jti is signed with its sub and ver, so they match; compared anyway, as the query would.
    if (cached && cached.userId === claims.sub && cached.tokenVersion === claims.ver) return this.principalOf(cached);
    const version = this.cache.version;
    const em = this.orm.em.fork();
    const [row] = await em.getConnection().execute<Record<string, unknown>[]>(
      `select ${USER_COLUMNS} from users u
        where u.id = ? and u.token_version = ? and not u.disabled
          and not exists (select 1 from revoked_tokens r where r.token_id = ?)`,
      [claims.sub, claims.ver, tokenId],
    );
    if (!row) throw Errors.unauthenticated('This token is no longer valid: log in again.');
    const credential: Credential = { kind: 'login', tokenId, expiresAt: new Date(claims.exp * 1000) };
    this.cache.set(key, { userRow: row, userId: claims.sub, tokenVersion: claims.ver, credential, until: claims.exp * 1000 }, version);
    return { user: em.map(User, row), credential };
  }

  private async authenticateAccessToken(token: string): Promise<Principal> {
    if (!isWellFormedAccessToken(token)) throw Errors.unauthenticated('This access token is not valid.');
    const hash = tokenHash(token);
    const key = accessKey(hash);
    const cached = this.cache.get(key);
    if (cached) {
      this.noteUse(cached.credential.tokenId);
      return this.principalOf(cached);
    }
    const version = this.cache.version;
    const em = this.orm.em.fork();
    const [row] = await em.getConnection().execute<Record<string, unknown>[]>(
      `select ${USER_COLUMNS}, t.id as access_token_id, t.scopes as access_token_scopes, t.expires_at as access_token_expires_at,
              (t.expires_at is not null and t.expires_at <= now()) as access_token_expired
         from access_tokens t join users u on u.id = t.user_id
        where t.token_hash = ? and not u.disabled`,
      [hash],
    );
    if (!row) throw Errors.unauthenticated('This access token is not valid (revoked, or its user is disabled or deleted).');
    const { access_token_id: tokenId, access_token_scopes: scopes, access_token_expires_at: expiresAt, access_token_expired: expired, ...userRow } = row;
    if (expired) throw Errors.unauthenticated('This access token has expired: create a new one.');
    this.noteUse(tokenId as string);
    const credential: Credential = { kind: 'access', tokenId: tokenId as string, scopes: parseScopes(scopes) };
    this.cache.set(
      key,
      { userRow, userId: userRow.id as string, tokenVersion: Number(userRow.token_version), credential, until: expiresAt == null ? undefined : new Date(expiresAt as string | Date).getTime() },
      version,
    );
    return { user: em.map(User, userRow), credential };
  }

  /** A cached principal as a request gets it: its own User entity, its own credential object. */
  private principalOf(entry: AuthCacheEntry): Principal {
    const credential = entry.credential.kind === 'access' ? { ...entry.credential, scopes: [...entry.credential.scopes] } : { ...entry.credential };
    return { user: this.orm.em.fork().map(User, entry.userRow), credential };
  }

  /**
   * Keeps `lastUsedAt` to the minute without a write per request: the first use in a minute
   * writes it, in the background (a lost write only makes it older).
   */
  private noteUse(tokenId: string): void {
    const now = Date.now();
    const written = this.lastUseWritten.get(tokenId);
    if (written !== undefined && now - written < LAST_USED_PRECISION_MS) return;
    if (this.lastUseWritten.size >= LAST_USED_MEMORY) {
      for (const [id, at] of this.lastUseWritten) if (now - at >= LAST_USED_PRECISION_MS) this.lastUseWritten.delete(id);
    }
    this.lastUseWritten.set(tokenId, now);
    this.orm.em
      .getConnection()
      .execute('update access_tokens set last_used_at = now() where id = ?', [tokenId])
      .catch((err: unknown) => this.log.warn({ err, tokenId }, 'could not record when an access token was last used'));
  }

  /**
   * Ends the request's own token: a login token is remembered as revoked until it would have
   * expired anyway (and the memory of those that have is dropped in the same statement); an
   * access token is deleted, as revokeAccessToken would.
   */
  async logout(credential: Credential): Promise<void> {
    const connection = this.orm.em.getConnection();
    if (credential.kind === 'access') {
      const [row] = await connection.execute<{ user_id: string }[]>('delete from access_tokens where id = ? returning user_id', [credential.tokenId]);
      // The notification does the same on every instance; this one answers its next request right at once.
      if (row) this.cache.invalidateUser(row.user_id);
      return;
    }
    await connection.execute(
      `with expired as (delete from revoked_tokens where expires_at <= now())
       insert into revoked_tokens (token_id, expires_at) values (?, ?) on conflict (token_id) do nothing`,
      [credential.tokenId, credential.expiresAt],
    );
    this.cache.invalidateLoginToken(credential.tokenId);
  }

  /** Ends every login token of the user (not their access tokens). */
  async logoutEverywhere(user: User): Promise<void> {
    await this.orm.em.getConnection().execute('update users set token_version = token_version + 1 where id = ?', [user.id]);
    this.cache.invalidateUser(user.id);
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

/** text[] as the driver returns it: an array (pg), or PostgreSQL's literal `{READ,UPLOAD}`. */
function parseScopes(value: unknown): TokenScope[] {
  const names = Array.isArray(value) ? value : String(value).replace(/^\{|\}$/g, '').split(',');
  return names.filter((name): name is TokenScope => Object.values(TokenScope).includes(name as TokenScope));
}
