import type { Logger } from 'pino';
import type { Credential } from './credentials';

/** What a lookup did: served from memory, went to the database, or could not use the cache at all. */
export type AuthCacheResult = 'hit' | 'miss' | 'bypass';

export interface AuthCacheMetrics {
  authCacheLookup(result: AuthCacheResult): void;
}

export const NO_AUTH_CACHE_METRICS: AuthCacheMetrics = { authCacheLookup() {} };

/** Principals remembered at most; past this, the least recently used goes. */
export const AUTH_CACHE_ENTRIES = 10_000;

/** A credential that was found valid, as the database answered for it. */
export interface AuthCacheEntry {
  /** The user's row, mapped to a fresh User on every hit (an entity is never shared by two requests). */
  userRow: Record<string, unknown>;
  userId: string;
  /** The user's token version the row had: a login token names the one it was issued under. */
  tokenVersion: number;
  credential: Credential;
  /** Epoch ms after which the entry is not served (the TTL, or an access token's expiry if sooner). */
  until: number;
}

/**
 * The authenticated principals of recent requests, so that a request (each upload chunk) does
 * not cost a database round trip to find out who sent it. Only successes are kept, for at most
 * the TTL, and only while this process hears every change that could end them: the database
 * notifies `auth_events` (migration auth_cache) on every change to users, access tokens and
 * revocations, whoever makes it, and the process's one listening connection (events/listener.ts)
 * hands those here. While that connection is down nothing is served (a notification could be
 * missed); when it is back the cache starts empty.
 *
 * A lookup that misses notes the invalidation count before it reads the database and stores its
 * answer only if nothing was invalidated meanwhile: a change that committed after the read but
 * was heard before the store would otherwise be forgotten, and one heard after the store removes
 * the entry as usual.
 */
export class AuthCache {
  /** In least recently used order (a Map keeps insertion order; a hit moves its key to the end). */
  private readonly entries = new Map<string, AuthCacheEntry>();
  private readonly keysByUser = new Map<string, Set<string>>();
  /** Bumped by every invalidation (and by the listener going or coming back). */
  private invalidations = 0;
  private listening = false;

  constructor(
    private readonly ttlMs: number,
    private readonly metrics: AuthCacheMetrics = NO_AUTH_CACHE_METRICS,
    private readonly log?: Logger,
    private readonly capacity = AUTH_CACHE_ENTRIES,
  ) {}

  /** Whether lookups may be served and answers stored: on in the configuration, and every invalidation is heard. */
  get serving(): boolean {
    return this.ttlMs > 0 && this.listening;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Taken before a database read whose answer may be stored with `set`. */
  get version(): number {
    return this.invalidations;
  }

  get(key: string): AuthCacheEntry | undefined {
    if (!this.serving) {
      this.metrics.authCacheLookup('bypass');
      return undefined;
    }
    const entry = this.entries.get(key);
    if (entry && entry.until > Date.now()) {
      this.entries.delete(key);
      this.entries.set(key, entry);
      this.metrics.authCacheLookup('hit');
      return entry;
    }
    if (entry) this.remove(key, entry);
    this.metrics.authCacheLookup('miss');
    return undefined;
  }

  /** Stores a valid credential's principal, unless something was invalidated since `version` was taken. */
  set(key: string, entry: Omit<AuthCacheEntry, 'until'> & { until?: number }, version: number): void {
    if (!this.serving || version !== this.invalidations) return;
    const until = Math.min(Date.now() + this.ttlMs, entry.until ?? Infinity);
    const existing = this.entries.get(key);
    if (existing) this.remove(key, existing);
    // Copied and frozen: every hit maps it anew, so nothing a request does may change it for the next.
    this.entries.set(key, { ...entry, userRow: Object.freeze({ ...entry.userRow }), until });
    const keys = this.keysByUser.get(entry.userId) ?? new Set();
    keys.add(key);
    this.keysByUser.set(entry.userId, keys);
    while (this.entries.size > this.capacity) {
      const [oldest, evicted] = this.entries.entries().next().value!;
      this.remove(oldest, evicted);
    }
  }

  /** Every principal of the user: their row changed, or one of their access tokens did. */
  invalidateUser(userId: string): void {
    this.invalidations++;
    for (const key of this.keysByUser.get(userId) ?? []) this.entries.delete(key);
    this.keysByUser.delete(userId);
  }

  /** The principal of one revoked login token. */
  invalidateLoginToken(tokenId: string): void {
    this.invalidations++;
    const key = loginKey(tokenId);
    const entry = this.entries.get(key);
    if (entry) this.remove(key, entry);
  }

  /** A notification on `auth_events` (its payload names a user or a revoked token). */
  notified(payload: string): void {
    let message: { userId?: unknown; tokenId?: unknown };
    try {
      message = JSON.parse(payload) as typeof message;
    } catch {
      message = {};
    }
    if (typeof message.userId === 'string') this.invalidateUser(message.userId);
    else if (typeof message.tokenId === 'string') this.invalidateLoginToken(message.tokenId);
    else {
      // Something this version does not understand: forgetting everything is always safe.
      this.log?.warn({ payload }, 'unexpected authentication notification; the cache is emptied');
      this.clear();
    }
  }

  /** The listening connection is up (LISTEN done) or down: either way, what is held may be stale. */
  listenerConnected(connected: boolean): void {
    this.listening = connected;
    this.clear();
  }

  clear(): void {
    this.invalidations++;
    this.entries.clear();
    this.keysByUser.clear();
  }

  private remove(key: string, entry: AuthCacheEntry): void {
    this.entries.delete(key);
    const keys = this.keysByUser.get(entry.userId);
    keys?.delete(key);
    if (keys?.size === 0) this.keysByUser.delete(entry.userId);
  }
}

export const loginKey = (tokenId: string): string => `login:${tokenId}`;
export const accessKey = (hash: string): string => `access:${hash}`;
