import type { MikroORM } from '@mikro-orm/core';
import { createHash } from 'node:crypto';
import { LoginThrottle } from '../entities';
import { Errors } from '../errors';

/** API.md: at least 5 consecutive failures for a username (here: from one address) before it is throttled... */
const PAIR_FAILURES_BEFORE_LOCK = 5;
/** ...for a while that doubles with each further failure, but never for longer than this. */
const PAIR_LOCK_BASE_SECONDS = 30;
const PAIR_LOCK_MAX_SECONDS = 15 * 60;
/** ...or at least 50 failures from one address within 15 minutes. */
const ADDRESS_FAILURES_BEFORE_BLOCK = 50;
/** A username's failures from all addresses together, since its last correct password, within the window. */
const USERNAME_FAILURE_BUDGET = 50;
const WINDOW_SECONDS = 15 * 60;
/** Keys stay short whatever a client sends as a username. */
const MAX_SUBJECT_LENGTH = 200;

/** A password check the throttle let through, counted as a failure until `succeeded` says otherwise. */
export interface Attempt {
  keys: { address: string; pair: string; username: string };
}

interface Row {
  key: string;
  failures: number;
  /** Seconds since the row's window began (address and username rows). */
  window_age: number;
  /** Seconds since the last failure. */
  idle: number;
}

/**
 * Slows password guessing (login, and changePassword's old password) with three counters in
 * the database, so every instance shares them:
 * - per (username, address): consecutive failures; from the 5th on, that address is locked out
 *   of that username for 30 s, doubling per further failure up to 15 minutes. Someone guessing
 *   an account's password therefore never locks its owner out from another address;
 * - per address: failures within 15 minutes; from the 50th on, the address is blocked until
 *   the window ends;
 * - per username, over all addresses: failures since its last correct password within 15
 *   minutes; from the 50th on, addresses that failed at that username recently are refused,
 *   while an address with no recent failure (the owner's, most likely) still gets through.
 *
 * An attempt is counted as a failure before its password is checked, in one transaction that
 * locks the counters: concurrent guesses cannot all slip in before the first is counted. A
 * correct password then takes its count back (`succeeded`).
 */
export class LoginThrottleService {
  constructor(private readonly orm: MikroORM) {}

  /**
   * Counts an attempt at `username` (its `usernameKey`) from `address`, or throws RATE_LIMITED
   * (counting nothing) when the address or the pair is blocked right now.
   */
  async reserve(username: string, address: string): Promise<Attempt> {
    const subject = username.length > MAX_SUBJECT_LENGTH ? `sha256:${createHash('sha256').update(username).digest('hex')}` : username;
    const keys = { address: `ip:${address}`, pair: `pair:${address} ${subject}`, username: `user:${subject}` };
    // One order for every transaction, so two of them never wait on each other's rows.
    const sorted = Object.values(keys).sort();
    await this.orm.em.fork().transactional(async (em) => {
      const connection = em.getConnection();
      const context = em.getTransactionContext();
      // The upsert locks the three rows (existing or new) until the transaction ends.
      const rows: Row[] = await connection.execute(
        `insert into login_throttle (key, failures, window_started_at, last_failure_at)
         values (?, 0, now(), now()), (?, 0, now(), now()), (?, 0, now(), now())
         on conflict (key) do update set failures = login_throttle.failures
         returning key, failures,
           extract(epoch from now() - window_started_at)::float8 as window_age,
           extract(epoch from now() - last_failure_at)::float8 as idle`,
        sorted,
        'all',
        context,
      );
      const row = (key: string) => rows.find((r) => r.key === key)!;
      const address = row(keys.address);
      const pair = row(keys.pair);
      const user = row(keys.username);
      const inWindow = (r: Row) => (r.window_age < WINDOW_SECONDS ? r.failures : 0);
      const waits: number[] = [];
      if (inWindow(address) >= ADDRESS_FAILURES_BEFORE_BLOCK) waits.push(WINDOW_SECONDS - address.window_age);
      if (pair.failures >= PAIR_FAILURES_BEFORE_LOCK) {
        const lock = Math.min(PAIR_LOCK_MAX_SECONDS, PAIR_LOCK_BASE_SECONDS * 2 ** (pair.failures - PAIR_FAILURES_BEFORE_LOCK));
        if (pair.idle < lock) waits.push(lock - pair.idle);
      }
      if (inWindow(user) >= USERNAME_FAILURE_BUDGET && pair.failures > 0 && pair.idle < WINDOW_SECONDS) {
        waits.push(WINDOW_SECONDS - user.window_age);
      }
      // Throwing rolls the transaction back: a refused attempt changes no counter.
      if (waits.length > 0) throw Errors.rateLimited(Math.max(1, Math.ceil(Math.max(...waits))));
      await connection.execute(
        `update login_throttle set
           failures = case when key <> ? and window_started_at <= now() - make_interval(secs => ?) then 1 else failures + 1 end,
           window_started_at = case when key <> ? and window_started_at <= now() - make_interval(secs => ?) then now() else window_started_at end,
           last_failure_at = now()
         where key in (?, ?, ?)`,
        [keys.pair, WINDOW_SECONDS, keys.pair, WINDOW_SECONDS, ...sorted],
        'run',
        context,
      );
    });
    return { keys };
  }

  /**
   * The password was right: the attempt was no failure. It ends the runs of failures of the
   * pair and of the username (API.md: the limits count consecutive failures), not the
   * address's window.
   */
  async succeeded(attempt: Attempt): Promise<void> {
    const connection = this.orm.em.getConnection();
    await connection.execute(`delete from login_throttle where key in (?, ?)`, [attempt.keys.pair, attempt.keys.username]);
    await connection.execute(`update login_throttle set failures = greatest(failures - 1, 0) where key = ?`, [attempt.keys.address]);
  }

  /** Forgets entries idle for a day (cleanup): every lock and window is over by then. */
  async purgeIdle(): Promise<number> {
    const dayAgo = new Date(Date.now() - 86400_000);
    return this.orm.em.fork().nativeDelete(LoginThrottle, { lastFailureAt: { $lt: dayAgo } });
  }
}
