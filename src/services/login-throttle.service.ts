import type { MikroORM } from '@mikro-orm/core';
import { LoginThrottle } from '../entities';
import { Errors } from '../errors';

/** API.md: at least 5 consecutive failures for one username before it is throttled... */
const USER_FAILURES_BEFORE_BLOCK = 5;
/** ...for a while that doubles with each further failure, but never for longer than this. */
const USER_BLOCK_BASE_SECONDS = 30;
const USER_BLOCK_MAX_SECONDS = 15 * 60;
/** ...or at least 50 failures from one address within 15 minutes. */
const ADDRESS_FAILURES_BEFORE_BLOCK = 50;
const ADDRESS_WINDOW_SECONDS = 15 * 60;

/**
 * Slows password guessing. A throttled username only locks out that username, and only for
 * a bounded time, so an attacker cannot lock a real user out for good; a correct password
 * resets the username's count.
 */
export class LoginThrottleService {
  constructor(private readonly orm: MikroORM) {}

  /** Throws RATE_LIMITED when the username or the address is blocked right now. */
  async check(username: string, address: string): Promise<void> {
    const rows = await this.orm.em
      .fork()
      .find(LoginThrottle, { key: { $in: [userKey(username), addressKey(address)] }, blockedUntil: { $gt: new Date() } });
    if (rows.length === 0) return;
    const until = Math.max(...rows.map((r) => r.blockedUntil!.getTime()));
    const retryAfter = Math.max(1, Math.ceil((until - Date.now()) / 1000));
    throw Errors.rateLimited(retryAfter);
  }

  async recordFailure(username: string, address: string): Promise<void> {
    const connection = this.orm.em.getConnection();
    await connection.execute(
      `insert into login_throttle (key, failures, window_started_at, last_failure_at, blocked_until)
       values (?, 1, now(), now(), null)
       on conflict (key) do update set
         failures = login_throttle.failures + 1,
         last_failure_at = now(),
         blocked_until = case when login_throttle.failures + 1 >= ?
           then now() + make_interval(secs => least(?, ? * power(2, login_throttle.failures + 1 - ?)))
           else null end`,
      [userKey(username), USER_FAILURES_BEFORE_BLOCK, USER_BLOCK_MAX_SECONDS, USER_BLOCK_BASE_SECONDS, USER_FAILURES_BEFORE_BLOCK],
    );
    await connection.execute(
      `insert into login_throttle (key, failures, window_started_at, last_failure_at, blocked_until)
       values (?, 1, now(), now(), null)
       on conflict (key) do update set
         failures = case when login_throttle.window_started_at <= now() - make_interval(secs => ?) then 1 else login_throttle.failures + 1 end,
         window_started_at = case when login_throttle.window_started_at <= now() - make_interval(secs => ?) then now() else login_throttle.window_started_at end,
         last_failure_at = now(),
         blocked_until = case when login_throttle.window_started_at > now() - make_interval(secs => ?) and login_throttle.failures + 1 >= ?
           then login_throttle.window_started_at + make_interval(secs => ?) else null end`,
      [addressKey(address), ADDRESS_WINDOW_SECONDS, ADDRESS_WINDOW_SECONDS, ADDRESS_WINDOW_SECONDS, ADDRESS_FAILURES_BEFORE_BLOCK, ADDRESS_WINDOW_SECONDS],
    );
  }

  /** A correct password ends the username's run of failures (not the address's window). */
  async recordSuccess(username: string): Promise<void> {
    await this.orm.em.fork().nativeDelete(LoginThrottle, { key: userKey(username) });
  }

  /** Forgets entries idle for a day (cleanup). */
  async purgeIdle(): Promise<number> {
    const dayAgo = new Date(Date.now() - 86400_000);
    return this.orm.em.fork().nativeDelete(LoginThrottle, { lastFailureAt: { $lt: dayAgo }, $or: [{ blockedUntil: null }, { blockedUntil: { $lt: new Date() } }] });
  }
}

const userKey = (username: string) => `user:${username.trim().normalize('NFC').toLowerCase()}`;
const addressKey = (address: string) => `ip:${address}`;
